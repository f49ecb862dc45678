"""Helpers shared by the command modules (one error exit for every command).

Kept apart from :mod:`greensim.cli.main`, which imports every command module to register
it: a command module importing ``main`` for these helpers would close an import circle.
"""
from __future__ import annotations

import sys
from typing import NoReturn

import click

from greensim.base.errors import GreensimError

__all__ = ["fail"]


def fail(exc: GreensimError) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit 2 (bad input: no traceback)."""
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)
