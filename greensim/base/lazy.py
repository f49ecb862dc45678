"""Deferred imports of heavy third-party packages.

``import pandas`` costs ~0.4 s of CPU (it also imports pyarrow), more than a small run
simulates; a module that only *may* need it (a trace reader, a table builder) defers it::

    if TYPE_CHECKING:
        import pandas as pd
    else:
        pd = lazy_module("pandas")

``pd.DataFrame(...)`` then imports pandas on first use; type checkers see the real module.
``tests/unit/test_lazy_imports.py`` checks that the light entry points stay light.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Optional

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands for a module until an attribute is read, then imports it and forwards to it."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module: Optional[ModuleType] = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """A stand-in for ``importlib.import_module(name)`` that imports on first attribute access."""
    return _LazyModule(name)
