"""Carbon over time: cluster power, grid intensity and operational gCO2e/s on one timeline."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_carbon_timeline"]


def plot_carbon_timeline(path: Path, tables, title: str) -> None:
    """Write a three-panel PNG: total power [W], intensity [gCO2e/kWh], carbon rate [gCO2e/s]."""
    tl = tables.timeline
    g = tl.groupby("t_s", sort=True).agg(
        power_w=("power_w", "sum"), ci=("intensity_gco2_per_kwh", "first"), rate=("carbon_gco2_per_s", "sum")
    )
    t = g.index.to_numpy() / 3600.0
    fig, axes = plt.subplots(3, 1, figsize=(12, 7), sharex=True)
    axes[0].step(t, g["power_w"], where="post")
    axes[0].set_ylabel("cluster power [W]")
    inst = getattr(tables, "instances", None)
    sites = sorted(set(inst["site"])) if inst is not None and "site" in inst else []
    if len(sites) > 1:  # one intensity and carbon-rate line per site
        per = (
            tl.merge(inst[["instance", "site"]], on="instance")
            .groupby(["site", "t_s"], sort=True)
            .agg(ci=("intensity_gco2_per_kwh", "first"), rate=("carbon_gco2_per_s", "sum"))
        )
        for site in sites:
            ps = per.loc[site]
            axes[1].step(ps.index.to_numpy() / 3600.0, ps["ci"], where="post", label=site)
            axes[2].step(ps.index.to_numpy() / 3600.0, ps["rate"], where="post", label=site, alpha=0.6)
        axes[1].legend(fontsize=8)
    else:
        axes[1].step(t, g["ci"], where="post", color="tab:green")
    axes[1].set_ylabel("grid intensity\n[gCO2e/kWh]")
    axes[2].step(t, g["rate"], where="post", color="tab:red", label="total")
    axes[2].set_ylabel("operational carbon\n[gCO2e/s] (x PUE)")
    axes[2].set_xlabel("simulated time [h]")
    for ax in axes:
        ax.grid(alpha=0.3)
    s = tables.summary
    fig.suptitle(
        f"{title}: {s['operational_gco2']:.1f} gCO2e operational, mean intensity "
        f"{s.get('intensity_mean_gco2_per_kwh', float('nan')):.0f} gCO2e/kWh"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
