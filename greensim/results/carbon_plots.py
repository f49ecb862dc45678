"""Carbon over time: cluster power, grid intensity and operational gCO2e/s on one timeline."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from greensim.results.timeaxis import stairs, time_unit  # noqa: E402

__all__ = ["plot_carbon_timeline", "carbon_timeline_figure"]


def plot_carbon_timeline(path: Path, tables, title: str) -> None:
    """Write a three-panel PNG: total power [W], intensity [gCO2e/kWh], carbon rate [gCO2e/s], over
    simulated time in the unit of the run's other timelines (:func:`greensim.results.timeaxis.time_unit`)."""
    fig = carbon_timeline_figure(tables, title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def carbon_timeline_figure(tables, title: str):
    """The carbon timeline figure (see :func:`plot_carbon_timeline`)."""
    tl = tables.timeline
    g = tl.groupby("t_s", sort=True).agg(
        power_w=("power_w", "sum"), ci=("intensity_gco2_per_kwh", "first"), rate=("carbon_gco2_per_s", "sum")
    )
    end_s = float(tables.summary.get("duration_s", g.index.max() if len(g) else 0.0))
    scale, unit = time_unit(end_s)
    end = end_s / scale
    t = g.index.to_numpy() / scale
    fig, axes = plt.subplots(3, 1, figsize=(12, 7), sharex=True)
    stairs(axes[0], t, g["power_w"], end)
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
            stairs(axes[1], ps.index.to_numpy() / scale, ps["ci"], end, label=site)
            stairs(axes[2], ps.index.to_numpy() / scale, ps["rate"], end, label=site, alpha=0.6)
        axes[1].legend(fontsize=8)
    else:
        stairs(axes[1], t, g["ci"], end, color="tab:green")
    axes[1].set_ylabel("grid intensity\n[gCO2e/kWh]")
    stairs(axes[2], t, g["rate"], end, color="tab:red", label="total")
    axes[2].set_ylabel("operational carbon\n[gCO2e/s] (x PUE)")
    axes[2].set_xlabel(f"simulated time [{unit}]")
    for ax in axes:
        ax.grid(alpha=0.3)
    s = tables.summary
    fig.suptitle(
        f"{title}: {s['operational_gco2']:.1f} gCO2e operational, mean intensity "
        f"{s.get('intensity_mean_gco2_per_kwh', float('nan')):.0f} gCO2e/kWh"
    )
    fig.tight_layout()
    return fig
