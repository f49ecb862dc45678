"""PNG plots of a run: latency CDFs with SLO lines, carbon breakdown, timeline."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_run"]


def _cdf(ax, x, label, slo=None, unit="s"):
    x = np.sort(x[np.isfinite(x)])
    if x.size:
        ax.plot(x, np.arange(1, x.size + 1) / x.size, label=label)
    if slo is not None:
        ax.axvline(slo, color="k", ls="--", lw=1, label=f"SLO {slo:g} {unit}")
    ax.set_xlabel(f"{label} [{unit}]")
    ax.set_ylabel("fraction of requests")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def plot_run(folder: Path, tables, ttft_slo_s: float, tpot_slo_s: float, title: str) -> None:
    """Write latency_cdf.png, carbon_breakdown.png and timeline.png into ``folder``."""
    r = tables.requests
    ok = ~r["rejected"].to_numpy()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    _cdf(axes[0], r["ttft_s"].to_numpy()[ok], "TTFT", ttft_slo_s)
    _cdf(axes[1], r["tpot_s"].to_numpy()[ok], "TPOT", tpot_slo_s, "s/token")
    _cdf(axes[2], r["e2e_s"].to_numpy()[ok], "end-to-end latency")
    for ax in axes[:2]:
        ax.set_xscale("log")
    fig.suptitle(f"{title}: latency CDFs (SLO attainment {tables.summary['slo_attainment_frac']:.1%})")
    fig.tight_layout()
    fig.savefig(folder / "latency_cdf.png", dpi=100)
    plt.close(fig)

    inst = tables.instances
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(inst) + 3), 4))
    labels = [f"{n}#{i}" for n, i in zip(inst["name"], inst["instance"])]
    x = np.arange(len(inst))
    ax.bar(x, inst["operational_gco2"], label="operational")
    ax.bar(x, inst["embodied_gco2"], bottom=inst["operational_gco2"], label="embodied (amortised)")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("carbon [gCO2e]")
    s = tables.summary
    ax.set_title(f"{title}: {s['carbon_gco2']:.1f} gCO2e total, {s['carbon_gco2_per_request']:.3g} g/request")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "carbon_breakdown.png", dpi=100)
    plt.close(fig)

    tl = tables.timeline
    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True)
    for k, g in tl.groupby("instance"):
        lab = labels[int(k)] if int(k) < len(labels) else str(k)
        axes[0].step(g["t_s"], g["queue_max"], where="post", label=lab)
        axes[1].step(g["t_s"], g["batch_max"], where="post", label=lab)
        axes[2].step(g["t_s"], g["power_w"], where="post", label=lab)
    axes[0].set_ylabel("queue length\n(max per bin)")
    axes[1].set_ylabel("running batch\n(max per bin)")
    axes[2].set_ylabel("power [W]")
    axes[2].set_xlabel("simulated time [s]")
    for ax in axes:
        ax.grid(alpha=0.3)
    if len(labels) <= 8:
        axes[0].legend(loc="upper right", fontsize="small")
    fig.suptitle(f"{title}: timeline")
    fig.tight_layout()
    fig.savefig(folder / "timeline.png", dpi=100)
    plt.close(fig)

    from greensim.results.carbon_plots import plot_carbon_timeline

    plot_carbon_timeline(folder / "carbon_timeline.png", tables, title)
