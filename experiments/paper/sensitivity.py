"""Sensitivity of GreenLLM's carbon saving to the carbon regime, one command.

    python experiments/paper/sensitivity.py [--out DIR] [--regimes regimes.yaml] [--quick]

For every application plan of ``regimes.yaml`` and every arrival-rate scale, every candidate
deployment of the largest search space is simulated once (the runs do not depend on the carbon
regime). SLO attainment is judged at every SLO scale from the same per-request latencies, a run
whose queue grows without bound (the planner's stability guard) never counts as meeting the
target, and every run is re-priced under every regime (accounting x embodied scope x old-GPU
accounting x grid x new-GPU lifetime) with greensim's own carbon functions. Per regime and
search space: the new-only baseline (cheapest colocated deployment on new GPUs meeting the
target) and the pick (cheapest of the search space meeting it), for every workload.

Writes, atomically, ``DIR/regimes.csv`` (one row per regime and search space: max and mean
reduction over comparable workloads, how often old GPUs / DSD / pools are chosen and a new GPU
removed, the picks' mean attainment), ``DIR/picks.csv`` (every regime x workload x space),
``DIR/presets.csv`` (the named regimes), ``DIR/headline.json``, ``DIR/readme_table.md`` (the
README's table, generated) and ``DIR/sensitivity.png``. README "Does greensim reproduce
GreenLLM?" explains the numbers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
AXES = ("accounting", "embodied_scope", "old", "grid", "new_years")
J_PER_KWH = 3.6e6


@dataclass
class Run:
    """One simulated candidate: what re-pricing and re-judging need."""

    app: str
    rate_scale: float
    name: str
    mode: str
    n_new: int
    n_old: int
    instances: pd.DataFrame  # gpu, tp, busy_s, busy_energy_j, idle_energy_j, age_years
    duration_s: float
    n_completed: int
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    n_out: np.ndarray
    done: np.ndarray
    stable: bool
    backlog_growth_frac: float
    variant: str = ""  # the search space's plan overrides (json), "" for none


def load_regimes(path: Path) -> Dict[str, Any]:
    """regimes.yaml, checked: every axis present, presets on the axes' values."""
    data = yaml.safe_load(Path(path).read_text())
    for key in ("attainment_target", "apps", "slo_scales", "rate_scales", "search_spaces", "axes"):
        if key not in data:
            raise SystemExit(f"error: {path}: missing '{key}' (see experiments/paper/regimes.yaml)")
    missing = [a for a in AXES if a not in data["axes"]]
    if missing:
        raise SystemExit(f"error: {path}: axes lack {missing} (needed: {', '.join(AXES)})")
    for name, p in (data.get("presets") or {}).items():
        for a in AXES:
            vals = data["axes"][a]
            if p.get(a) not in (vals if not isinstance(vals, dict) else list(vals)):
                raise SystemExit(f"error: {path}: presets.{name}.{a} = {p.get(a)!r} is not on axis {a} ({vals})")
    return data


def space_modes(space: Any) -> List[str]:
    """A search space is a list of modes, or {modes: [...], overrides: {...}} (plan overrides)."""
    return list(space["modes"] if isinstance(space, dict) else space)


def space_variant(space: Any) -> str:
    ov = space.get("overrides") if isinstance(space, dict) else None
    return json.dumps(ov, sort_keys=True) if ov else ""


