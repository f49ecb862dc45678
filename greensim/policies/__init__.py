"""Policies (routers for now), registered by name."""
from ..registry import Registry

ROUTERS: Registry = Registry("router")

from . import routers  # noqa: E402,F401  (registers the built-in routers)

__all__ = ["ROUTERS"]
