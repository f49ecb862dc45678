"""Online scheduling per time window (``greensim replan``): reconfigure among deployments.

The workload is cut into windows of ``reconfigure.window_s``. At each boundary the
scheduler predicts, for every named deployment (a cluster section of the same GPUs serving
one way: new-only colocated, DPD, DSD...), the carbon per request and the SLO feasibility
(:func:`greensim.policies.scheduler.predict`: the closed forms of :mod:`greensim.carbon.theory`)
at the arrival rate and mean lengths **observed in the previous window** and the intensity
**forecast for the coming window** (``carbon.forecast``: mean of the forecast over the
window; without it, the intensity in force at the boundary), and keeps or switches the
deployment as the per-request scheduler does (lowest-carbon feasible, ``hysteresis_frac``,
``min_dwell_s``). The first window runs ``reconfigure.initial``. With ``reconfigure.predictor:
simulate`` a deployment is scored instead by a short simulation of the previous window's requests
(:class:`SimulationPredictor`), feasible if its SLO attainment meets ``attainment_target``.

Each window is simulated by greensim.assembly on that window's requests (times relative to
the window start, the intensity source shifted to it). A switch takes ``switch_s``: requests
arriving in the first ``switch_s`` of the window are held until it ends (their wait is added
to their TTFT and SLO check) and the deployment's GPUs draw idle power and embodied carbon
during it, serving nothing (model loading may draw more than idle: not modelled).

Approximations, reported per window so their size is visible:

- requests in flight at a boundary finish on the old deployment, whose simulation runs past
  the window's end (``tail_s``) while the next window's deployment already runs: the carbon
  of that overlap (``tail_gco2``: all carbon the window's simulation charged after the
  window's end) is an upper bound of the double-counted provisioning;
- a window whose simulation ends before the window does (the last request finished early)
  is charged the deployment's idle power and embodied carbon for the rest (``gap_gco2``);
- queues do not carry over a boundary: a window starts with empty instances.

The same windows run every deployment statically (no switch), the baselines.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import pandas as pd

from greensim.base.errors import ConfigError
from greensim.carbon.intensity import CarbonIntensity
from greensim.core.requests import RequestTable
from greensim.policies.scheduler import PlanScore, better, build_modes, decide, predict

__all__ = ["WindowsResult", "SimulationPredictor", "run_windows"]

log = logging.getLogger(__name__)


class ShiftedIntensity(CarbonIntensity):
    """An intensity source seen from ``offset_s`` onwards (window time 0 = run time ``offset_s``)."""

    def __init__(self, base, offset_s: float):
        self.base, self.offset_s = base, float(offset_s)

    def mean_over(self, t0_s, t1_s):
        return self.base.mean_over(np.asarray(t0_s) + self.offset_s, np.asarray(t1_s) + self.offset_s)

    def at(self, t_s):
        return self.base.at(np.asarray(t_s) + self.offset_s)

    def __getattr__(self, name):  # n_filled, series ... of the base source
        return getattr(self.base, name)


@dataclass
class WindowsResult:
    """Outcome of :func:`run_windows`.

    windows : one row per window of the online run (deployment, observed rate, predicted and actual
        intensity, predicted gCO2e/request per deployment, switch and reason, actual carbon and attainment,
        tail/gap corrections).
    static : one row per (deployment, window) of the static baselines.
    comparison : one row per strategy (online, static:<name>): total carbon, gCO2e/request, SLO
        attainment, switches, energy, tail share.
    prediction : the predictor's cost: predictor, wall_s (time spent scoring deployments), and for
        'simulate' n_simulations, n_cache_hits, predictor_requests.
    """

    windows: pd.DataFrame
    static: pd.DataFrame
    comparison: pd.DataFrame
    folder: Optional[Path]
    wall_s: float
    prediction: Dict[str, Any] = dataclasses.field(default_factory=dict)


def _window_table(
    table: RequestTable, idx: np.ndarray, t0: float, hold_until: float
) -> Tuple[RequestTable, np.ndarray]:
    arr = table.arrival_s[idx] - t0
    delay = np.maximum(0.0, hold_until - arr)
    sc = table.slo_class[idx] if table.slo_class is not None else None
    return RequestTable(arr + delay, table.n_input_tokens[idx], table.n_output_tokens[idx], sc), delay


def _idle_rate(mode, ci: float) -> float:
    """Carbon rate of a deployment serving nothing [gCO2e/s]."""
    return predict(mode, 0.0, 0, 0, ci).carbon_gps


def _carbon_after(t, mode, cut_s: float, bin_s: float) -> float:
    """Carbon a simulation's tables charge from ``cut_s`` to its end (timeline bins starting at or after
    ``cut_s``, plus the deployment's embodied rate) [gCO2e]."""
    h = float(t.summary["duration_s"])
    tl = t.timeline
    edges = np.sort(tl["t_s"].unique())
    width = np.diff(np.append(edges, max(h, edges[-1] + bin_s)))
    wmap = dict(zip(edges, width))
    after = tl[tl["t_s"] >= cut_s]
    tail = float((after["carbon_gco2_per_s"] * after["t_s"].map(wmap)).sum())
    return tail + sum(r.n * r.emb_gps for r in mode.roles) * max(0.0, h - cut_s)


