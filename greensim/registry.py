"""Named plug-in registries: one per family (routers, workloads, carbon sources...).

Registering a name twice raises; an unknown name raises with the valid names and the
closest match. A class or callable may be passed instead of a name (notebook use).
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Generic, TypeVar

from .errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A dictionary of named factories for one plug-in family."""

    def __init__(self, family: str):
        self.family = family
        self._items: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.family} '{name}' is registered twice")
            self._items[name] = obj
            return obj
        return deco

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name_or_obj: Any, field: str = "") -> T:
        """Return the factory for a name, or the object itself if it is callable."""
        if not isinstance(name_or_obj, str):
            if callable(name_or_obj):
                return name_or_obj
            raise ConfigError(f"{field or self.family}: expected a name, got {name_or_obj!r}")
        try:
            return self._items[name_or_obj]
        except KeyError:
            close = difflib.get_close_matches(name_or_obj, self.names(), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{field or self.family}: unknown {self.family} '{name_or_obj}' "
                f"(valid: {', '.join(self.names())}).{hint}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._items
