"""Operational and embodied carbon as pure functions.

Operational [gCO2e] = sum over timeline bins of energy [kWh] x intensity in force
[gCO2e/kWh] x PUE. Embodied [gCO2e] = embodied [kgCO2e] x 1000 x provisioned time /
lifetime (linear amortisation over the service lifetime, as in ACT: CF = OP + T/LT x E).
"""

from __future__ import annotations

import numpy as np

from greensim.base.units import G_PER_KG, J_PER_KWH, S_PER_YEAR
from greensim.carbon.intensity import CarbonIntensity

__all__ = ["operational_gco2", "embodied_gco2"]


def operational_gco2(bin_energy_j: np.ndarray, bin_s: float, intensity: CarbonIntensity, pue: float) -> np.ndarray:
    """Operational carbon per timeline bin [gCO2e].

    Parameters
    ----------
    bin_energy_j : energy drawn in each bin [J]; bin i covers [i*bin_s, (i+1)*bin_s).
    bin_s : bin width [s].
    intensity : carbon-intensity source.
    pue : power usage effectiveness [-].
    """
    e = np.asarray(bin_energy_j, dtype=float)
    t0 = np.arange(e.size) * bin_s
    ci = intensity.mean_over(t0, t0 + bin_s)
    return e / J_PER_KWH * ci * pue


def embodied_gco2(embodied_kgco2e: float, n_gpus: int, provisioned_s: float, lifetime_years: float) -> float:
    """Embodied carbon charged to ``provisioned_s`` of ``n_gpus`` GPUs [gCO2e]."""
    return embodied_kgco2e * G_PER_KG * n_gpus * provisioned_s / (lifetime_years * S_PER_YEAR)