def simulate_app(
    plan_path: Path, app: str, rate_scale: float, modes: List[str], overrides: Optional[Dict[str, Any]] = None
) -> List[Run]:
    """Every candidate of the plan (``modes``) at ``rate_scale`` x its arrival rate, simulated once
    (``overrides``: extra dotted plan overrides, e.g. another draft or link)."""
    from greensim.assembly import prepare, simulate
    from greensim.experiment.load import load_yaml
    from greensim.planning import candidate_experiments, steady_state

    plan = load_yaml(plan_path)
    wl = plan["workload"]
    key = "workload.arrivals.rate_rps" if "arrivals" in wl else "workload.rate_rps"
    rate = (wl["arrivals"] if "arrivals" in wl else wl)["rate_rps"]
    runs = []
    variant = json.dumps(overrides, sort_keys=True) if overrides else ""
    for c in candidate_experiments(plan_path, {**(overrides or {}), "search.modes": modes, key: rate * rate_scale}):
        if c.experiment is None:
            continue
        r = simulate(prepare(c.experiment))
        req, s = r.requests, r.summary
        st = steady_state(r)
        growth = float(st["backlog_growth_frac"])
        runs.append(
            Run(
                app,
                rate_scale,
                c.name,
                c.mode,
                c.n_new,
                c.n_old,
                r.instances[["gpu", "tp", "busy_s", "busy_energy_j", "idle_energy_j", "age_years"]].copy(),
                float(s["duration_s"]),
                int(s["n_completed"]),
                req["ttft_s"].to_numpy(dtype=float),
                req["tpot_s"].to_numpy(dtype=float),
                req["n_output_tokens"].to_numpy(),
                ~req["rejected"].to_numpy(dtype=bool),
                not (growth > c.max_backlog_growth_frac),
                growth,
                variant,
            )
        )
    return runs


def attainment(run: Run, ttft_slo: float, tpot_slo: float) -> float:
    """Share of requests meeting both SLOs (as greensim.results.metrics)."""
    ok = run.done & (run.ttft_s <= ttft_slo) & np.where(run.n_out > 1, run.tpot_s <= tpot_slo, True)
    return float(ok.mean()) if len(ok) else 0.0


def price(run: Run, reg: Dict[str, Any], grid_ci: float, old_gpus, plan_carbon: Dict[str, Any]) -> float:
    """Carbon per completed request [gCO2e] of a run under a regime (constant intensity).

    As greensim.results.metrics: operational = energy [kWh] x CI x PUE (busy energy only under
    busy accounting), embodied = (GPU + host share) x GPUs x charged time / lifetime under the GPU's
    scheme (charged time = horizon, or busy time under busy accounting).
    """
    from greensim.carbon.embodied import embodied_charge_gco2, scoped_embodied_kgco2e
    from greensim.hardware.catalog import load_catalog

    cat = load_catalog()
    busy = reg["accounting"] == "busy"
    pue = float(plan_carbon.get("pue", 1.1))
    old_life = float(plan_carbon.get("lifetime_years", 5.0))
    total = 0.0
    for row in run.instances.itertuples(index=False):
        own, host = scoped_embodied_kgco2e(cat.gpu(row.gpu, "gpu"), reg["embodied_scope"])
        energy = row.busy_energy_j + (0.0 if busy else row.idle_energy_j)
        total += energy / J_PER_KWH * grid_ci * pue
        if row.gpu in old_gpus:
            scheme, life = ("sunk" if reg["old"] == "sunk" else "linear"), old_life
        else:
            scheme, life = "linear", float(reg["new_years"])
        t = min(row.busy_s, run.duration_s) if busy else run.duration_s
        total += embodied_charge_gco2(own + host, int(row.tp), t, life, scheme, float(row.age_years))
    return total / run.n_completed if run.n_completed else float("nan")


def regime_overrides(reg: Dict[str, Any], grid_ci: float, plan_data: Dict[str, Any]) -> Dict[str, Any]:
    """The experiment-file options that give a regime in a direct greensim run of the plan."""
    new = [i["gpu"] for i in plan_data["inventory"] if i["role"] == "new"]
    old = [i["gpu"] for i in plan_data["inventory"] if i["role"] == "old"]
    return {
        "carbon.accounting": reg["accounting"],
        "carbon.embodied_scope": reg["embodied_scope"],
        "carbon.intensity": {"kind": "constant", "gco2_per_kwh": grid_ci},
        "carbon.gpu_lifetime_years": {g: float(reg["new_years"]) for g in new},
        "carbon.embodied_schemes": {g: {"scheme": "sunk" if reg["old"] == "sunk" else "linear"} for g in old},
    }


