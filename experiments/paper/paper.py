"""GreenLLM's headline claims as experiments (a script beside the experiments it runs, not part
of the greensim package; ``run_all.py`` and the tests import it as ``paper``): GreenLLM's choice vs serving on new GPUs only.

A *paper spec* (``experiments/paper/scenarios.yaml``) names one planner plan file per
application and the scenario axes: SLO scale factors, grid intensities and lifetime /
embodied accounting. For every scenario :func:`run_paper` applies the axes to the plan as
overrides and asks the planner twice:

- **baseline**: the plan restricted to ``search.modes: [colocated]`` (serving on the
  inventory's new GPUs only, the lowest-carbon count that meets the attainment target, else
  the one with the highest attainment);
- **GreenLLM**: the plan with all its modes (colocated, DPD, DSD), i.e. the SLO-aware,
  carbon-minimising choice of paper.md section 7.

Both go through :func:`greensim.planning.plan` with the same seed and requests, so a
configuration both pick has identical numbers. :func:`write_paper_folder` writes
``summary.csv`` (one row per scenario), ``headline.json`` and figures atomically.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from greensim.base.errors import ConfigError
from greensim.experiment.load import load_yaml

__all__ = [
    "PaperSpec",
    "Scenario",
    "load_paper_spec",
    "scenarios",
    "scenario_overrides",
    "run_paper",
    "headline",
    "write_paper_folder",
    "default_paper_spec_path",
    "PAPER_HEADLINE",
]

#: The paper's headline (paper.md section 9): up to 40.6 % lower carbon than new-only serving,
#: with more than 90 % of requests meeting their SLOs.
PAPER_HEADLINE = {"max_reduction_pct": 40.6, "attainment_pct": 90.0}


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Grid(_Base):
    region: str = Field(description="grid zone the intensity comes from (for the table)")
    gco2_per_kwh: float = Field(ge=0, description="constant grid intensity [gCO2e/kWh]")


class Lifetime(_Base):
    new_years: float = Field(gt=0, description="lifetime of the new GPUs [years]")
    old: Literal["sunk", "extended", "linear"] = Field(description="embodied scheme of the old GPUs")
    extended_years: Optional[float] = Field(None, gt=0, description="extra years of the old GPUs (old: extended)")

    @model_validator(mode="after")
    def _ext(self):
        if (self.old == "extended") != (self.extended_years is not None):
            raise ValueError("extended_years is required with old: extended, and only then")
        return self


class Quick(_Base):
    apps: List[str] = Field(min_length=1)
    slo_scales: List[float] = Field(min_length=1)
    grids: List[str] = Field(min_length=1)
    lifetimes: List[str] = Field(min_length=1)


class PaperSpec(_Base):
    """The scenario grid (see experiments/paper/scenarios.yaml for every field's source)."""

    attainment_target: float = Field(gt=0, le=1, description="fraction of requests that must meet both SLOs")
    apps: Dict[str, str] = Field(min_length=1, description="application label -> plan file")
    slo_scales: List[float] = Field(min_length=1, description="factors on the plan's (TTFT, TPOT) pair")
    grids: Dict[str, Grid] = Field(min_length=1)
    default_grid: str
    lifetimes: Dict[str, Lifetime] = Field(min_length=1)
    default_lifetime: str
    default_slo_scale: float
    quick: Quick

    @model_validator(mode="after")
    def _names(self):
        if any(not (s > 0) for s in self.slo_scales):
            raise ValueError(f"slo_scales must be > 0, got {self.slo_scales}")
        checks = [
            ("default_grid", [self.default_grid], self.grids),
            ("default_lifetime", [self.default_lifetime], self.lifetimes),
            ("quick.apps", self.quick.apps, self.apps),
            ("quick.grids", self.quick.grids, self.grids),
            ("quick.lifetimes", self.quick.lifetimes, self.lifetimes),
        ]
        for field, names, known in checks:
            bad = [n for n in names if n not in known]
            if bad:
                raise ValueError(f"{field}: unknown name(s) {bad}; valid: {sorted(known)}")
        if self.default_slo_scale not in self.slo_scales:
            raise ValueError(f"default_slo_scale {self.default_slo_scale} is not in slo_scales {self.slo_scales}")
        return self


class Scenario(_Base):
    app: str
    slo_scale: float
    grid: str
    lifetime: str

    @property
    def label(self) -> str:
        return f"{self.app}-slo{self.slo_scale:g}-{self.grid}-{self.lifetime}"


def default_paper_spec_path() -> Path:
    """``scenarios.yaml`` beside this script."""
    return Path(__file__).resolve().parent / "scenarios.yaml"


def load_paper_spec(path: str | Path | None = None) -> tuple[PaperSpec, Path]:
    """Read and validate a paper spec; returns it and the folder its plan paths are relative to."""
    p = Path(path) if path is not None else default_paper_spec_path()
    data = load_yaml(p)
    try:
        spec = PaperSpec.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(x) for x in e['loc']) or '(top level)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise ConfigError(f"{p}: invalid paper spec:\n  - " + "\n  - ".join(lines)) from None
    for app, f in spec.apps.items():
        if not (p.parent / f).is_file():
            raise ConfigError(
                f"{p}: apps.{app}: plan file {p.parent / f} not found. Fix the path (relative to {p.parent})."
            )
    return spec, p.parent


