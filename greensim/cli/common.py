"""Helpers shared by the command modules: the error exit and the -q/-v output options.

Kept apart from :mod:`greensim.cli.main`, which imports every command module to register
it: a command module importing ``main`` for these helpers would close an import circle.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable, NoReturn, Optional, TypeVar

import click

from greensim.base.errors import GreensimError

__all__ = ["fail", "output_options", "configure_output", "EchoHandler", "LOG_FORMAT"]

F = TypeVar("F", bound=Callable)

#: Format of log records with -v/--verbose.
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def fail(exc: GreensimError) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit 2 (bad input: no traceback); a
    :class:`~greensim.base.errors.SimulationInvariantError` (greensim's own state went wrong, a bug)
    is an internal error instead: ``internal error: <message>`` and exit 1, as any other bug."""
    from greensim.base.errors import SimulationInvariantError

    if isinstance(exc, SimulationInvariantError):
        click.echo(
            f"internal error: {exc}\n(a bug in greensim, not in the input: please report it with the experiment file)",
            err=True,
        )
        sys.exit(1)
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def output_options(f: F) -> F:
    """Add ``-q/--quiet`` and ``-v/--verbose`` to a command; it passes both to :func:`configure_output`."""
    f = click.option(
        "-v", "--verbose", is_flag=True, help="Log what happens (INFO, on stderr) and show the progress bar."
    )(f)
    f = click.option(
        "-q", "--quiet", is_flag=True, help="No progress bar; print only the results path and essential lines."
    )(f)
    return f


def configure_output(quiet: bool, verbose: bool) -> Optional[bool]:
    """Apply ``-q``/``-v`` and return the progress setting to pass on: False (quiet), True
    (verbose) or None (neither: the command's default).

    Verbose turns on INFO logging of ``greensim`` on stderr, as ``logging.basicConfig(level=INFO)``
    would in a script, but only for the rest of the command: the handler is removed when the
    command's context closes, so a process that runs several commands (tests with click's
    CliRunner, a notebook) keeps its own logging set-up.
    """
    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose exclude each other; give one.")
    if verbose:
        _log_info_to_stderr()
        return True
    return False if quiet else None


class EchoHandler(logging.Handler):
    """Writes records with ``click.echo(..., err=True)``: to the stderr current at the time of
    the record (also the one click's CliRunner captures)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def _log_info_to_stderr() -> None:
    handler = EchoHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root, pkg = logging.getLogger(), logging.getLogger("greensim")
    old_level = pkg.level
    root.addHandler(handler)
    pkg.setLevel(logging.INFO)

    def undo() -> None:
        root.removeHandler(handler)
        pkg.setLevel(old_level)

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(undo)
