"""Carbon accounting: intensity sources (plug-ins) and pure accounting functions."""
from ..registry import Registry

INTENSITY_SOURCES: Registry = Registry("carbon-intensity source")

from .intensity import CarbonIntensity, ConstantIntensitySource  # noqa: E402
from .accounting import embodied_gco2, operational_gco2  # noqa: E402

__all__ = ["INTENSITY_SOURCES", "CarbonIntensity", "ConstantIntensitySource",
           "embodied_gco2", "operational_gco2"]