def scenarios(spec: PaperSpec, quick: bool = False) -> List[Scenario]:
    """The scenarios to run, in a stable order without duplicates.

    Full: every app x slo_scale x grid at the default lifetime, plus every app x grid x
    lifetime at the default SLO scale. Quick: the product of the ``quick`` lists.
    """
    if quick:
        q = spec.quick
        combos = itertools.product(q.apps, q.slo_scales, q.grids, q.lifetimes)
    else:
        a = itertools.product(spec.apps, spec.slo_scales, spec.grids, [spec.default_lifetime])
        b = itertools.product(spec.apps, [spec.default_slo_scale], spec.grids, spec.lifetimes)
        combos = itertools.chain(a, b)
    out, seen = [], set()
    for app, s, g, lt in combos:
        scn = Scenario(app=app, slo_scale=float(s), grid=g, lifetime=lt)
        if scn not in seen:
            seen.add(scn)
            out.append(scn)
    return out


def _gpus_by_role(plan_data: Dict[str, Any], role: str) -> List[str]:
    return sorted({str(i["gpu"]) for i in plan_data.get("inventory", []) if i.get("role") == role})


def scenario_overrides(spec: PaperSpec, scn: Scenario, plan_data: Dict[str, Any]) -> Dict[str, Any]:
    """Dotted overrides that turn an application's plan into one scenario.

    SLO pair x ``slo_scale``; a constant intensity; the new GPUs' lifetime through
    ``carbon.gpu_lifetime_years``; the old GPUs' embodied scheme through
    ``carbon.embodied_schemes`` (linear: charged as new GPUs over ``carbon.lifetime_years``).
    """
    grid, lt = spec.grids[scn.grid], spec.lifetimes[scn.lifetime]
    slo = plan_data["slo"]
    carbon = dict(plan_data.get("carbon") or {})
    new_life = dict(carbon.get("gpu_lifetime_years") or {})
    new_life.update({g: lt.new_years for g in _gpus_by_role(plan_data, "new")})
    schemes = {
        k: v for k, v in (carbon.get("embodied_schemes") or {}).items() if k not in _gpus_by_role(plan_data, "old")
    }
    for g in _gpus_by_role(plan_data, "old"):
        if lt.old == "sunk":
            schemes[g] = {"scheme": "sunk"}
        elif lt.old == "extended":
            schemes[g] = {"scheme": "extended", "extended_years": lt.extended_years}
    return {
        "name": f"{plan_data['name']}-{scn.label}".replace("_", "-"),
        "slo.ttft_s": float(slo["ttft_s"]) * scn.slo_scale,
        "slo.tpot_s": float(slo["tpot_s"]) * scn.slo_scale,
        "attainment_target": spec.attainment_target,
        "carbon.intensity": {"kind": "constant", "gco2_per_kwh": grid.gco2_per_kwh},
        "carbon.gpu_lifetime_years": new_life,
        "carbon.embodied_schemes": schemes,
    }


def _plan_fn() -> Callable[..., Any]:
    from greensim.planning import plan

    return plan


