"""Carbon accounting: intensity sources (plug-ins) and pure accounting functions."""
from ..registry import Registry

INTENSITY_SOURCES: Registry = Registry("carbon-intensity source")

from .intensity import CarbonIntensity, ConstantIntensitySource  # noqa: E402
from .accounting import embodied_gco2, operational_gco2  # noqa: E402
from .series import DiurnalIntensitySource, SeriesIntensitySource  # noqa: E402
from .embodied import embodied_by_scheme, embodied_charge_gco2  # noqa: E402

__all__ = ["INTENSITY_SOURCES", "CarbonIntensity", "ConstantIntensitySource",
           "embodied_gco2", "operational_gco2", "SeriesIntensitySource", "DiurnalIntensitySource",
           "embodied_charge_gco2", "embodied_by_scheme"]
