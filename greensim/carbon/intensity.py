"""Grid carbon-intensity sources. A time series implements the same interface."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from greensim.carbon.registry import INTENSITY_SOURCES

__all__ = ["CarbonIntensity", "ConstantIntensitySource"]


class CarbonIntensity(ABC):
    """Grid carbon intensity over simulated time [gCO2e/kWh]."""

    @abstractmethod
    def mean_over(self, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        """Mean intensity over each interval [t0, t1) [gCO2e/kWh]."""


@INTENSITY_SOURCES.register("constant")
class ConstantIntensitySource(CarbonIntensity):
    """The same intensity at all times."""

    def __init__(self, gco2_per_kwh: float):
        self.gco2_per_kwh = float(gco2_per_kwh)

    def mean_over(self, t0_s, t1_s):
        return np.full(np.shape(t0_s), self.gco2_per_kwh)

    def at(self, t_s):
        """Intensity in force at simulated time(s) ``t_s`` [gCO2e/kWh]."""
        return np.full(np.shape(t_s), self.gco2_per_kwh)
