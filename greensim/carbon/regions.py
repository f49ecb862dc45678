"""Per-region totals: the same energy timeline priced under several regions' series."""

from __future__ import annotations

import numpy as np

from greensim.base.units import J_PER_KWH
from greensim.carbon.series import SeriesIntensitySource

__all__ = ["add_region_totals"]


def add_region_totals(tables, exp, bin_s: float) -> None:
    """Add ``operational_gco2_by_region`` / ``carbon_gco2_by_region`` to the summary and a
    ``regions`` DataFrame (region, mean intensity, operational, embodied, total) to ``tables``.

    The run's own region comes first; each of ``carbon.compare_regions`` reuses its start,
    time zone, basis and gap filling. Embodied carbon does not depend on the region. Under
    ``carbon.accounting: busy`` only busy energy is priced, as in the run's own totals.
    """
    import pandas as pd

    ic = exp.carbon.intensity
    tl = tables.timeline
    pue = tables.instances.set_index("instance")["pue"]  # each instance's site PUE
    col = "busy_energy_j" if tables.summary.get("accounting") == "busy" else "energy_j"
    e = (tl[col] * tl["instance"].map(pue)).groupby(tl["t_s"], sort=True).sum()  # facility energy [J]
    edges = e.index.to_numpy(dtype=float)
    horizon = tables.summary["duration_s"]
    width = np.minimum(bin_s, np.maximum(horizon - edges, 0.0))
    rows = []
    for region in [ic.region] + [r for r in exp.carbon.compare_regions if r != ic.region]:
        src = SeriesIntensitySource(
            region=region,
            start=ic.start,
            timezone=ic.timezone,
            path=ic.path,
            basis=ic.basis,
            gap_fill=ic.gap_fill,
            where=f"carbon.compare_regions[{region}]",
        )
        ci = src.mean_over(edges, edges + bin_s)
        op = float(np.sum(e.to_numpy() / J_PER_KWH * ci))
        emb = tables.summary["embodied_gco2"]
        rows.append(
            {
                "region": region,
                "intensity_mean_gco2_per_kwh": float(np.sum(ci * width) / np.sum(width)),
                "operational_gco2": op,
                "embodied_gco2": emb,
                "carbon_gco2": op + emb,
                "n_filled": src.n_filled,
            }
        )
    df = pd.DataFrame(rows)
    tables.regions = df
    tables.summary["operational_gco2_by_region"] = dict(zip(df["region"], df["operational_gco2"]))
    tables.summary["carbon_gco2_by_region"] = dict(zip(df["region"], df["carbon_gco2"]))