def _simulate_window(prep, mode, base, idx: np.ndarray, t0: float, w: float, hold_s: float) -> Dict[str, Any]:
    from greensim.assembly.simulate import simulate

    ci_mean = float(base.intensity.mean_over(np.asarray([t0]), np.asarray([t0 + w]))[0])
    if idx.size == 0:
        c = _idle_rate(mode, ci_mean) * w
        return {
            "n": 0,
            "n_met": 0,
            "carbon_gco2": c,
            "energy_kwh": float("nan"),
            "tail_s": 0.0,
            "tail_gco2": 0.0,
            "gap_gco2": c,
            "held": 0,
            "ci_actual": ci_mean,
        }
    sub, delay = _window_table(base.table, idx, t0, hold_s)
    bin_s = prep.experiment.simulation.timeline_bin_s or max(w / 200.0, 1e-3)
    p = dataclasses.replace(
        prep,
        table=sub,
        bin_s=bin_s,
        ttft_slo_s=base.ttft_slo_s[idx],
        tpot_slo_s=base.tpot_slo_s[idx],
        intensity=ShiftedIntensity(base.intensity, t0),
        forecast=None,
    )
    t = simulate(p)
    s = t.summary
    q = t.requests
    met = q["slo_met"].to_numpy() & (q["ttft_s"].to_numpy() + delay <= q["ttft_slo_s"].to_numpy())
    h = float(s["duration_s"])
    carbon = float(s["carbon_gco2"])
    gap = 0.0
    if h < w:  # the deployment stays provisioned until the window ends
        ci_gap = float(base.intensity.mean_over(np.asarray([t0 + h]), np.asarray([t0 + w]))[0])
        gap = _idle_rate(mode, ci_gap) * (w - h)
    tail = _carbon_after(t, mode, w, p.bin_s) if h > w else 0.0
    return {
        "n": int(len(q)),
        "n_met": int(met.sum()),
        "carbon_gco2": carbon + gap,
        "energy_kwh": float(s["energy_kwh"]),
        "tail_s": max(0.0, h - w),
        "tail_gco2": tail,
        "gap_gco2": gap,
        "held": int((delay > 0).sum()),
        "ci_actual": ci_mean,
        "mean_n_in": float(sub.n_input_tokens.mean()),
        "mean_n_out": float(sub.n_output_tokens.mean()),
    }


def _grid(x: float, step: float) -> float:
    """``x`` rounded to the geometric grid ``(1 + step)**i`` (unchanged if ``step`` is 0 or ``x <= 0``)."""
    if step <= 0 or x <= 0:
        return float(x)
    g = math.log1p(step)
    return float(math.exp(round(math.log(x) / g) * g))


