"""Policies (routers for now), registered by name."""
from ..registry import Registry

ROUTERS: Registry = Registry("router")
DECODE_ROUTERS: Registry = Registry("decode router")
GAMMA_POLICIES: Registry = Registry("gamma policy")

from . import routers  # noqa: E402,F401  (registers the built-in routers)
from . import scheduler  # noqa: E402,F401  (registers the greenllm scheduler router)
from . import disaggregation  # noqa: E402,F401  (registers the DPD decode routers)
from . import speculation  # noqa: E402,F401  (registers the speculative-decoding gamma policies)
from . import carbon_aware  # noqa: E402,F401  (registers the cross-site carbon-aware router)

__all__ = ["ROUTERS", "DECODE_ROUTERS", "GAMMA_POLICIES"]
