"""Named plug-in registries: one per family (routers, workloads, carbon sources...).

Registering a name twice raises; an unknown name raises with the valid names and the
closest match. A class or callable may be passed instead of a name (notebook use).

Other packages add plug-ins without editing greensim through entry points: a registry
made with ``entry_point_group="greensim.routers"`` loads, the first time a name is
looked up or listed, every entry point of that group, registered under the entry point's
name. In the plug-in package's ``pyproject.toml``::

    [project.entry-points."greensim.routers"]
    my_router = "my_package.routing:MyRouter"
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Generic, Optional, TypeVar

from greensim.base.errors import ConfigError

__all__ = ["Registry", "ENTRY_POINT_GROUPS"]

T = TypeVar("T")

#: entry-point group -> registry family, filled as registries are made (documentation, tests)
ENTRY_POINT_GROUPS: Dict[str, str] = {}


class Registry(Generic[T]):
    """A dictionary of named factories for one plug-in family."""

    def __init__(self, family: str, entry_point_group: Optional[str] = None):
        self.family = family
        self.entry_point_group = entry_point_group
        self._items: Dict[str, T] = {}
        self._plugins_loaded = entry_point_group is None
        if entry_point_group is not None:
            ENTRY_POINT_GROUPS[entry_point_group] = family

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.family} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def _load_plugins(self) -> None:
        """Register the entry points of this registry's group (once; built-ins win a name clash)."""
        group = self.entry_point_group
        if self._plugins_loaded or group is None:  # no group: loaded from the start
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=group):
            if ep.name in self._items:
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plug-in must not hide the others
                raise ConfigError(
                    f"{self.family} plug-in '{ep.name}' ({ep.value}, entry point group "
                    f"{self.entry_point_group}) failed to load: {type(exc).__name__}: {exc}. "
                    f"Fix or uninstall the package that provides it."
                ) from exc
            self._items[ep.name] = obj

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def get(self, name_or_obj: Any, field: str = "") -> T:
        """Return the factory for a name, or the object itself if it is callable."""
        if not isinstance(name_or_obj, str):
            if callable(name_or_obj):
                return name_or_obj
            raise ConfigError(f"{field or self.family}: expected a name, got {name_or_obj!r}")
        if name_or_obj not in self._items:
            self._load_plugins()
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
        if name not in self._items:
            self._load_plugins()
        return name in self._items