class SimulationPredictor:
    """Predictor ``simulate`` of :func:`run_windows`: scores a deployment by a short simulation.

    ``score(d, k, idx, rate, ci)`` simulates ``n_requests`` requests resampled (with replacement) from the
    requests ``idx`` of the previous window, arriving as a Poisson process at ``rate`` (rounded to the
    ``round_frac`` grid), at the constant intensity ``ci`` (rounded likewise), on deployment ``d`` with the
    assembly (:func:`greensim.assembly.simulate.simulate` on the deployment's prepared experiment). The resampling and
    arrival stream of window ``k`` is seeded by (experiment seed, ``k``). Returns (carbon [gCO2e/s] over
    [0, last arrival], SLO attainment). Scores are cached per (deployment, rounded rate, rounded intensity):
    ``n_simulations``, ``n_cache_hits`` and ``wall_s`` count the work.
    """

    def __init__(
        self, preps: Dict[str, Any], modes: Dict[str, Any], base, seed: int, n_requests: int, round_frac: float
    ):
        self.preps, self.modes, self.base = preps, modes, base
        self.seed, self.n, self.step = int(seed), int(n_requests), float(round_frac)
        self.cache: Dict[Tuple[str, float, float], Tuple[float, float]] = {}
        self.n_simulations = self.n_cache_hits = 0
        self.wall_s = 0.0

    def score(self, d: str, k: int, idx: np.ndarray, rate: float, ci: float) -> Tuple[float, float]:
        key = (d, _grid(rate, self.step), _grid(ci, self.step))
        if key in self.cache:
            self.n_cache_hits += 1
            return self.cache[key]
        t_wall = time.perf_counter()
        self.cache[key] = self._simulate(d, k, idx, key[1], key[2])
        self.n_simulations += 1
        self.wall_s += time.perf_counter() - t_wall
        return self.cache[key]

    def _simulate(self, d: str, k: int, idx: np.ndarray, rate: float, ci: float) -> Tuple[float, float]:
        from greensim.assembly.simulate import simulate
        from greensim.carbon.intensity import ConstantIntensitySource

        b = self.base
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0x5052, k)))
        draw = np.sort(rng.choice(idx, size=self.n, replace=True))
        arr = np.cumsum(rng.exponential(1.0 / rate, size=self.n))
        sc = b.table.slo_class[draw] if b.table.slo_class is not None else None
        tab = RequestTable(arr, b.table.n_input_tokens[draw], b.table.n_output_tokens[draw], sc)
        last = float(arr[-1])
        bin_s = last / 256  # a power of two: the last arrival is a bin edge exactly
        p = dataclasses.replace(
            self.preps[d],
            table=tab,
            bin_s=bin_s,
            ttft_slo_s=b.ttft_slo_s[draw],
            tpot_slo_s=b.tpot_slo_s[draw],
            intensity=ConstantIntensitySource(ci),
            forecast=None,
        )
        t = simulate(p)
        carbon = float(t.summary["carbon_gco2"]) - _carbon_after(t, self.modes[d], last, bin_s)
        return carbon / last, float(t.requests["slo_met"].mean())


def _predicted_intensity(base, t0: float, w: float) -> float:
    if base.forecast is not None:
        return float(np.mean(base.forecast.at(t0, max(1, int(math.ceil(w / 3600.0))))))
    return float(np.asarray(base.intensity.at(np.asarray([t0])))[0])


