"""Summary statistics of a request trace, and its plot (rate over time, length histograms)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

__all__ = ["trace_stats", "format_stats", "plot_trace"]

PERCENTILES = (50, 90, 99)


def trace_stats(arrival_s: Optional[np.ndarray], input_tokens: np.ndarray, output_tokens: np.ndarray) -> Dict[str, Any]:
    """Rows, duration [s], mean rate [req/s] (= 1 / mean inter-arrival gap), inter-arrival CV,
    index of dispersion of counts in 60 s bins, and input/output mean, p50/p90/p99, max
    [tokens], plus the Spearman rank correlation of input and output lengths."""
    from scipy.stats import spearmanr

    x = np.asarray(input_tokens, dtype=float)
    y = np.asarray(output_tokens, dtype=float)
    s: Dict[str, Any] = {"n_requests": int(x.size)}
    if arrival_s is not None and len(arrival_s) > 1:
        t = np.asarray(arrival_s, dtype=float)
        g = np.diff(t)
        s["duration_s"] = float(t[-1] - t[0])
        s["mean_rate_rps"] = float(1.0 / g.mean()) if g.mean() > 0 else float("inf")
        s["iat_cv"] = float(g.std() / g.mean()) if g.mean() > 0 else float("nan")
        if s["duration_s"] >= 120:
            counts = np.bincount(((t - t[0]) // 60.0).astype(np.int64))[:-1]  # drop the partial last minute
            s["idc_60s"] = float(counts.var() / counts.mean()) if counts.mean() > 0 else float("nan")
    for name, v in (("input_tokens", x), ("output_tokens", y)):
        s[f"{name}_mean"] = float(v.mean())
        for p, q in zip(PERCENTILES, np.percentile(v, PERCENTILES)):
            s[f"{name}_p{p}"] = float(q)
        s[f"{name}_max"] = float(v.max())
    # undefined (nan) for fewer than 3 rows or a constant column, without scipy's warning
    varies = x.size > 2 and np.ptp(x) > 0 and np.ptp(y) > 0
    s["spearman_input_output"] = float(spearmanr(x, y).statistic) if varies else float("nan")
    return s


def format_stats(s: Dict[str, Any]) -> str:
    """A readable multi-line summary of :func:`trace_stats`."""
    lines = [f"rows                 {s['n_requests']:,}"]
    if "duration_s" in s:
        lines += [
            f"duration             {s['duration_s']:,.1f} s",
            f"mean rate            {s['mean_rate_rps']:.3f} req/s (1 / mean inter-arrival gap)",
            f"inter-arrival CV     {s['iat_cv']:.3f}",
        ]
        if "idc_60s" in s:
            lines.append(f"IDC of 60 s counts   {s['idc_60s']:.2f} (1 = Poisson)")
    else:
        lines.append("arrival times        none (lengths only)")
    for name in ("input_tokens", "output_tokens"):
        lines.append(
            f"{name:<20} mean {s[f'{name}_mean']:,.0f}  p50 {s[f'{name}_p50']:,.0f}  "
            f"p90 {s[f'{name}_p90']:,.0f}  p99 {s[f'{name}_p99']:,.0f}  max {s[f'{name}_max']:,.0f}"
        )
    lines.append(f"Spearman(in, out)    {s['spearman_input_output']:.3f}")
    return "\n".join(lines)


def plot_trace(
    path: Path, arrival_s: Optional[np.ndarray], input_tokens: np.ndarray, output_tokens: np.ndarray, title: str
) -> None:
    """Write a PNG: request rate over time (60 s bins, or span/100 if shorter) and log-binned
    histograms of input and output lengths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    if arrival_s is not None and len(arrival_s) > 1:
        t = np.asarray(arrival_s, dtype=float)
        span = t[-1] - t[0]
        bin_s = 3600.0 if span > 3 * 86400 else 60.0 if span >= 20 * 60 else max(span / 100.0, 1e-3)
        counts = np.bincount(((t - t[0]) // bin_s).astype(np.int64))
        x = t[0] + (np.arange(counts.size) + 0.5) * bin_s
        scale, unit = (3600.0, "h") if span > 3 * 3600 else (60.0, "min")
        ax.step(x / scale, counts / bin_s, where="mid", lw=0.8)
        ax.axhline(len(t) / max(span, 1e-9), color="k", ls="--", lw=1, label="mean")
        ax.set_xlabel(f"time [{unit}]")
        ax.set_ylabel(f"arrival rate [req/s] ({bin_s:g} s bins)")
        ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "no arrival times\n(lengths only)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.grid(alpha=0.3)
    for ax, v, label in ((axes[1], input_tokens, "input tokens"), (axes[2], output_tokens, "output tokens")):
        v = np.asarray(v, dtype=float)
        bins = np.logspace(0, np.log10(max(v.max(), 2.0)) + 0.01, 60)
        ax.hist(v, bins=bins, color="tab:blue" if "input" in label else "tab:orange")
        ax.set_xscale("log")
        for p in PERCENTILES:
            ax.axvline(np.percentile(v, p), color="k", ls=":", lw=1)
        ax.set_xlabel(f"{label} (dotted: p50, p90, p99)")
        ax.set_ylabel("requests")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def profile_stats(df):
    """Per model of a ServeGen rate profile: windows, span [d], mean / p5 / p95 / max rate
    [req/s], CV of the window rates, and the ratio of the highest to the lowest hourly mean."""
    import pandas as pd

    rows = []
    for model, g in df.groupby("model", sort=False):
        r = g["total_rate_rps"].to_numpy(dtype=float)
        hour = ((g["window_start_s"].to_numpy(dtype=float) % 86400) // 3600).astype(int)
        hourly = pd.Series(r).groupby(hour).mean()
        rows.append(
            {
                "model": model,
                "windows": int(r.size),
                "span_d": float((g["window_start_s"].max() + g["window_len_s"].iloc[0]) / 86400),
                "mean_rps": float(r.mean()),
                "p5_rps": float(np.percentile(r, 5)),
                "p95_rps": float(np.percentile(r, 95)),
                "max_rps": float(r.max()),
                "cv": float(r.std() / r.mean()),
                "hourly_peak_to_trough": float(hourly.max() / hourly.min()) if hourly.min() > 0 else float("inf"),
            }
        )
    return pd.DataFrame(rows).round(3)


def plot_profile(path: Path, df, title: str) -> None:
    """PNG of each model's rate over time (ServeGen profile)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(14, 4))
    for model, g in df.groupby("model", sort=False):
        ax.plot(g["window_start_s"].to_numpy() / 86400, g["total_rate_rps"].to_numpy(), lw=0.7, label=model)
    ax.set_yscale("log")
    ax.set_xlabel("time [days]")
    ax.set_ylabel("total rate [req/s] (10-min windows)")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
