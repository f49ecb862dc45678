"""PNG plots of a run: latency CDFs with SLO lines, carbon breakdown, timeline."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402

from greensim.results.timeaxis import stairs, time_unit  # noqa: E402

__all__ = ["plot_run", "plot_bands", "latency_figure", "carbon_breakdown_figure", "timeline_figure"]


def _log_ticks(ax, lo: float, hi: float) -> None:
    """Major ticks on a log axis labelled as plain numbers, at 1-2-5 per decade over a narrow range
    and fewer over a wide one, no minor labels: labels that cannot overlap (issue 18: the TPOT
    CDF's minor labels 3x10^-2, 4x10^-2 ran into each other)."""
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = (1.0, 2.0, 5.0) if decades <= 2.5 else (1.0, 3.0) if decades <= 4 else (1.0,)
    ax.xaxis.set_major_locator(mticker.LogLocator(base=10.0, subs=subs, numticks=30))
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(mticker.LogLocator(base=10.0, subs=np.arange(2, 10), numticks=30))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())


def _cdf(ax, x, label, slo=None, unit="s", log=False):
    x = np.sort(x[np.isfinite(x)])
    if log:
        x = x[x > 0]  # a log axis cannot show 0
    if x.size:
        ax.plot(x, np.arange(1, x.size + 1) / x.size, label=label)
    if slo is not None:
        ax.axvline(slo, color="k", ls="--", lw=1, label=f"SLO {slo:g} {unit}")
    if log:
        ax.set_xscale("log")
        pts = np.concatenate([x[[0, -1]] if x.size else np.array([]), [slo] if slo else []])
        if pts.size:
            _log_ticks(ax, float(pts.min()), float(pts.max()))
    ax.set_xlabel(f"{label} [{unit}]")
    ax.set_ylabel("fraction of requests")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def latency_figure(tables, ttft_slo_s: float, tpot_slo_s: float, title: str):
    """The latency CDF figure (TTFT and TPOT on log axes, TPOT in ms; end-to-end linear)."""
    r = tables.requests
    ok = ~r["rejected"].to_numpy()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    _cdf(axes[0], r["ttft_s"].to_numpy()[ok], "TTFT", ttft_slo_s, log=True)
    _cdf(axes[1], 1e3 * r["tpot_s"].to_numpy()[ok], "TPOT", 1e3 * tpot_slo_s, "ms/token", log=True)
    _cdf(axes[2], r["e2e_s"].to_numpy()[ok], "end-to-end latency")
    fig.suptitle(f"{title}: latency CDFs (SLO attainment {tables.summary['slo_attainment_frac']:.1%})")
    fig.tight_layout()
    return fig


def instance_labels(inst) -> list:
    return [f"{n}#{i}" for n, i in zip(inst["name"], inst["instance"])]


def carbon_breakdown_figure(tables, title: str):
    """Stacked operational + embodied carbon per instance; the legend sits above the axes, where it
    cannot cover a bar (issue 18: it covered the first one)."""
    inst = tables.instances
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(inst) + 3), 4.3))
    labels = instance_labels(inst)
    x = np.arange(len(inst))
    ax.bar(x, inst["operational_gco2"], label="operational")
    ax.bar(x, inst["embodied_gco2"], bottom=inst["operational_gco2"], label="embodied (amortised)")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylabel("carbon [gCO2e]")
    s = tables.summary
    ax.set_title(f"{title}: {s['carbon_gco2']:.1f} gCO2e total, {s['carbon_gco2_per_request']:.3g} g/request", pad=24)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False, fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def timeline_figure(tables, title: str):
    """Queue (max per bin), running batch (time-weighted mean per bin), power and, with DPD, the
    KV links' busy fraction, over simulated time in the run's unit (:func:`time_unit`)."""
    tl = tables.timeline
    labels = instance_labels(tables.instances)
    ltl = (getattr(tables, "extra", None) or {}).get("link_timeline")  # DPD: KV link busy fraction
    end_s = float(tables.summary.get("duration_s", tl["t_s"].max() if len(tl) else 0.0))
    scale, unit = time_unit(end_s)
    end = end_s / scale
    n_rows = 4 if ltl is not None and len(ltl) else 3
    fig, axes = plt.subplots(n_rows, 1, figsize=(12, 8 + 2 * (n_rows - 3)), sharex=True)
    batch = "batch_mean" if "batch_mean" in tl else "batch_max"  # a timeline from before issue 18
    for k, g in tl.groupby("instance"):
        lab = labels[int(k)] if int(k) < len(labels) else str(k)
        t = g["t_s"].to_numpy() / scale
        stairs(axes[0], t, g["queue_max"], end, label=lab)
        stairs(axes[1], t, g[batch], end, label=lab)
        stairs(axes[2], t, g["power_w"], end, label=lab)
    axes[0].set_ylabel("queue length\n(max per bin)")
    axes[1].set_ylabel("running batch\n(time-weighted\nmean per bin)" if batch == "batch_mean" else "running batch")
    axes[2].set_ylabel("power [W]")
    if n_rows == 4:
        for k, g in ltl.groupby("link"):
            stairs(axes[3], g["t_s"].to_numpy() / scale, g["busy_frac"], end, label=f"link {k}")
        axes[3].set_ylabel("KV link busy\n(fraction per bin)")
        axes[3].set_ylim(0, 1.05)
    fails = (getattr(tables, "extra", None) or {}).get("failures")
    if fails is not None and len(fails):  # GPU failures: each GPU's down time, in its line's colour
        order = {int(k): c for c, k in enumerate(sorted(tl["instance"].unique()))}
        seen = set()
        for f in fails.itertuples():
            k = int(f.instance)
            up = f.up_s if f.up_s == f.up_s else end_s  # NaN: still down at the end of the run
            lab = None if k in seen else f"{labels[k] if k < len(labels) else k} down"
            seen.add(k)
            for ax in axes:
                ax.axvspan(
                    f.down_s / scale,
                    up / scale,
                    color=f"C{order.get(k, k) % 10}",
                    alpha=0.15,
                    lw=0,
                    label=lab if ax is axes[0] else None,
                )
    axes[-1].set_xlabel(f"simulated time [{unit}]")
    for ax in axes:
        ax.grid(alpha=0.3)
    if len(labels) <= 8:  # beside the plot, not over the data
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", frameon=False)
    fig.suptitle(f"{title}: timeline")
    fig.tight_layout()
    return fig


