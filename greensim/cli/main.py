"""The ``greensim`` command group, and the registration of every command.

Each command group lives in its own module; this one only collects them. Command
modules import nothing heavy at module level (their imports sit inside the command
functions), so ``greensim --help`` stays fast.
"""

from __future__ import annotations

import click

from greensim.cli.aging import aging_group
from greensim.cli.forecast import forecast_group
from greensim.cli.plan import plan_cmd, replan_cmd
from greensim.cli.profile import profile_cmd
from greensim.cli.run import check_cmd, run_cmd, schema_cmd, validate_cmd
from greensim.cli.sweep import sweep_cmd
from greensim.cli.theory import theory_group
from greensim.cli.trace import trace_group

__all__ = ["main"]


@click.group()
@click.version_option(package_name="greensim")
def main() -> None:
    """greensim: simulate carbon-aware LLM serving on heterogeneous GPUs."""


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
