"""Performance (latency and power) models, registered by name."""
from ..registry import Registry

PERFORMANCE_MODELS: Registry = Registry("performance model")

from .roofline import RooflineModel  # noqa: E402  (registers itself)
from .profiled import ProfiledModel  # noqa: E402  (registers itself)

__all__ = ["PERFORMANCE_MODELS", "RooflineModel", "ProfiledModel"]