def plot_run(folder: Path, tables, ttft_slo_s: float, tpot_slo_s: float, title: str) -> None:
    """Write latency_cdf.png, carbon_breakdown.png, timeline.png, carbon_timeline.png, with
    uncertainty bands in the summary bands.png, with speculative instances speculative.png, and
    with router greenllm's plan history
    (``tables.extra["plans"]``) plan.png into ``folder``; the time axes share one unit."""
    for name, fig in (
        ("latency_cdf.png", latency_figure(tables, ttft_slo_s, tpot_slo_s, title)),
        ("carbon_breakdown.png", carbon_breakdown_figure(tables, title)),
        ("timeline.png", timeline_figure(tables, title)),
    ):
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)

    from greensim.results.carbon_plots import plot_carbon_timeline

    plot_carbon_timeline(folder / "carbon_timeline.png", tables, title)
    from greensim.results.spec_plots import plot_speculative

    plot_speculative(folder / "speculative.png", tables.instances, title)  # only with speculative instances
    if tables.summary.get("bands"):
        plot_bands(folder / "bands.png", tables.summary, title)
    plans = (getattr(tables, "extra", None) or {}).get("plans")
    if plans is not None and len(plans):  # router greenllm's plan history
        from greensim.results.online_plots import plot_class_plan

        plot_class_plan(plans, folder / "plan.png", title, duration_s=tables.summary.get("duration_s"))


#: (summary metric, label, scale to the unit shown, unit) of the bands plot
_BAND_ROWS = (
    ("slo_attainment_frac", "SLO attainment", 100.0, "%"),
    ("throughput_rps", "throughput", 1.0, "req/s"),
    ("ttft_s_p50", "TTFT p50", 1.0, "s"),
    ("ttft_s_p90", "TTFT p90", 1.0, "s"),
    ("ttft_s_p99", "TTFT p99", 1.0, "s"),
    ("tpot_s_p50", "TPOT p50", 1e3, "ms"),
    ("tpot_s_p90", "TPOT p90", 1e3, "ms"),
    ("tpot_s_p99", "TPOT p99", 1e3, "ms"),
    ("energy_kwh", "energy", 1.0, "kWh"),
    ("operational_gco2", "carbon, operational", 1.0, "gCO2e"),
    ("embodied_gco2", "carbon, embodied", 1.0, "gCO2e"),
    ("carbon_gco2", "carbon, total", 1.0, "gCO2e"),
    ("carbon_gco2_per_request", "carbon per request", 1.0, "gCO2e"),
)


def plot_bands(path: Path, summary, title: str) -> None:
    """bands.png: each headline metric's nominal value with its [low, high] band as an error bar,
    relative to the nominal value (labels give the absolute numbers)."""
    bands = summary["bands"]
    rows = [r for r in _BAND_ROWS if r[0] in bands and np.isfinite(bands[r[0]]["point"]) and bands[r[0]]["point"]]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6))
    y = np.arange(len(rows))[::-1]
    for yi, (key, label, scale, unit) in zip(y, rows):
        b = bands[key]
        p, lo, hi = b["point"], b["low"], b["high"]
        rel_lo, rel_hi = 100 * (lo / p - 1), 100 * (hi / p - 1)
        ax.errorbar([0.0], [yi], xerr=[[-rel_lo], [rel_hi]], fmt="o", color="tab:blue", capsize=4)
        for c, mk in (("optimistic", "v"), ("pessimistic", "^")):
            v = b.get(c)
            if v is not None and np.isfinite(v):
                ax.plot([100 * (v / p - 1)], [yi], mk, color="tab:orange" if c == "pessimistic" else "tab:green")
        ax.annotate(
            f"{scale * p:.4g} [{scale * lo:.4g}, {scale * hi:.4g}] {unit}",
            (max(rel_hi, 0.0), yi),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.plot([], [], "v", color="tab:green", label="optimistic corner")
    ax.plot([], [], "^", color="tab:orange", label="pessimistic corner")
    ax.set_yticks(y, [r[1] for r in rows])
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("relative to the nominal run [%] (bar: min..max over nominal and both corners)")
    ax.margins(x=0.35)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(f"{title}: uncertainty bands (performance.band corners, profiles/uncertainty.yaml)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