def _cand(c: Any, prefix: str) -> Dict[str, Any]:
    return {
        f"{prefix}_config": c.name,
        f"{prefix}_mode": c.mode,
        f"{prefix}_carbon_g_per_request": float(c.carbon_g_per_request),
        f"{prefix}_attainment_frac": float(c.slo_attainment_frac),
    }


def run_scenario(
    spec: PaperSpec,
    base_dir: Path,
    scn: Scenario,
    plan: Callable[..., Any] | None = None,
    plan_kwargs: Optional[Dict[str, Any]] = None,
    extra_overrides: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """One summary row: the scenario, the new-only baseline, GreenLLM's choice and the reduction.

    ``extra_overrides`` (dotted keys of the plan file, e.g. ``workload.n_requests``) apply
    after the scenario's own; ``plan_kwargs`` go to :func:`greensim.planning.plan`.
    """
    plan = plan or _plan_fn()
    path = base_dir / spec.apps[scn.app]
    data = load_yaml(path)
    # the summary reports the picks' point values; uncertainty bands of both picks would add four full
    # simulations per plan (144 plans): pass extra_overrides={"performance.uncertainty": "corners"} for them
    ov = {"performance.uncertainty": "none", **scenario_overrides(spec, scn, data), **(extra_overrides or {})}
    kw = dict(progress=False, **(plan_kwargs or {}))

    # when nothing meets the target the planner itself returns the highest attainment over the
    # whole search space (paper.md section 7), theory-pruned candidates included
    base_res = plan(path, overrides={**ov, "search.modes": ["colocated"]}, **kw)
    green_res = plan(path, overrides=ov, **kw)
    base, green = base_res.best, green_res.best
    if base is None or green is None:
        raise ConfigError(
            f"scenario {scn.label}: the planner found no configuration that can run "
            f"({'baseline' if base is None else 'GreenLLM'} search). See `greensim plan {path}`."
        )
    grid, lt = spec.grids[scn.grid], spec.lifetimes[scn.lifetime]
    row = {
        "scenario": scn.label,
        "app": scn.app,
        "slo_scale": scn.slo_scale,
        "ttft_slo_s": ov["slo.ttft_s"],
        "tpot_slo_s": ov["slo.tpot_s"],
        "grid": scn.grid,
        "region": grid.region,
        "gco2_per_kwh": grid.gco2_per_kwh,
        "lifetime": scn.lifetime,
        "new_lifetime_years": lt.new_years,
        "old_scheme": lt.old,
        "old_extended_years": lt.extended_years,
        "attainment_target": spec.attainment_target,
    }
    row.update(_cand(base, "baseline"))
    row.update(_cand(green, "greenllm"))
    t = spec.attainment_target
    row["baseline_meets_target"] = row["baseline_attainment_frac"] >= t
    row["greenllm_meets_target"] = row["greenllm_attainment_frac"] >= t
    # The full search's own new-only pick (None when no colocated candidate met the target):
    # a cross-check of the separate colocated-only search.
    row["planner_baseline_config"] = green_res.baseline.name if green_res.baseline is not None else None
    row["n_candidates"] = int(green_res.stats.get("n_candidates", 0))
    row["n_simulations"] = int(
        green_res.stats.get("n_short_simulations", 0)
        + green_res.stats.get("n_full_simulations", 0)
        + base_res.stats.get("n_short_simulations", 0)
        + base_res.stats.get("n_full_simulations", 0)
    )
    row["reduction_pct"] = 100.0 * (1.0 - row["greenllm_carbon_g_per_request"] / row["baseline_carbon_g_per_request"])
    return row


def run_paper(
    spec_path: str | Path | None = None,
    quick: bool = False,
    progress: bool = True,
    plan: Callable[..., Any] | None = None,
    only: Optional[List[Scenario]] = None,
    plan_kwargs: Optional[Dict[str, Any]] = None,
    extra_overrides: Optional[Dict[str, Any]] = None,
) -> pd.DataFrame:
    """Run every scenario (or ``only`` these); one row per scenario (see :func:`run_scenario`)."""
    spec, base_dir = load_paper_spec(spec_path)
    todo = only if only is not None else scenarios(spec, quick)
    from tqdm import tqdm

    if plan is None and "memo" not in (plan_kwargs or {}):
        # scenarios differ only in accounting and SLOs: each distinct engine run is simulated once
        from greensim.assembly.simulate import EngineMemo

        plan_kwargs = {**(plan_kwargs or {}), "memo": EngineMemo()}
    rows = []
    for scn in tqdm(todo, unit="scenario", desc="paper", disable=not progress):
        rows.append(
            run_scenario(spec, base_dir, scn, plan=plan, plan_kwargs=plan_kwargs, extra_overrides=extra_overrides)
        )
    df = pd.DataFrame(rows)
    df.attrs["attainment_target"] = spec.attainment_target
    return df


def headline(df: pd.DataFrame) -> Dict[str, Any]:
    """The numbers to set next to the paper's.

    Reductions are compared only where both the baseline and GreenLLM meet the attainment
    target ("comparable" scenarios); elsewhere both fall back to their highest-attainment
    configuration and their carbon is not a like-for-like comparison (reported separately).
    """
    if df.empty:
        raise ConfigError("headline: no scenarios ran.")
    met = df["greenllm_meets_target"].astype(bool)
    comp = met & df["baseline_meets_target"].astype(bool)
    out: Dict[str, Any] = {"n_scenarios": int(len(df)), "n_comparable_scenarios": int(comp.sum())}
    if comp.any():
        c = df[comp]
        i = c["reduction_pct"].idxmax()
        out.update(
            max_reduction_pct=float(c.loc[i, "reduction_pct"]),
            max_reduction_scenario=str(c.loc[i, "scenario"]),
            max_reduction_config=str(c.loc[i, "greenllm_config"]),
            mean_reduction_pct=float(c["reduction_pct"].mean()),
            min_greenllm_attainment_pct=100.0 * float(c["greenllm_attainment_frac"].min()),
        )
    else:
        out.update(
            max_reduction_pct=math.nan,
            max_reduction_scenario=None,
            max_reduction_config=None,
            mean_reduction_pct=math.nan,
            min_greenllm_attainment_pct=math.nan,
        )
    out.update(
        comparable_scenarios_greenllm_not_new_only=int((df.loc[comp, "greenllm_mode"] != "colocated").sum()),
        max_reduction_pct_all_scenarios=float(df["reduction_pct"].max()),
        share_scenarios_greenllm_attainment_ge_target_pct=100.0 * float(met.mean()),
        share_scenarios_baseline_attainment_ge_target_pct=100.0 * float(df["baseline_meets_target"].mean()),
        greenllm_meets_target_whenever_baseline_does=bool((met | ~df["baseline_meets_target"].astype(bool)).all()),
        paper=PAPER_HEADLINE,
    )
    return out


# ------------------------------------------------------------------ figures
def _heat(
    ax, table: pd.DataFrame, title: str, fmt: str, cmap: str, vmin=None, vmax=None, star: Optional[pd.DataFrame] = None
) -> None:
    im = ax.imshow(table.values.astype(float), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(range(table.shape[0]), [str(r) for r in table.index])
    for (r, c), v in pd.DataFrame(table.values).stack().items():
        mark = "*" if star is not None and bool(star.values[r, c]) else ""
        ax.text(c, r, format(float(v), fmt) + mark, ha="center", va="center", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(im, ax=ax, shrink=0.8)


def plot_paper(df: pd.DataFrame, folder: Path, spec: PaperSpec) -> List[Path]:
    """Figures: reduction by app x grid, attainment, reduction vs intensity and vs lifetimes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: List[Path] = []
    lt0 = spec.default_lifetime if spec.default_lifetime in set(df["lifetime"]) else df["lifetime"].iloc[0]
    s0 = spec.default_slo_scale if spec.default_slo_scale in set(df["slo_scale"]) else float(df["slo_scale"].iloc[0])
    grids = [g for g in spec.grids if g in set(df["grid"])]
    # 1. reduction % by app x grid (default lifetime; every SLO scale present, one panel each)
    scales = sorted(set(df.loc[df["lifetime"] == lt0, "slo_scale"]))
    if scales:
        fig, axes = plt.subplots(1, len(scales), figsize=(3.6 * len(scales), 3.2), squeeze=False)
        for ax, s in zip(axes[0], scales):
            d = df[(df["lifetime"] == lt0) & (df["slo_scale"] == s)]
            t = d.pivot_table(index="app", columns="grid", values="reduction_pct").reindex(columns=grids)
            miss = (~d["greenllm_meets_target"].astype(bool)).astype(float)
            star = (
                d.assign(m=miss)
                .pivot_table(index="app", columns="grid", values="m")
                .reindex(index=t.index, columns=grids)
                > 0
            )
            _heat(
                ax,
                t,
                f"carbon reduction % vs new-only\nSLO x{s:g}, {lt0}\n* = target not met by any config",
                ".1f",
                "RdYlGn",
                -50,
                50,
                star=star,
            )
        fig.tight_layout()
        out.append(folder / "reduction_app_grid.png")
        fig.savefig(out[-1], dpi=110)
        plt.close(fig)
    # 2. attainment % (GreenLLM and baseline) by app x SLO scale (default grid and lifetime)
    g0 = spec.default_grid if spec.default_grid in grids else grids[0]
    d = df[(df["lifetime"] == lt0) & (df["grid"] == g0)]
    if not d.empty:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
        for ax, who in zip(axes, ("greenllm", "baseline")):
            t = 100 * d.pivot_table(index="app", columns="slo_scale", values=f"{who}_attainment_frac")
            _heat(
                ax,
                t,
                f"{who} SLO attainment % ({g0} grid)\ntarget {100 * spec.attainment_target:g} %",
                ".0f",
                "viridis",
                0,
                100,
            )
        fig.tight_layout()
        out.append(folder / "attainment.png")
        fig.savefig(out[-1], dpi=110)
        plt.close(fig)
    # 3. reduction vs intensity (lines per app), and vs lifetime scenario (lines per grid)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    d = df[(df["lifetime"] == lt0) & (df["slo_scale"] == s0)]
    for app, g in d.groupby("app"):
        g = g.sort_values("gco2_per_kwh")
        axes[0].plot(g["gco2_per_kwh"], g["reduction_pct"], marker="o", label=app)
    axes[0].set(
        xlabel="grid intensity [gCO2e/kWh]", ylabel="carbon reduction vs new-only [%]", title=f"SLO x{s0:g}, {lt0}"
    )
    axes[0].axhline(PAPER_HEADLINE["max_reduction_pct"], color="grey", ls="--", lw=0.8, label="paper: up to 40.6 %")
    axes[0].legend(fontsize=7)
    d = df[df["slo_scale"] == s0]
    lts = [lt for lt in spec.lifetimes if lt in set(d["lifetime"])]
    for (app, grid), g in d.groupby(["app", "grid"]):
        g = g.set_index("lifetime").reindex(lts)
        axes[1].plot(range(len(lts)), g["reduction_pct"], marker="o", label=f"{app}, {grid}")
    axes[1].set_xticks(range(len(lts)), lts, rotation=20, fontsize=7)
    axes[1].set(ylabel="carbon reduction vs new-only [%]", title=f"lifetimes / old-GPU accounting, SLO x{s0:g}")
    axes[1].axhline(PAPER_HEADLINE["max_reduction_pct"], color="grey", ls="--", lw=0.8)
    axes[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    out.append(folder / "reduction_vs_intensity_lifetime.png")
    fig.savefig(out[-1], dpi=110)
    plt.close(fig)
    return out


def write_paper_folder(
    df: pd.DataFrame,
    out: str | Path,
    spec_path: str | Path | None = None,
    quick: bool = False,
    wall_s: float | None = None,
    plots: bool = True,
) -> Path:
    """Write ``summary.csv``, ``headline.json`` and the figures into ``out`` atomically."""
    from greensim.base.version import provenance
    from greensim.results.writer import to_jsonable, write_folder_atomically

    spec, base_dir = load_paper_spec(spec_path)
    head = headline(df)

    def fill(tmp: Path) -> None:
        df.to_csv(tmp / "summary.csv", index=False)
        (tmp / "headline.json").write_text(json.dumps(to_jsonable(head), indent=2) + "\n")
        if plots:
            plot_paper(df, tmp, spec)

    manifest = {
        "kind": "paper",
        **provenance(),
        "quick": quick,
        "wall_s": wall_s,
        "spec": spec.model_dump(mode="json"),
        "spec_dir": str(base_dir),
        "created_unix_s": time.time(),
        "headline": head,
    }
    return write_folder_atomically(Path(out), fill, manifest)
