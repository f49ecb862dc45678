"""ACT-style embodied carbon of a GPU's chip and memory (the ``chip`` embodied scope).

ACT (Gupta et al., "ACT: Designing Sustainable Computer Systems with an Architectural Carbon
Modeling Tool", ISCA 2022; github.com/facebookresearch/ACT, MIT) models a logic die's
manufacturing carbon per unit area as

    CPA = (fab carbon intensity x EPA + GPA + MPA) / yield          [gCO2e / cm^2]

with EPA the fab energy per area [kWh/cm^2], GPA the greenhouse gases per area and MPA the
raw materials per area [g/cm^2], per process node; DRAM as carbon per GB / yield; and 150 g
per IC package. The values below are read from that repository at commit 7cdffa3
(``logic/epa.json``, ``logic/gpa_95.json``, ``logic/gpa_99.json``, ``logic/materials.json``,
``dram/dram_hynix.json``, ``carbon_intensity/location.json``, ``exps/dellr740/dellr740.py``).
Defaults follow ACT's ``Fab_Logic`` defaults: GPA "97" (the mean of the 95 % and 99 %
abatement tables), a fab in Taiwan (583 g/kWh), yield 0.875.

ACT has no HBM or GDDR entry; its ``ddr4_10nm`` value stands in for GPU memory (HBM stacking
and TSVs cost more per GB, so the memory term is a lower bound). GPU boards add a PCB, power
delivery, heatsink and casing that this scope leaves out (the ``board`` scope's LCA values
include them). The GreenLLM group's sister paper (Nguyen et al., HotCarbon'24,
arXiv 2501.01990) estimates embodied carbon "based on chip area and memory size", this form.
"""

from __future__ import annotations

from typing import Dict, Optional

from greensim.base.errors import ConfigError

__all__ = ["NODES", "ACT_SOURCE", "carbon_per_area_g_cm2", "chip_embodied_kgco2e"]

ACT_SOURCE = "ACT (Gupta et al., ISCA 2022), github.com/facebookresearch/ACT @7cdffa3"

#: fab energy per area [kWh/cm^2] (ACT logic/epa.json)
EPA_KWH_CM2: Dict[str, float] = {
    "28nm": 0.90,
    "20nm": 1.200,
    "14nm": 1.200,
    "10nm": 1.475,
    "8nm": 1.520,
    "7nm": 2.150,
    "5nm": 2.750,
    "3nm": 3.250,
}
#: greenhouse gases per area, 95 % and 99 % abatement [g/cm^2] (ACT logic/gpa_95.json, gpa_99.json)
GPA_95_G_CM2: Dict[str, float] = {
    "28nm": 175,
    "20nm": 190,
    "14nm": 200,
    "10nm": 240,
    "8nm": 240,
    "7nm": 350,
    "5nm": 430,
    "3nm": 470,
}
GPA_99_G_CM2: Dict[str, float] = {
    "28nm": 100,
    "20nm": 110,
    "14nm": 125,
    "10nm": 150,
    "8nm": 150,
    "7nm": 200,
    "5nm": 225,
    "3nm": 275,
}
#: raw materials per area [g/cm^2] (ACT logic/materials.json: 500 for every node)
MPA_G_CM2 = 500.0
#: DRAM carbon per GB before yield [g/GB] (ACT dram/dram_hynix.json, ddr4_10nm)
DRAM_G_PER_GB = 65.0
#: carbon per IC package [g] (ACT exps/dellr740/dellr740.py, packaging_intensity)
PACKAGE_G = 150.0
#: fab grid intensity, Taiwan [g/kWh] (ACT carbon_intensity/location.json)
FAB_CI_TAIWAN = 583.0
#: ACT's default fab yield
FAB_YIELD = 0.875

NODES = tuple(GPA_95_G_CM2)


def carbon_per_area_g_cm2(
    node: str, gpa: str = "97", fab_ci_g_per_kwh: float = FAB_CI_TAIWAN, fab_yield: float = FAB_YIELD
) -> float:
    """ACT's carbon per area of a logic die [gCO2e/cm^2] at a process node (e.g. ``"7nm"``)."""
    if node not in GPA_95_G_CM2:
        raise ConfigError(f"process node '{node}' is not in ACT's tables (valid: {', '.join(NODES)}).")
    gas = {
        "95": GPA_95_G_CM2[node],
        "99": GPA_99_G_CM2[node],
        "97": (GPA_95_G_CM2[node] + GPA_99_G_CM2[node]) / 2.0,
    }.get(gpa)
    if gas is None:
        raise ConfigError(f"ACT GPA '{gpa}' unknown (valid: 95, 97, 99).")
    return (fab_ci_g_per_kwh * EPA_KWH_CM2[node] + gas + MPA_G_CM2) / fab_yield


def chip_embodied_kgco2e(
    die_area_mm2: float,
    node: str,
    memory_gb: float,
    memory_packages: Optional[int] = None,
    gpa: str = "97",
    fab_ci_g_per_kwh: float = FAB_CI_TAIWAN,
    fab_yield: float = FAB_YIELD,
) -> float:
    """Embodied carbon of one GPU's die, memory and IC packages, ACT-style [kgCO2e].

    ``memory_packages`` counts the HBM stacks or GDDR chips (each a package besides the GPU's);
    None counts the GPU package only. An A100-80GB (826 mm^2 at 7 nm, 80 GB, 5 HBM2e stacks):
    19.2 (die) + 5.9 (memory) + 0.9 (6 packages) = 26.0 kg.
    """
    if not (die_area_mm2 > 0) or not (memory_gb >= 0):
        raise ConfigError(f"ACT chip model needs a positive die area and memory (got {die_area_mm2}, {memory_gb}).")
    die_g = die_area_mm2 / 100.0 * carbon_per_area_g_cm2(node, gpa, fab_ci_g_per_kwh, fab_yield)
    mem_g = memory_gb * DRAM_G_PER_GB / fab_yield
    pkg_g = PACKAGE_G * (1 + (memory_packages or 0))
    return (die_g + mem_g + pkg_g) / 1000.0
