"""Policies (routers for now), registered by name."""
from ..registry import Registry

ROUTERS: Registry = Registry("router")
DECODE_ROUTERS: Registry = Registry("decode router")

from . import routers  # noqa: E402,F401  (registers the built-in routers)
from . import disaggregation  # noqa: E402,F401  (registers the DPD decode routers)

__all__ = ["ROUTERS", "DECODE_ROUTERS"]
