"""Plan results: the frontier table and plot, plan.json and winner.yaml, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import yaml

from greensim.planning.search import Candidate, PlanResult
from greensim.results.writer import to_jsonable, write_folder_atomically

__all__ = ["plan_summary", "plot_frontier", "write_plan", "winner_experiment_dict"]

_COLORS = {"colocated": "tab:blue", "dpd": "tab:orange", "dsd": "tab:green", "spec": "tab:purple"}


def _cand(c: Candidate | None) -> Any:
    if c is None:
        return None
    return {
        "name": c.name,
        "mode": c.mode,
        "new_gpu": c.new_gpu,
        "n_new": c.n_new,
        "old_gpu": c.old_gpu,
        "n_old": c.n_old,
        "gamma": c.gamma,
        "max_batch_size": c.max_batch_size,
        "power_cap_frac": c.power_cap_frac,
        "stage": c.stage,
        "carbon_g_per_request": c.carbon_g_per_request,
        "carbon_g_per_request_provisioned": (c._metrics() or {}).get("carbon_gco2_per_request_provisioned"),
        "carbon_g_per_request_busy": (c._metrics() or {}).get("carbon_gco2_per_request_busy"),
        "stable": c.stable,
        "slo_attainment_frac": c.slo_attainment_frac,
        "slo_attainment_frac_pessimistic": (c._metrics_pessimistic() or {}).get("slo_attainment_frac"),
        "decision_attainment_frac": c.decision_attainment_frac,
        "predicted_carbon_g_per_request": c.predicted_carbon_g_per_request,
        "bands": c.bands,  # low / point / high of the headline metrics (performance.uncertainty: corners)
    }


def _saving(res: PlanResult, accounting: str):
    """1 - winner / baseline carbon per request under one accounting (None if either is missing)."""
    if res.best is None or res.baseline is None:
        return None
    b, c = ((x._metrics() or {}).get(f"carbon_gco2_per_request_{accounting}") for x in (res.baseline, res.best))
    return None if b is None or c is None or not b > 0 else 1.0 - c / b


def plan_summary(res: PlanResult) -> Dict[str, Any]:
    """The decision as a JSON-able dict: winner, baseline, saving, feasibility and search statistics
    (with uncertainty bands: the winner's and baseline's ``bands``, ``saving_frac_band`` and how the bands
    were obtained, ``uncertainty``)."""
    return to_jsonable(
        {
            "plan": res.spec.name,
            "attainment_target": res.spec.attainment_target,
            "feasible": res.feasible,
            "winner": _cand(res.best),
            "baseline": _cand(res.baseline),
            "accounting": res.spec.carbon.accounting,
            "saving_frac": res.saving_frac,
            **{f"saving_frac_{a}": _saving(res, a) for a in ("provisioned", "busy")},
            "wall_s": res.wall_s,
            **res.stats,
        }
    )


def winner_experiment_dict(res: PlanResult) -> Dict[str, Any] | None:
    """The winner as an experiment file (``greensim run winner.yaml`` reproduces its confirming run)."""
    if res.best is None or res.best.experiment is None:
        return None
    d = res.best.experiment.model_dump(mode="json", exclude_defaults=False)
    d["simulation"]["progress"] = True
    return d


def plot_frontier(res: PlanResult, path: Path) -> None:
    """Carbon per request vs SLO attainment, one point per simulated candidate, coloured by mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = res.frontier
    df = df[df["slo_attainment_frac"].notna()]
    fig, ax = plt.subplots(figsize=(8, 5))
    for mode, g in df.groupby("mode"):
        full = g[g["stage"] == "full_sim"]
        short = g[g["stage"] != "full_sim"]
        col = _COLORS.get(mode, "gray")
        if len(full):
            ax.scatter(
                100 * full["slo_attainment_frac"],
                full["carbon_g_per_request"],
                c=col,
                label=f"{mode} (full)",
                s=36,
                zorder=3,
            )
        if len(short):
            ax.scatter(
                100 * short["slo_attainment_frac"],
                short["carbon_g_per_request"],
                facecolors="none",
                edgecolors=col,
                label=f"{mode} (short)",
                s=36,
                zorder=2,
            )
    ax.axvline(100 * res.spec.attainment_target, color="k", ls="--", lw=1, label="target")
    for c, mk, lab in ((res.best, "*", "winner"), (res.baseline, "s", "baseline (new GPUs)")):
        b = (c.bands or {}) if c is not None else {}
        if (
            c is not None
            and c.slo_attainment_frac is not None
            and "slo_attainment_frac" in b
            and "carbon_gco2_per_request" in b
        ):
            x, y = 100 * c.slo_attainment_frac, c.carbon_g_per_request
            ba, bc = b["slo_attainment_frac"], b["carbon_gco2_per_request"]
            ax.errorbar(
                [x],
                [y],
                xerr=[[x - 100 * ba["low"]], [100 * ba["high"] - x]],
                yerr=[[bc["point"] - bc["low"]], [bc["high"] - bc["point"]]],  # about y: it may add charge_unused
                fmt="none",
                ecolor="red",
                elinewidth=1,
                capsize=3,
                alpha=0.6,
                zorder=4,
            )
        if c is not None and c.slo_attainment_frac is not None:
            ax.scatter(
                [100 * c.slo_attainment_frac],
                [c.carbon_g_per_request],
                marker=mk,
                s=260 if mk == "*" else 120,
                facecolors="none",
                edgecolors="red",
                linewidths=1.8,
                label=lab,
                zorder=4,
            )
    ax.set_xlabel("SLO attainment [% of requests meeting TTFT and TPOT]")
    ax.set_ylabel("carbon per request [gCO2e]")
    sav = res.saving_frac
    ax.set_title(
        f"plan {res.spec.name}: {len(df)} candidates simulated"
        + (f", saving {sav:.1%} vs new-GPU baseline" if sav is not None else "")
    )
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plan(res: PlanResult, out_dir: str | Path | None = None, plots: bool = True) -> Path:
    """Write ``<out>/<plan name>/plan/``: frontier.csv/.parquet, plan.json, winner.yaml, frontier.png."""
    base = Path(out_dir) if out_dir is not None else Path(res.spec.output.dir)
    df = res.frontier
    summary = plan_summary(res)
    winner = winner_experiment_dict(res)

    def fill(tmp: Path) -> None:
        df.to_csv(tmp / "frontier.csv", index=False, float_format="%.6g")
        out = df.copy()
        for col in out.columns:
            if out[col].dtype == object:
                out[col] = out[col].astype("string") if col in ("old_gpu", "reason") else out[col]
        out.to_parquet(tmp / "frontier.parquet", index=False)
        (tmp / "plan.json").write_text(json.dumps(to_jsonable(summary), indent=2))
        (tmp / "plan_spec.yaml").write_text(yaml.safe_dump(res.spec.model_dump(mode="json"), sort_keys=False))
        if winner is not None:
            (tmp / "winner.yaml").write_text(
                f"# winner of plan {res.spec.name}: {res.best.name} (greensim plan)\n"
                + yaml.safe_dump(winner, sort_keys=False)
            )
        if plots:
            plot_frontier(res, tmp / "frontier.png")

    from greensim.base.version import provenance

    manifest = {**provenance(), "n_candidates": len(df), "wall_s": res.wall_s}
    return write_folder_atomically(base / res.spec.name / "plan", fill, manifest)
