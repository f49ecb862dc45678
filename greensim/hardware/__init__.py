"""Hardware models: everything that answers "how fast, how much power, how reliable is
this GPU": the GPU and model catalogue, the performance (latency and power) models,
their uncertainty bands and GPU aging (degradation and failures).

Performance models are plug-ins registered by name in :data:`PERFORMANCE_MODELS`.
"""

from greensim.hardware.kernel import KernelModel  # registers "kernel"
from greensim.hardware.profiled import ProfiledModel  # registers "profiled"
from greensim.hardware.registry import PERFORMANCE_MODELS
from greensim.hardware.roofline import RooflineModel  # registers "roofline"

__all__ = ["PERFORMANCE_MODELS", "KernelModel", "RooflineModel", "ProfiledModel"]