def regimes_of(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    ax = spec["axes"]
    vals = [list(ax[a]) if not isinstance(ax[a], dict) else list(ax[a]) for a in AXES]
    return [dict(zip(AXES, combo)) for combo in itertools.product(*vals)]


def evaluate(spec: Dict[str, Any], runs: List[Run], plans: Dict[str, Dict[str, Any]]) -> pd.DataFrame:
    """Every regime x workload (app, rate, SLO scale) x search space: baseline, pick, reduction."""
    target = float(spec["attainment_target"])
    grids = spec["axes"]["grid"]
    rows = []
    by_wl: Dict[Tuple[str, float], List[Run]] = {}
    for r in runs:
        by_wl.setdefault((r.app, r.rate_scale), []).append(r)
    for (app, rs), rr in by_wl.items():
        pd_ = plans[app]
        old_gpus = {i["gpu"] for i in pd_["inventory"] if i["role"] == "old"}
        regs = regimes_of(spec)
        priced = [
            {
                (r.variant, r.name): price(r, reg, float(grids[reg["grid"]]), old_gpus, pd_.get("carbon") or {})
                for r in rr
            }
            for reg in regs
        ]
        for scale in spec["slo_scales"]:
            att = {
                (r.variant, r.name): attainment(r, pd_["slo"]["ttft_s"] * scale, pd_["slo"]["tpot_s"] * scale)
                for r in rr
            }
            ok = {(r.variant, r.name): r.stable and att[(r.variant, r.name)] >= target for r in rr}
            for reg, carbon in zip(regs, priced):
                base = min(  # new-only: the same with any space (colocated runs do not depend on the variant)
                    (r for r in rr if r.variant == "" and r.mode == "colocated" and ok[(r.variant, r.name)]),
                    key=lambda r: (carbon[(r.variant, r.name)], r.name),
                    default=None,
                )
                for space, sdef in spec["search_spaces"].items():
                    modes, var = space_modes(sdef), space_variant(sdef)
                    best = min(
                        (
                            r
                            for r in rr
                            if (r.variant == var or (r.variant == "" and r.mode == "colocated"))
                            and r.mode in modes
                            and ok[(r.variant, r.name)]
                        ),
                        key=lambda r: (carbon[(r.variant, r.name)], r.name),
                        default=None,
                    )
                    row = {**reg, "space": space, "app": app, "rate_scale": rs, "slo_scale": scale}
                    for label, c in (("baseline", base), ("pick", best)):
                        row[f"{label}_config"] = c.name if c else None
                        row[f"{label}_mode"] = c.mode if c else None
                        row[f"{label}_n_new"] = c.n_new if c else None
                        row[f"{label}_n_old"] = c.n_old if c else None
                        row[f"{label}_carbon_g_per_request"] = carbon[(c.variant, c.name)] if c else np.nan
                        row[f"{label}_attainment_frac"] = att[(c.variant, c.name)] if c else np.nan
                    row["comparable"] = base is not None and best is not None
                    row["reduction_pct"] = (
                        100 * (1 - carbon[(best.variant, best.name)] / carbon[(base.variant, base.name)])
                        if row["comparable"]
                        else np.nan
                    )
                    rows.append(row)
    return pd.DataFrame(rows)


def summarise(picks: pd.DataFrame) -> pd.DataFrame:
    """One row per regime and search space."""
    out = []
    for key, g in picks.groupby(list(AXES) + ["space"], sort=False):
        c = g[g["comparable"]]
        uses_old = c["pick_n_old"].fillna(0) > 0
        i = c["reduction_pct"].idxmax() if len(c) else None
        out.append(
            {
                **dict(zip(list(AXES) + ["space"], key)),
                "n_workloads": len(g),
                "n_comparable": len(c),
                "max_reduction_pct": float(c["reduction_pct"].max()) if len(c) else np.nan,
                "mean_reduction_pct": float(c["reduction_pct"].mean()) if len(c) else np.nan,
                "max_at": f"{c.loc[i, 'app']} rate x{c.loc[i, 'rate_scale']:g} SLO x{c.loc[i, 'slo_scale']:g}: "
                f"{c.loc[i, 'pick_config']}"
                if i is not None
                else "",
                "n_old_chosen": int(uses_old.sum()),
                "n_dsd_chosen": int((c["pick_mode"] == "dsd").sum()),
                "n_pool_chosen": int((c["pick_mode"] == "pool").sum()),
                "n_new_gpu_removed": int((c["pick_n_new"] < c["baseline_n_new"]).sum()),
                "pick_attainment_mean_pct": 100 * float(c["pick_attainment_frac"].mean()) if len(c) else np.nan,
            }
        )
    return pd.DataFrame(out)


def plot(reg: pd.DataFrame, path: Path, grid_order: List[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spaces = list(dict.fromkeys(reg["space"]))
    fig, axes = plt.subplots(
        (len(spaces) + 1) // 2, 2, figsize=(13, 3.6 * ((len(spaces) + 1) // 2)), sharey=True, squeeze=False
    )
    axes = axes.ravel()
    for ax in axes[len(spaces) :]:
        ax.set_visible(False)
    for ax, space in zip(axes, spaces):
        d = reg[(reg["space"] == space) & (reg["old"] == "sunk")]
        tab = d.pivot_table(
            index=["accounting", "embodied_scope"], columns=["grid", "new_years"], values="max_reduction_pct"
        )
        tab = tab[sorted(tab.columns, key=lambda c: (grid_order.index(c[0]), c[1]))]  # cleanest grid first
        im = ax.imshow(tab.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=max(45.0, np.nanmax(tab.to_numpy())))
        ax.set_xticks(range(tab.shape[1]), [f"{g}\n{y}y" for g, y in tab.columns], fontsize=7)
        ax.set_yticks(range(tab.shape[0]), [f"{a} / {s}" for a, s in tab.index])
        for (i, j), v in np.ndenumerate(tab.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="w" if v < 25 else "k")
        ax.set_title(f"space '{space}', old GPUs sunk:\nmax reduction vs new-only [%]", fontsize=10)
        ax.set_xlabel("grid / new-GPU lifetime")
    fig.colorbar(im, ax=list(axes[: len(spaces)]), shrink=0.7, label="% (paper: up to 40.6)")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def readme_table(reg: pd.DataFrame, presets: Dict[str, Dict[str, Any]]) -> str:
    lines = [
        "| preset | accounting | embodied scope | old GPUs | grid | A100 life | space | max % | mean % | comparable | old GPUs chosen | DSD | pools | new GPU removed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, p in presets.items():
        for space in dict.fromkeys(reg["space"]):
            m = reg
            for a in AXES:
                m = m[m[a] == p[a]]
            r = m[m["space"] == space].iloc[0]
            lines.append(
                f"| {name} | {p['accounting']} | {p['embodied_scope']} | {p['old']} | {p['grid']} | {p['new_years']} y | "
                f"{space} | {r['max_reduction_pct']:.1f} | {r['mean_reduction_pct']:.1f} | {r['n_comparable']}/{r['n_workloads']} | "
                f"{r['n_old_chosen']} | {r['n_dsd_chosen']} | {r['n_pool_chosen']} | {r['n_new_gpu_removed']} |"
            )
    return "\n".join(lines) + "\n"


def run(spec_path: Path, quick: bool = False, progress: bool = True) -> Tuple[pd.DataFrame, pd.DataFrame, Dict]:
    from greensim.experiment.load import load_yaml

    spec = load_regimes(spec_path)
    if quick:
        spec = {**spec, **{k: v for k, v in spec.get("quick", {}).items() if k != "apps"}}
        spec["apps"] = {a: spec["apps"][a] for a in spec.get("quick", {}).get("apps", list(spec["apps"]))}
    variants: Dict[str, Tuple[Optional[Dict[str, Any]], set]] = {"": (None, {"colocated"})}
    for sdef in spec["search_spaces"].values():
        var = space_variant(sdef)
        ov = sdef.get("overrides") if isinstance(sdef, dict) else None
        variants.setdefault(var, (ov, set()))[1].update(space_modes(sdef))
    plans = {a: load_yaml(spec_path.parent / f) for a, f in spec["apps"].items()}
    runs: List[Run] = []
    t0 = time.perf_counter()
    for app, f in spec["apps"].items():
        for rs in spec["rate_scales"]:
            for var, (ov, ms) in variants.items():
                # a variant re-simulates only what it changes (colocated runs are the base variant's)
                ms = ms if var == "" else ms - {"colocated"}
                if not ms:
                    continue
                runs += simulate_app(spec_path.parent / f, app, float(rs), sorted(ms), ov)
            if progress:
                print(f"  {app} rate x{rs:g}: {len(runs)} runs so far, {time.perf_counter() - t0:.0f} s", flush=True)
    picks = evaluate(spec, runs, plans)
    return picks, summarise(picks), spec


def write(picks: pd.DataFrame, reg: pd.DataFrame, spec: Dict[str, Any], out: Path, wall_s: float) -> Path:
    """Write the folder atomically (a temporary sibling renamed into place)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        picks.to_csv(tmp / "picks.csv", index=False, float_format="%.6g")
        reg.to_csv(tmp / "regimes.csv", index=False, float_format="%.6g")
        presets = spec.get("presets") or {}
        rows = []
        for name, p in presets.items():
            m = reg
            for a in AXES:
                m = m[m[a] == p[a]]
            rows += [{"preset": name, **r} for r in m.to_dict("records")]
        pd.DataFrame(rows).to_csv(tmp / "presets.csv", index=False, float_format="%.6g")
        (tmp / "readme_table.md").write_text(readme_table(reg, presets))
        grids = spec["axes"]["grid"]
        plot(reg, tmp / "sensitivity.png", sorted(grids, key=lambda g: float(grids[g])))
        best = {}
        for space in spec["search_spaces"]:
            d = reg[reg["space"] == space]
            i = d["max_reduction_pct"].idxmax()
            best[space] = {
                "max_reduction_pct": float(d.loc[i, "max_reduction_pct"]),
                "regime": {a: getattr(d.loc[i, a], "item", lambda v=d.loc[i, a]: v)() for a in AXES},
                "at": d.loc[i, "max_at"],
                "max_reduction_pct_provisioned": float(d[d["accounting"] == "provisioned"]["max_reduction_pct"].max()),
                "max_reduction_pct_busy": float(d[d["accounting"] == "busy"]["max_reduction_pct"].max()),
            }
        head = {
            "n_regimes": int(len(reg) / max(1, len(spec["search_spaces"]))),
            "n_workloads": int(reg["n_workloads"].iloc[0]),
            "best": best,
            "paper_max_reduction_pct": 40.6,
            "wall_s": round(wall_s, 1),
            "command": "python experiments/paper/sensitivity.py",
        }
        (tmp / "headline.json").write_text(json.dumps(head, indent=2, default=str) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


BEGIN, END = "<!-- sensitivity-table:begin -->", "<!-- sensitivity-table:end -->"


def update_readme(readme: Path, table: str) -> None:
    """Replace the README's generated table (between the sensitivity-table markers)."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"error: {readme}: no {BEGIN} ... {END} block to update")
    i, j = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:i] + "\n" + table + text[j:])


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimes", default=str(HERE / "regimes.yaml"), help="regime file")
    ap.add_argument("--out", default=None, help="results folder (default results/paper-sensitivity[-quick])")
    ap.add_argument("--quick", action="store_true", help="regimes.yaml's quick block (one app, one load)")
    ap.add_argument("--readme", default=None, help="also write the presets table into this README's marked block")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    picks, reg, spec = run(Path(a.regimes), quick=a.quick)
    out = write(
        picks,
        reg,
        spec,
        Path(a.out or ("results/paper-sensitivity" + ("-quick" if a.quick else ""))),
        time.perf_counter() - t0,
    )
    if a.readme:
        update_readme(Path(a.readme), (out / "readme_table.md").read_text())
    head = json.loads((out / "headline.json").read_text())
    for space, b in head["best"].items():
        print(
            f"space {space}: max reduction {b['max_reduction_pct']:.1f} % (provisioned {b['max_reduction_pct_provisioned']:.1f} %, "
            f"busy {b['max_reduction_pct_busy']:.1f} %) at {b['regime']} - {b['at']}"
        )
    print(f"{head['n_regimes']} regimes x {head['n_workloads']} workloads in {time.perf_counter() - t0:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
