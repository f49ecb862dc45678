"""Plots of online scheduling: per-window plans (``greensim replan``) and the greenllm router's per-class plan history."""

from __future__ import annotations

import pandas as pd

from greensim.results.timeaxis import time_unit


def plot_plan(windows: pd.DataFrame, comparison: pd.DataFrame, path, title: str = "") -> None:
    """PNG: intensity (forecast and actual), observed rate and the chosen deployment per window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = float(windows["start_s"].diff().median()) if len(windows) > 1 else 0.0
    scale, unit = time_unit(float(windows["start_s"].max()) + w if len(windows) else 0.0)
    hours = windows["start_s"] / scale
    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    ax = axes[0]
    ax.step(hours, windows["intensity_actual_gco2_per_kwh"], where="post", label="actual (window mean)")
    ax.step(hours, windows["intensity_predicted_gco2_per_kwh"], where="post", ls="--", label="forecast")
    ax.set_ylabel("gCO2e/kWh")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.step(
        hours, windows["n_requests"] / (windows["start_s"].diff().median() if len(windows) > 1 else 1.0), where="post"
    )
    ax.set_ylabel("arrival rate [req/s]")
    ax = axes[2]
    names = sorted(set(windows["deployment"]) | set(windows["best"]))
    y = windows["deployment"].map({n: i for i, n in enumerate(names)})
    ax.step(hours, y, where="post", lw=2)
    sw = windows[windows["switched"]]
    ax.plot(
        sw["start_s"] / scale,
        sw["deployment"].map({n: i for i, n in enumerate(names)}),
        "o",
        color="C3",
        label="switch",
    )
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel(f"time [{unit}]")
    ax.set_ylabel("deployment")
    on = comparison.iloc[0]
    ax.set_title(
        f"online: {on['gco2_per_request']:.4f} gCO2e/req, SLO {on['slo_attainment_frac']:.1%}, "
        f"{int(on['n_switches'])} switches",
        fontsize=9,
    )
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_class_plan(plans: pd.DataFrame, path, title: str = "", duration_s: float | None = None) -> None:
    """PNG of a greenllm plan history: intensity, rate per class and the mode each class is planned on
    (solid) and served by (dotted; differs during a warm-up). ``duration_s``: the run's, so that the
    time unit is that of its other timelines (default: the last plan's time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    first = plans.drop_duplicates("time_s")
    scale, unit = time_unit(float(duration_s) if duration_s is not None else float(first["time_s"].max()))
    hours = first["time_s"] / scale
    axes[0].step(hours, first["intensity_gco2_per_kwh"], where="post")
    axes[0].set_ylabel("gCO2e/kWh (plan)")
    modes = sorted(set(plans["mode"]) | set(plans["serving_mode"].dropna()))
    ymap = {m: i for i, m in enumerate(modes)}
    for j, (c, g) in enumerate(plans.groupby("class", sort=False)):
        h = g["time_s"] / scale
        axes[1].step(h, g["rate_rps"], where="post", label=c)
        off = 0.08 * (j - 0.5)
        axes[2].step(h, g["mode"].map(ymap) + off, where="post", label=f"{c} (planned)", color=f"C{j}")
        axes[2].step(h, g["serving_mode"].map(ymap) + off, where="post", ls=":", color=f"C{j}")
    axes[1].set_ylabel("rate [req/s]")
    axes[1].legend(fontsize=8)
    axes[2].set_yticks(range(len(modes)), modes)
    axes[2].set_ylabel("mode")
    axes[2].set_xlabel(f"time [{unit}]")
    axes[2].legend(fontsize=8)
    sw = int(plans.drop_duplicates("time_s")["switched"].sum())
    axes[0].set_title(f"{title}: {sw} plan switches")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