def run_windows(
    experiment: Any,
    overrides: Any = None,
    write: bool = True,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> WindowsResult:
    """Run the per-window online scheduler of ``experiment`` (its ``reconfigure`` section) and the
    static baselines over the same windows; see the module docstring.

    Parameters
    ----------
    experiment : path, dict or :class:`greensim.experiment.schema.Experiment` with a ``reconfigure`` section.
    overrides : dotted-key overrides, as for :func:`greensim.run`.
    write : write ``<output.dir>/<name>/replan-<hash8>/`` (windows.csv, static.csv, comparison.csv,
        summary.json, plan.png, experiment.yaml, manifest.json).
    """
    from greensim.assembly.prepare import prepare
    from greensim.base.version import provenance
    from greensim.experiment.load import config_hash, to_experiment

    t_wall = time.perf_counter()
    exp = to_experiment(experiment, overrides)
    rc = exp.reconfigure
    if rc is None:
        raise ConfigError(
            "reconfigure: `greensim replan` needs a reconfigure section with window_s, switch_s and "
            "deployments (name -> cluster section). See experiments/online_replan.yaml."
        )
    if write:  # before simulating, as greensim.run does
        from greensim.results.writer import check_writable

        check_writable((Path(out_dir) if out_dir is not None else Path(exp.output.dir)) / exp.name)
    base = prepare(exp)
    names = list(rc.deployments)
    preps, modes = {}, {}
    for d in names:
        ed = exp.model_copy(update={"cluster": rc.deployments[d]})
        preps[d] = prepare(ed)
        ms = build_modes(preps[d].groups, exp.carbon.pue, where=f"reconfigure.deployments.{d}")
        if len(ms) != 1:
            raise ConfigError(
                f"reconfigure.deployments.{d}: serves in modes {sorted(ms)}; the window scheduler "
                f"predicts one mode per deployment. Split it into deployments (or use router greenllm "
                f"for per-request mixing)."
            )
        modes[d] = next(iter(ms.values()))
    w = rc.window_s
    arr = base.table.arrival_s
    n_win = int(math.floor(float(arr[-1]) / w)) + 1
    bounds = np.searchsorted(arr, np.arange(n_win + 1) * w, side="left")
    cache: Dict[Tuple[str, int, bool], Dict[str, Any]] = {}
    simp = (
        SimulationPredictor(preps, modes, base, exp.seed, rc.predictor_requests, rc.predictor_round_frac)
        if rc.predictor == "simulate"
        else None
    )
    t_predict = 0.0

    def sim(d: str, k: int, held: bool) -> Dict[str, Any]:
        key = (d, k, held)
        if key not in cache:
            idx = np.arange(bounds[k], bounds[k + 1])
            cache[key] = _simulate_window(preps[d], modes[d], base, idx, k * w, w, rc.switch_s if held else 0.0)
            if progress:
                print(f"  window {k + 1}/{n_win} {d}{' (switch)' if held else ''}", flush=True)
        return cache[key]

    ttft, tpot = exp.slo.ttft_s, exp.slo.tpot_s
    h, mu = rc.slo_headroom_frac, rc.max_utilization_frac
    cur, since = rc.initial or names[0], 0.0
    rows = []
    prev_stats = None
    n_switches = 0
    for k in range(n_win):
        t0 = k * w
        ci_pred = _predicted_intensity(base, t0, w)
        pred, att, scores = {}, {}, {}
        if k == 0:
            switch, why, best = False, "initial", cur
            rate = float("nan")
        else:
            rate, n_in, n_out = prev_stats
            t_p = time.perf_counter()
            for d in names:
                if simp is not None and rate > 0:
                    gps, att[d] = simp.score(d, k, np.arange(bounds[k - 1], bounds[k]), rate, ci_pred)
                    viol = rc.attainment_target / att[d] if att[d] > 0 else math.inf
                else:
                    p = predict(modes[d], rate, n_in, n_out, ci_pred)
                    gps = p.carbon_gps
                    viol = (
                        0.0
                        if rate <= 0
                        else (
                            math.inf if not p.stable else max(p.util / mu, p.ttft_s / (h * ttft), p.tpot_s / (h * tpot))
                        )
                    )
                r_sim = _grid(rate, rc.predictor_round_frac) if simp is not None else rate  # rate simulated
                per_req = gps / r_sim if r_sim > 0 else gps
                scores[d] = PlanScore((d,), gps, viol, per_req)
                pred[d] = per_req
            t_predict += time.perf_counter() - t_p
            best = cur
            for d in names:
                if better(scores[d], scores[best]):
                    best = d
            switch, why = decide(scores[best], scores[cur], t0, since, rc.hysteresis_frac, rc.min_dwell_s)
            if switch:
                cur, since = best, t0
                n_switches += 1
        log.info("replan %s: window %d/%d: %s (%s%s)", exp.name, k + 1, n_win, cur, why, ", switch" if switch else "")
        out = sim(cur, k, switch)
        idx = slice(bounds[k], bounds[k + 1])
        if bounds[k + 1] > bounds[k]:
            prev_stats = (
                (bounds[k + 1] - bounds[k]) / w,
                float(base.table.n_input_tokens[idx].mean()),
                float(base.table.n_output_tokens[idx].mean()),
            )
        else:  # an empty window: rate 0, lengths as before
            prev_stats = (0.0,) + (prev_stats[1:] if prev_stats else (1.0, 2.0))
        rows.append(
            {
                "window": k,
                "start_s": t0,
                "deployment": cur,
                "best": best,
                "switched": switch,
                "reason": why,
                "observed_rate_rps": rate,
                "intensity_predicted_gco2_per_kwh": ci_pred,
                **{f"predicted_gco2_per_request_{d}": pred.get(d, float("nan")) for d in names},
                **({f"predicted_attainment_{d}": att.get(d, float("nan")) for d in names} if simp else {}),
                "intensity_actual_gco2_per_kwh": out["ci_actual"],
                "n_requests": out["n"],
                "n_slo_met": out["n_met"],
                "n_held": out["held"],
                "carbon_gco2": out["carbon_gco2"],
                "tail_s": out["tail_s"],
                "tail_gco2": out["tail_gco2"],
                "gap_gco2": out["gap_gco2"],
            }
        )
    windows = pd.DataFrame(rows)
    srows = []
    for d in names:
        for k in range(n_win):
            o = sim(d, k, False)
            srows.append(
                {
                    "deployment": d,
                    "window": k,
                    "start_s": k * w,
                    "n_requests": o["n"],
                    "n_slo_met": o["n_met"],
                    "carbon_gco2": o["carbon_gco2"],
                    "tail_gco2": o["tail_gco2"],
                    "gap_gco2": o["gap_gco2"],
                }
            )
    static = pd.DataFrame(srows)

    def summarise(name: str, df: pd.DataFrame, switches: int) -> Dict[str, Any]:
        n = int(df["n_requests"].sum())
        c = float(df["carbon_gco2"].sum())
        return {
            "strategy": name,
            "carbon_gco2": c,
            "gco2_per_request": c / n if n else float("nan"),
            "slo_attainment_frac": float(df["n_slo_met"].sum()) / n if n else float("nan"),
            "n_switches": switches,
            "tail_gco2_frac": float(df["tail_gco2"].sum()) / c if c else 0.0,
        }

    comp = [summarise("online", windows, n_switches)]
    comp += [summarise(f"static:{d}", static[static["deployment"] == d], 0) for d in names]
    comparison = pd.DataFrame(comp)
    prediction: Dict[str, Any] = {"predictor": rc.predictor, "wall_s": t_predict}
    if simp is not None:
        prediction.update(
            {
                "n_simulations": simp.n_simulations,
                "n_cache_hits": simp.n_cache_hits,
                "predictor_requests": rc.predictor_requests,
                "simulation_wall_s": simp.wall_s,
            }
        )
    wall = time.perf_counter() - t_wall
    folder = None
    if write:
        import yaml

        from greensim.results.writer import to_jsonable, write_folder_atomically, write_text

        hsh = config_hash(exp)
        base_dir = Path(out_dir) if out_dir is not None else Path(exp.output.dir)

        def fill(tmp: Path) -> None:
            write_text(tmp / "experiment.yaml", yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False))
            windows.to_csv(tmp / "windows.csv", index=False)
            static.to_csv(tmp / "static.csv", index=False)
            comparison.to_csv(tmp / "comparison.csv", index=False)
            write_text(
                tmp / "summary.json",
                json.dumps(
                    to_jsonable(
                        {
                            "comparison": comparison.to_dict(orient="records"),
                            "n_windows": n_win,
                            "window_s": w,
                            "prediction": prediction,
                        }
                    ),
                    indent=2,
                ),
            )
            if exp.output.plots:
                from greensim.results.online_plots import plot_plan

                plot_plan(windows, comparison, tmp / "plan.png", exp.name)

        manifest = {
            **provenance(),
            "config_sha256": hsh,
            "seed": exp.seed,
            "wall_s": wall,
            "n_requests": int(len(arr)),
            "n_windows": n_win,
        }
        folder = write_folder_atomically(base_dir / exp.name / f"replan-{hsh[:8]}", fill, manifest)
    return WindowsResult(windows, static, comparison, folder, wall, prediction)
