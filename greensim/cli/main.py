"""The ``greensim`` command group, and the registration of every command.

Each command group lives in its own module; this one only collects them. Command
modules import nothing heavy at module level (their imports sit inside the command
functions), so ``greensim --help`` stays fast.
"""

from __future__ import annotations

import click

from greensim.base.errors import GreensimError
from greensim.base.memory import map_large_allocations, prefer_system_arrow_pool
from greensim.cli.aging import aging_group
from greensim.cli.common import fail
from greensim.cli.forecast import forecast_group
from greensim.cli.plan import plan_cmd, replan_cmd
from greensim.cli.profile import profile_cmd
from greensim.cli.run import check_cmd, run_cmd, schema_cmd, validate_cmd
from greensim.cli.sweep import sweep_cmd
from greensim.cli.theory import theory_group
from greensim.cli.trace import trace_group

__all__ = ["main"]


class _Main(click.Group):
    """The command group; a greensim error that a command lets through still ends as the exit-status
    contract says (README "Exit status": 2 bad input, 1 internal error), never as a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GreensimError as exc:
            fail(exc)


@click.group(cls=_Main)
@click.version_option(package_name="greensim")
def main() -> None:
    """greensim: simulate carbon-aware LLM serving on heterogeneous GPUs."""
    # before any command imports pandas: Arrow then gives back what it used to write Parquet, and
    # large arrays give their pages back when freed (1M requests: ~45 + ~30 MB less peak memory;
    # greensim.base.memory)
    prefer_system_arrow_pool()
    map_large_allocations()


for _cmd in (
    run_cmd,
    validate_cmd,
    check_cmd,
    schema_cmd,
    sweep_cmd,
    plan_cmd,
    replan_cmd,
    trace_group,
    forecast_group,
    aging_group,
    theory_group,
    profile_cmd,
):
    main.add_command(_cmd)
