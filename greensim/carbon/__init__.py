"""Carbon accounting: intensity sources (plug-ins in :data:`INTENSITY_SOURCES`), embodied
carbon schemes, pure accounting functions, forecasts, sites and the closed-form theory of
when disaggregation pays off (:mod:`.theory`)."""

from greensim.carbon.accounting import embodied_gco2, operational_gco2
from greensim.carbon.embodied import embodied_by_scheme, embodied_charge_gco2
from greensim.carbon.intensity import CarbonIntensity, ConstantIntensitySource
from greensim.carbon.registry import INTENSITY_SOURCES
from greensim.carbon.series import DiurnalIntensitySource, SeriesIntensitySource

__all__ = [
    "INTENSITY_SOURCES",
    "CarbonIntensity",
    "ConstantIntensitySource",
    "embodied_gco2",
    "operational_gco2",
    "SeriesIntensitySource",
    "DiurnalIntensitySource",
    "embodied_charge_gco2",
    "embodied_by_scheme",
]
