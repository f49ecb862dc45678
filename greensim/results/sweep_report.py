"""A sweep's results folder: one parquet table, the sweep description and summary plots.

Written like a run folder (:mod:`greensim.results.writer`): under a temporary name,
``manifest.json`` last, then renamed; a folder without ``manifest.json`` is incomplete.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from greensim.results.writer import to_jsonable, write_folder_atomically, write_text  # noqa: E402

__all__ = ["write_sweep", "plot_carbon_vs_slo", "plot_heatmaps", "swept_axes"]

# Metrics shown by the plots: the carbon vs SLO trade-off the sweeps are for.
SLO_METRIC = "slo_attainment_frac"
CARBON_METRIC = "carbon_gco2_per_request"


def swept_axes(df: pd.DataFrame, axes: Sequence[str]) -> List[str]:
    """The swept keys that take more than one value in ``df`` (plot axes)."""
    return [a for a in axes if a in df.columns and df[a].nunique(dropna=False) > 1]


def plot_carbon_vs_slo(df: pd.DataFrame, axes: Sequence[str], path: Path, title: str) -> None:
    """Scatter of carbon per request [gCO2e] vs SLO attainment, coloured by the first swept axis;
    with ``<metric>_low`` / ``_high`` columns (uncertainty bands), grey error bars from low to high."""
    ok = df[df["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    banded = all(f"{m}_{e}" in ok.columns for m in (SLO_METRIC, CARBON_METRIC) for e in ("low", "high"))
    if banded:  # uncertainty bands (performance.uncertainty: corners): min..max over nominal and both corners
        b = ok.dropna(subset=[f"{m}_{e}" for m in (SLO_METRIC, CARBON_METRIC) for e in ("low", "high")])
        x, y = b[SLO_METRIC].to_numpy(dtype=float), b[CARBON_METRIC].to_numpy(dtype=float)
        ax.errorbar(
            x,
            y,
            xerr=[x - b[f"{SLO_METRIC}_low"].to_numpy(dtype=float), b[f"{SLO_METRIC}_high"].to_numpy(dtype=float) - x],
            yerr=[
                y - b[f"{CARBON_METRIC}_low"].to_numpy(dtype=float),
                b[f"{CARBON_METRIC}_high"].to_numpy(dtype=float) - y,
            ],
            fmt="none",
            ecolor="0.65",
            elinewidth=0.8,
            zorder=1,
            label="_nolegend_",
        )
    by = swept_axes(ok, axes)[:1]
    if by and ok[by[0]].nunique() <= 12:
        for value, g in ok.groupby(by[0], sort=True):
            ax.scatter(g[SLO_METRIC], g[CARBON_METRIC], label=f"{value}", alpha=0.8)
        ax.legend(title=by[0], fontsize=8)
    elif by:
        sc = ax.scatter(ok[SLO_METRIC], ok[CARBON_METRIC], c=pd.to_numeric(ok[by[0]], errors="coerce"), alpha=0.8)
        fig.colorbar(sc, ax=ax, label=by[0])
    else:
        ax.scatter(ok[SLO_METRIC], ok[CARBON_METRIC], alpha=0.8)
    ax.set_xlabel("SLO attainment (TTFT and TPOT) [fraction]")
    ax.set_ylabel("carbon per request [gCO2e]")
    ax.set_title(
        f"{title}: {len(ok)} runs"
        + (f", {len(df) - len(ok)} failed" if len(ok) < len(df) else "")
        + (" (bars: uncertainty bands)" if banded else "")
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heatmaps(df: pd.DataFrame, x: str, y: str, path: Path, title: str) -> None:
    """Heatmaps of SLO attainment and carbon per request over two swept keys (mean over the rest)."""
    ok = df[df["status"] == "ok"]
    fig, axs = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, metric, label, cmap in (
        (axs[0], SLO_METRIC, "SLO attainment [fraction]", "viridis"),
        (axs[1], CARBON_METRIC, "carbon per request [gCO2e]", "magma_r"),
    ):
        table = ok.pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
        im = ax.imshow(table.to_numpy(dtype=float), origin="lower", aspect="auto", cmap=cmap)
        ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns], rotation=30, fontsize=8)
        ax.set_yticks(range(len(table.index)), [str(i) for i in table.index], fontsize=8)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        for (r, c), v in pd.DataFrame(table.to_numpy()).stack().items():
            ax.text(
                c,
                r,
                f"{v:.3g}",
                ha="center",
                va="center",
                fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.6, "linewidth": 0},
            )
        fig.colorbar(im, ax=ax, label=label)
    fig.suptitle(f"{title}: mean over other parameters and replicates")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_sweep(
    target_parent: Path,
    name: str,
    df: pd.DataFrame,
    description: Dict[str, Any],
    manifest: Dict[str, Any],
    plots: bool = True,
) -> Path:
    """Write ``<target_parent>/<name>/sweep-<hash8>/`` atomically and return its path.

    The hash is over the runs' cache keys, so the same sweep lands in the same folder.
    Files: ``sweep.parquet``, ``sweep.yaml`` (base experiment, grid, seeds),
    ``carbon_vs_slo.png``, ``heatmap.png`` (when two keys vary), ``manifest.json``.
    """
    h = hashlib.sha256("\n".join(df["run_key"]).encode()).hexdigest()
    target = Path(target_parent) / name / f"sweep-{h[:8]}"

    def fill(tmp: Path) -> None:
        write_text(tmp / "sweep.yaml", yaml.safe_dump(to_jsonable(description), sort_keys=False))
        df.to_parquet(tmp / "sweep.parquet", index=False)
        if plots:
            axes = list(description.get("axes", []))
            plot_carbon_vs_slo(df, axes, tmp / "carbon_vs_slo.png", name)
            two = swept_axes(df[df["status"] == "ok"], axes)[:2]
            if len(two) == 2:
                plot_heatmaps(df, two[0], two[1], tmp / "heatmap.png", name)

    return write_folder_atomically(target, fill, manifest)
