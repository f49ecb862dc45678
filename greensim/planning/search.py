"""The SLO-aware, carbon-minimising planner (GreenLLM's scheduler, offline part; paper.md section 7).

:func:`plan` enumerates deployments of the inventory (colocated on new GPUs, DPD new->old,
DSD draft-old/target-new, colocated speculative decoding; instance counts, batch caps and
gammas), turns each into a full :class:`greensim.experiment.schema.Experiment`, and picks the one with
the lowest carbon per request whose SLO attainment meets the target (argmax attainment if
none does). The search is staged:

1. **theory** (:mod:`greensim.carbon.theory` closed forms with the candidate's bound performance
   models, mean lengths and rate of the workload): predicted carbon per request and GPU
   utilisation; a candidate is pruned when a role would be more than 100 % busy, when its
   DPD link would be more than 100 % busy, or when even an *upper bound* on its attainment
   (every request served alone: prefill of its prompt, batch-1 decode iterations, its KV or
   draft tokens over an idle link) is below the target;
2. **short simulations** (the first ``search.short_requests`` requests) in ascending
   predicted carbon; once one meets the target, candidates predicted more than
   ``prune_margin`` above it are skipped;
3. **full simulations** of the ``top_k`` short-promising candidates with the lowest short
   score (carbon over the arrival window, :func:`steady_state`), repeated down the list until
   one is confirmed, then of those scored within ``confirm_margin`` of it; if none is, every
   short-simulated candidate is confirmed in descending attainment until one meets the
   target; if still none does, the theory-pruned ones are simulated too, so that the answer
   is the highest attainment over the whole search space.

With ``carbon.forecast`` every candidate is scored at the mean forecast intensity over the
plan's window (:func:`_planning_intensity`).

``prune=False`` is brute force: every buildable candidate gets a full simulation.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from greensim.assembly.simulate import EngineMemo
from greensim.base.errors import ConfigError, GreensimError
from greensim.base.units import G_PER_KG, J_PER_KWH, S_PER_YEAR
from greensim.carbon.embodied import scoped_embodied_kgco2e
from greensim.experiment.load import parse_experiment
from greensim.experiment.schema import Experiment
from greensim.planning.spec import QUANT_PRESETS, PlanSpec, load_plan_spec
from greensim.results.bands import saving_band

__all__ = ["Candidate", "PlanResult", "plan", "enumerate_candidates", "candidate_experiments", "steady_state"]

log = logging.getLogger(__name__)

STAGE_ERROR = "error"
STAGE_PRUNED = "pruned_theory"
STAGE_SHORT = "short_sim"
STAGE_FULL = "full_sim"


@dataclass
class Candidate:
    """One deployment the planner considered.

    ``carbon_g_per_request`` / ``slo_attainment_frac`` come from the most complete run
    (full simulation, else short, else None); ``summary`` is the full run's summary.
    With ``confidence: pessimistic`` each run also has its pessimistic-corner twin
    (``short_summary_pessimistic``, ``summary_pessimistic``) and the attainment the search
    decides on (``decision_attainment_frac``) is the lower of the two. ``bands`` holds the
    uncertainty bands of a chosen candidate (winner, baseline; ``performance.uncertainty:
    corners``): ``{metric: {"low", "point", "high", ...}}``.
    """

    name: str
    mode: str
    new_gpu: str
    n_new: int
    old_gpu: Optional[str]
    n_old: int
    gamma: Optional[int]
    max_batch_size: int
    experiment: Optional[Experiment] = None
    stage: str = STAGE_PRUNED
    reason: str = ""
    predicted_carbon_g_per_request: float = float("nan")
    predicted_utilization_frac: float = float("nan")
    attainment_upper_bound_frac: float = float("nan")
    short_summary: Optional[Dict[str, Any]] = None
    summary: Optional[Dict[str, Any]] = None
    unused_gco2_per_request: float = 0.0
    wall_s: float = 0.0
    short_summary_pessimistic: Optional[Dict[str, Any]] = None
    summary_pessimistic: Optional[Dict[str, Any]] = None
    bands: Optional[Dict[str, Dict[str, float]]] = None
    bands_info: Optional[Dict[str, Any]] = None  # how the bands were obtained (summary "uncertainty")
    #: stability guard (search.max_backlog_growth_frac): a run whose backlog grew more is unstable
    max_backlog_growth_frac: float = math.inf
    power_cap_frac: Optional[float] = None  # old GPUs' power cap, fraction of TDP (dpd); None: uncapped
    gamma_policy: str = "fixed"  # spec/dsd: the gamma policy (fixed; goodput adapts gamma <= gamma per step)
    quantization: str = "none"  # old GPUs' quantisation preset (search.quantizations; dpd, pool, class_split)

    def _metrics(self) -> Optional[Dict[str, Any]]:
        return self.summary if self.summary is not None else self.short_summary

    def _metrics_pessimistic(self) -> Optional[Dict[str, Any]]:
        return self.summary_pessimistic if self.summary is not None else self.short_summary_pessimistic

    def _decision(self, s: Optional[Dict[str, Any]], sp: Optional[Dict[str, Any]]) -> Optional[float]:
        if s is None:
            return None
        if not self._stable(s):
            return 0.0  # its queue grows without bound: no attainment holds beyond the simulated run
        a = float(s["slo_attainment_frac"])
        return a if sp is None else min(a, float(sp["slo_attainment_frac"]))

    def _stable(self, s: Dict[str, Any]) -> bool:
        """Judged on full runs only: a short run's backlog is still filling up from the empty start."""
        if s is not self.summary and s is not self.summary_pessimistic:
            return True
        g = s.get("backlog_growth_frac")
        return g is None or not (g > self.max_backlog_growth_frac)

    @property
    def stable(self) -> Optional[bool]:
        """Whether the full run's queue stayed bounded (``backlog_growth_frac``, :func:`steady_state`)."""
        return None if self.summary is None else self._stable(self.summary)

    @property
    def decision_attainment_frac(self) -> Optional[float]:
        """The attainment the search compares with the target: the nominal run's, or with
        ``confidence: pessimistic`` the lower of the nominal and pessimistic-corner runs'."""
        return self._decision(self._metrics(), self._metrics_pessimistic())

    @property
    def short_decision_attainment_frac(self) -> Optional[float]:
        """:attr:`decision_attainment_frac` of the short simulation(s)."""
        return self._decision(self.short_summary, self.short_summary_pessimistic)

    @property
    def full_decision_attainment_frac(self) -> Optional[float]:
        """:attr:`decision_attainment_frac` of the full simulation(s)."""
        return self._decision(self.summary, self.summary_pessimistic)

    @property
    def carbon_g_per_request(self) -> Optional[float]:
        s = self._metrics()
        return None if s is None else float(s["carbon_gco2_per_request"]) + self.unused_gco2_per_request

    @property
    def slo_attainment_frac(self) -> Optional[float]:
        s = self._metrics()
        return None if s is None else float(s["slo_attainment_frac"])

    @property
    def n_gpus(self) -> int:
        return self.n_new + self.n_old


@dataclass
class PlanResult:
    """Outcome of :func:`plan`: every candidate, the winner, the new-GPU baseline and the saving."""

    spec: PlanSpec
    candidates: List[Candidate]
    best: Optional[Candidate]
    baseline: Optional[Candidate]
    feasible: bool
    wall_s: float
    stats: Dict[str, Any] = field(default_factory=dict)

    @property
    def saving_frac(self) -> Optional[float]:
        """1 - best / baseline carbon per request (None if either is missing)."""
        if self.best is None or self.baseline is None:
            return None
        b, c = self.baseline.carbon_g_per_request, self.best.carbon_g_per_request
        if b is None or c is None or b <= 0:
            return None
        return 1.0 - c / b

    @property
    def frontier(self) -> pd.DataFrame:
        """One row per candidate (carbon vs attainment, stage, theory prediction, reason)."""
        target = self.spec.attainment_target
        rows = []
        for c in self.candidates:
            s = c._metrics() or {}
            n = s.get("n_requests") or 0
            rows.append(
                {
                    "candidate": c.name,
                    "mode": c.mode,
                    "new_gpu": c.new_gpu,
                    "n_new": c.n_new,
                    "old_gpu": c.old_gpu,
                    "n_old": c.n_old,
                    "gamma": c.gamma,
                    "gamma_policy": c.gamma_policy if c.gamma is not None else None,
                    "max_batch_size": c.max_batch_size,
                    "power_cap_frac": c.power_cap_frac,
                    "stage": c.stage,
                    "predicted_carbon_g_per_request": c.predicted_carbon_g_per_request,
                    "predicted_utilization_frac": c.predicted_utilization_frac,
                    "attainment_upper_bound_frac": c.attainment_upper_bound_frac,
                    "carbon_g_per_request": c.carbon_g_per_request,
                    "slo_attainment_frac": c.slo_attainment_frac,
                    "slo_attainment_frac_pessimistic": (c._metrics_pessimistic() or {}).get("slo_attainment_frac"),
                    "feasible": bool(c.decision_attainment_frac is not None and c.decision_attainment_frac >= target),
                    "stable": c.stable,
                    "backlog_growth_frac": (c.summary or {}).get("backlog_growth_frac"),
                    "carbon_g_per_request_provisioned": s.get("carbon_gco2_per_request_provisioned"),
                    "carbon_g_per_request_busy": s.get("carbon_gco2_per_request_busy"),
                    "operational_g_per_request": s.get("operational_gco2_per_request"),
                    "embodied_g_per_request": s.get("embodied_gco2_per_request"),
                    "unused_g_per_request": c.unused_gco2_per_request,
                    "energy_j_per_request": (s["energy_kwh"] * J_PER_KWH / n) if n else None,
                    "ttft_s_p90": s.get("ttft_s_p90"),
                    "tpot_s_p90": s.get("tpot_s_p90"),
                    "n_requests_simulated": n or None,
                    "short_carbon_g_per_request": (self._short(c, "carbon_gco2_per_request")),
                    "short_slo_attainment_frac": (self._short(c, "slo_attainment_frac")),
                    "short_score_g_per_request": (self._short(c, "steady_carbon_gco2_per_request")),
                    "winner": self.best is not None and c.name == self.best.name,
                    "baseline": self.baseline is not None and c.name == self.baseline.name,
                    "wall_s": c.wall_s,
                    "reason": c.reason,
                }
            )
        df = pd.DataFrame(rows)
        if any(c.quantization != "none" for c in self.candidates):  # search.quantizations on
            df.insert(
                df.columns.get_loc("power_cap_frac") + 1, "quantization", [c.quantization for c in self.candidates]
            )
        if len(df):
            df = df.sort_values(
                ["feasible", "carbon_g_per_request"], ascending=[False, True], na_position="last", kind="stable"
            ).reset_index(drop=True)
        return df

    @staticmethod
    def _short(c: Candidate, key: str):
        return None if c.short_summary is None else c.short_summary.get(key)


# ------------------------------------------------------------------ enumeration
def _cand_name(mode, new, n_new, old, n_old, gamma, b, cap=None, gamma_policy: str = "fixed", quant="none") -> str:
    parts = [mode, f"{new}x{n_new}"]
    if old is not None:
        parts.append(f"{old}x{n_old}")
    if quant != "none":
        parts.append(f"q{quant}")
    if cap is not None:
        parts.append(f"cap{cap:g}")
    if gamma is not None:
        parts.append(f"g{gamma}" if gamma_policy == "fixed" else f"g{gamma}{gamma_policy}")
    parts.append(f"b{b}")
    return "_".join(parts)


def enumerate_candidates(spec: PlanSpec) -> List[Candidate]:
    """Every deployment of the search space (without experiments or scores)."""
    s = spec.search
    news = [i for i in spec.inventory if i.role == "new"]
    olds = [i for i in spec.inventory if i.role == "old"]
    out: List[Candidate] = []
    for b in s.max_batch_sizes:
        for nw in news:
            if "colocated" in s.modes:
                out += [
                    Candidate(
                        _cand_name("colocated", nw.gpu, n, None, 0, None, b), "colocated", nw.gpu, n, None, 0, None, b
                    )
                    for n in range(1, nw.count + 1)
                ]
            if "spec" in s.modes:
                out += [
                    Candidate(
                        _cand_name("spec", nw.gpu, n, None, 0, g, b, gamma_policy=gp),
                        "spec",
                        nw.gpu,
                        n,
                        None,
                        0,
                        g,
                        b,
                        gamma_policy=gp,
                    )
                    for n in range(1, nw.count + 1)
                    for g in s.gammas
                    for gp in s.gamma_policies
                ]
            for od in olds:
                if "class_split" in s.modes:
                    out += [
                        Candidate(
                            _cand_name("class_split", nw.gpu, p, od.gpu, d, None, b, quant=qz),
                            "class_split",
                            nw.gpu,
                            p,
                            od.gpu,
                            d,
                            None,
                            b,
                            quantization=qz,
                        )
                        for p in range(1, nw.count + 1)
                        for d in range(1, od.count + 1)
                        for qz in s.quantizations
                    ]
                if "pool" in s.modes:
                    out += [
                        Candidate(
                            _cand_name("pool", nw.gpu, p, od.gpu, d, None, b, quant=qz),
                            "pool",
                            nw.gpu,
                            p,
                            od.gpu,
                            d,
                            None,
                            b,
                            quantization=qz,
                        )
                        for p in range(0, nw.count + 1)
                        for d in range(1, od.count + 1)
                        for qz in s.quantizations
                    ]
                if "dpd" in s.modes:
                    out += [
                        Candidate(
                            _cand_name("dpd", nw.gpu, p, od.gpu, d, None, b, cap, quant=qz),
                            "dpd",
                            nw.gpu,
                            p,
                            od.gpu,
                            d,
                            None,
                            b,
                            power_cap_frac=cap,
                            quantization=qz,
                        )
                        for p in range(1, nw.count + 1)
                        for d in range(1, od.count + 1)
                        for cap in s.power_caps
                        for qz in s.quantizations
                    ]
                if "dsd" in s.modes:
                    out += [
                        Candidate(
                            _cand_name("dsd", nw.gpu, n, od.gpu, n, g, b, gamma_policy=gp),
                            "dsd",
                            nw.gpu,
                            n,
                            od.gpu,
                            n,
                            g,
                            b,
                            gamma_policy=gp,
                        )
                        for n in range(1, min(nw.count, od.count * od.tp) + 1)
                        for g in s.gammas
                        for gp in s.gamma_policies
                    ]
    names = [c.name for c in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(
            f"inventory: GPU types appear more than once with the same role ({sorted(dup)[:3]}). "
            f"Merge them into one item with the summed count."
        )
    return out


def candidate_experiments(spec: Any, overrides: Any = None) -> List[Candidate]:
    """Every candidate of a plan with its experiment (``Candidate.experiment``), without running
    anything: for studies that simulate the whole space themselves (e.g. a sensitivity study that
    re-prices the same runs under several carbon regimes). Candidates that cannot be built keep
    ``experiment = None`` and say why in ``reason``."""
    spec = load_plan_spec(spec, overrides)
    out = enumerate_candidates(spec)
    for c in out:
        c.max_backlog_growth_frac = spec.search.max_backlog_growth_frac
        try:
            c.experiment = parse_experiment(_experiment_dict(spec, c), where=f"candidate {c.name}")
        except GreensimError as exc:
            c.stage, c.reason = STAGE_ERROR, f"cannot build: {exc}"
    return out


def _item(spec: PlanSpec, gpu: str, role: str):
    return next(i for i in spec.inventory if i.gpu == gpu and i.role == role)


def _experiment_dict(spec: PlanSpec, c: Candidate) -> Dict[str, Any]:
    """The candidate as an experiment file (a plain dict)."""
    base = spec.model_dump(mode="json")
    s = spec.search
    nw = _item(spec, c.new_gpu, "new")
    group = {
        "gpu": nw.gpu,
        "tp": nw.tp,
        "count": c.n_new,
        "max_batch_size": c.max_batch_size,
        "max_batched_tokens": s.max_batched_tokens,
        "age_years": nw.age_years,
    }
    cluster: Dict[str, Any] = {"router": s.router, "instances": [group]}
    link = base["link"]
    q_old = QUANT_PRESETS[c.quantization]
    q_old_field = {} if q_old is None else {"quantization": dict(q_old)}
    if c.mode == "class_split":
        od = _item(spec, c.old_gpu, "old")
        old_group = {**group, "gpu": od.gpu, "tp": od.tp, "count": c.n_old, "age_years": od.age_years, **q_old_field}
        cluster = {
            "router": "class_affinity",
            "router_options": {"classes": {s.old_class: [od.gpu]}, "inner": s.pool_router},
            "instances": [group, old_group],
        }
    if c.mode == "pool":
        od = _item(spec, c.old_gpu, "old")
        old_group = {**group, "gpu": od.gpu, "tp": od.tp, "count": c.n_old, "age_years": od.age_years, **q_old_field}
        cluster = {"router": s.pool_router, "instances": ([group] if c.n_new else []) + [old_group]}
    if c.mode in ("spec", "dsd"):
        d = s.draft
        sp: Dict[str, Any] = {"draft_model": d.model, "gamma": c.gamma, "probabilities": d.probabilities}
        if c.gamma_policy != "fixed":
            sp["gamma_policy"] = c.gamma_policy
        if d.alpha_by_position is not None:
            sp["alpha_by_position"] = list(d.alpha_by_position[: c.gamma])
        elif d.acceptance is not None:
            sp["acceptance"] = d.acceptance
        else:
            sp["alpha"] = d.alpha
        if d.top_k is not None:
            sp["top_k"] = d.top_k
        if d.draft_vocab_size is not None:
            sp["draft_vocab_size"] = d.draft_vocab_size
        if c.mode == "dsd":
            od = _item(spec, c.old_gpu, "old")
            sp.update(draft_gpu=od.gpu, link=link, draft_gpu_age_years=od.age_years)
        group["speculative"] = sp
    elif c.mode == "dpd":
        od = _item(spec, c.old_gpu, "old")
        group["role"] = "prefill"
        cluster["instances"].append(
            {
                "gpu": od.gpu,
                "tp": od.tp,
                "count": c.n_old,
                "role": "decode",
                "max_batch_size": c.max_batch_size,
                "max_batched_tokens": s.max_batched_tokens,
                "age_years": od.age_years,
                **({} if c.power_cap_frac is None else {"power_cap_frac": c.power_cap_frac}),
                **q_old_field,
            }
        )
        cluster["disaggregation"] = {"decode_router": s.decode_router, "link": link}
    return {
        "name": f"{spec.name}.{c.name}",
        "seed": spec.seed,
        "model": spec.model,
        "workload": base["workload"],
        "cluster": cluster,
        "slo": base["slo"],
        "carbon": base["carbon"],
        "performance": base["performance"],
        "output": base["output"],
        "catalog": base["catalog"],
        "simulation": {**base["simulation"], "progress": False},
    }


def _shorten(exp: Experiment, n: int) -> Experiment:
    """The same experiment with only its first ``n`` requests."""
    wl = exp.workload
    if wl.kind == "poisson":
        upd = {"n_requests": min(n, wl.n_requests)}
    elif wl.kind == "synthetic":
        upd = {"n_requests": min(n, wl.n_requests) if wl.n_requests else n}
    else:
        upd = {"max_requests": min(n, wl.max_requests) if wl.max_requests else n}
    return exp.model_copy(update={"workload": wl.model_copy(update=upd)})


# ------------------------------------------------------------------ theory stage
class _Context:
    """What the theory stage needs once per plan: catalogue, bound models, workload statistics."""

    def __init__(self, spec: PlanSpec, exp: Experiment):
        from greensim.assembly.prepare import draft_with_vocab, experiment_workload, performance_model, slo_arrays
        from greensim.carbon.registry import INTENSITY_SOURCES
        from greensim.hardware.catalog import load_catalog

        self.spec = spec
        self.cat = load_catalog(spec.catalog.gpu_dirs, spec.catalog.model_dirs)
        self.model = self.cat.model(spec.model, "model")
        d = spec.search.draft
        self.draft = (
            draft_with_vocab(
                self.cat.model(d.model, "search.draft.model"), d.draft_vocab_size, "search.draft.draft_vocab_size"
            )
            if d
            else None
        )
        self.perf = performance_model(spec.performance)
        table = experiment_workload(exp)
        self.n_in = np.asarray(table.n_input_tokens, dtype=np.int64)
        self.n_out = np.asarray(table.n_output_tokens, dtype=np.int64)
        arr = np.asarray(table.arrival_s, dtype=float)
        self.n = len(arr)
        self.horizon_s = float(arr[-1] - arr[0]) if self.n > 1 else 1.0
        self.rate = (self.n - 1) / self.horizon_s if self.n > 1 and self.horizon_s > 0 else 1.0
        self.ttft_slo, self.tpot_slo = slo_arrays(exp, self.n, table.slo_class)
        self.slo_class = (
            np.asarray(table.slo_class, dtype=object)
            if table.slo_class is not None
            else np.full(self.n, "", dtype=object)
        )
        ic = spec.carbon.intensity
        src = INTENSITY_SOURCES.get(ic.kind, field="carbon.intensity.kind")(
            **{k: v for k, v in ic.model_dump().items() if k != "kind"}
        )
        self.ci = float(np.asarray(src.mean_over(np.array([0.0]), np.array([max(float(arr[-1]), 1e-3)])))[0])
        self._bound: Dict[Any, Any] = {}
        self._memo: Dict[Any, np.ndarray] = {}

    def at_band(self, band: str) -> "_Context":
        """The same context with performance models bound at ``band`` (pessimistic: confidence)."""
        from greensim.assembly.prepare import performance_model

        other = copy.copy(self)
        other.perf = performance_model(self.spec.performance.model_copy(update={"band": band}))
        other._bound, other._memo = {}, {}
        return other

    def bound(self, gpu: str, model, tp: int, max_batch: Optional[int] = None, power_cap_frac=None):
        from greensim.hardware.powercap import bind_capped

        key = (gpu, model.name, tp, power_cap_frac)
        if key not in self._bound:
            where = "search.power_caps"
            self._bound[key] = bind_capped(self.perf, self.cat.gpu(gpu, "gpu"), model, tp, power_cap_frac, where)
        return self._bound[key] if max_batch is None else _BatchCapped(self._bound[key], max_batch)

    def per_input(self, key, f) -> np.ndarray:
        """f(n_in) for every request (evaluated once per distinct prompt length)."""
        if key not in self._memo:
            u, inv = np.unique(self.n_in, return_inverse=True)
            self._memo[key] = np.array([f(int(x)) for x in u])[inv]
        return self._memo[key]

    def embodied(self, gpu: str, age_years: float):
        """(kgCO2e per GPU, lifetime) equivalent to the candidate's amortisation scheme, for the theory."""
        c = self.spec.carbon
        g = self.cat.gpu(gpu, "gpu")
        hs = c.host_share
        own, host = scoped_embodied_kgco2e(
            g,
            c.embodied_scope,
            c.gpu_embodied_kgco2e.get(g.name),
            hs.embodied_kgco2e if hs else None,
            hs.gpus_per_host if hs else None,
        )
        e = own + host
        lt = c.gpu_lifetime_years.get(g.name, c.lifetime_years)
        sch = c.embodied_schemes.get(g.name)
        if sch is not None and sch.scheme == "extended" and sch.extended_years:
            lt = lt + sch.extended_years
        elif sch is not None and sch.scheme == "sunk" and age_years >= lt:
            e = 0.0
        return e, lt

    def idle_w(self, gpu: str) -> float:
        return self.cat.gpu(gpu, "gpu").idle_w


class _Overloaded(ConfigError):
    """The theory's mean batch exceeds the candidate's batch cap: it cannot keep up."""


class _BatchCapped:
    """A bound performance model that refuses batches beyond ``max_batch + 1`` requests.

    The theory's batch fixed point grows without bound when a candidate cannot keep up; a
    mean batch above the cap means the queue grows (overloaded), and it stops the search
    before iterations over huge batches get slow.
    """

    def __init__(self, perf, max_batch: int):
        self._perf, self._cap = perf, max_batch + 1

    def iteration_time_s(self, chunks, n_decode, decode_ctx_tokens):
        if len(chunks) > self._cap or n_decode > self._cap:
            raise _Overloaded(f"theory: the mean batch would exceed max_batch_size {self._cap - 1}")
        return self._perf.iteration_time_s(chunks, n_decode, decode_ctx_tokens)

    def __getattr__(self, name):
        return getattr(self._perf, name)


def _link_bps(spec: PlanSpec) -> float:
    from greensim.core.link import link_bandwidth_bps

    lk = spec.link
    return link_bandwidth_bps(lk.kind, lk.bandwidth_gbs, lk.efficiency_frac)


def _theory(ctx: _Context, c: Candidate) -> None:
    """Fill predicted carbon, utilisation and the attainment upper bound; set reason when hopeless."""
    from greensim.carbon import theory as th

    spec = ctx.spec
    m = ctx.model
    nw = _item(spec, c.new_gpu, "new")
    p_new = ctx.bound(nw.gpu, m, nw.tp, c.max_batch_size)
    n_in = max(1, int(round(ctx.n_in.mean())))
    n_out = max(2, int(round(ctx.n_out.mean())))
    new = (nw.tp, *ctx.embodied(nw.gpu, nw.age_years))
    pue = spec.carbon.pue
    ttft_lb = ctx.per_input(("pre", nw.gpu), lambda x: p_new.iteration_time_s([(x, 0)], 0, 0))
    link_util = 0.0
    d = spec.search.draft
    alpha = None
    if d is not None:
        alpha = d.alpha_value
        if alpha is None:
            alpha = float(np.mean(d.alpha_by_position[: c.gamma or 1]))
    try:
        if c.mode == "colocated":
            tok_lb = ctx.per_input(("dec", nw.gpu), lambda x: p_new.iteration_time_s((), 1, x))
            mode = th.colocated(p_new, n_in, n_out, ctx.rate / c.n_new, *new)
        elif c.mode == "class_split":
            od = _item(spec, c.old_gpu, "old")
            p_old = ctx.bound(od.gpu, _old_model(ctx, c), od.tp, c.max_batch_size)
            old = (od.tp, *ctx.embodied(od.gpu, od.age_years))
            is_old = ctx.slo_class == spec.search.old_class
            tok_new = ctx.per_input(("dec", nw.gpu), lambda x: p_new.iteration_time_s((), 1, x))
            tok_old = ctx.per_input(("dec", od.gpu), lambda x: p_old.iteration_time_s((), 1, x))
            ttft_old = ctx.per_input(("pre", od.gpu), lambda x: p_old.iteration_time_s([(x, 0)], 0, 0))
            ttft_lb = np.where(is_old, ttft_old, ttft_lb)
            tok_lb = np.where(is_old, tok_old, tok_new)
            mode = _split_theory(p_new, p_old, ctx, is_old, c.n_new, c.n_old, new, old)
        elif c.mode == "pool":
            od = _item(spec, c.old_gpu, "old")
            p_old = ctx.bound(od.gpu, _old_model(ctx, c), od.tp, c.max_batch_size)
            old = (od.tp, *ctx.embodied(od.gpu, od.age_years))
            tok_new = ctx.per_input(("dec", nw.gpu), lambda x: p_new.iteration_time_s((), 1, x))
            tok_old = ctx.per_input(("dec", od.gpu), lambda x: p_old.iteration_time_s((), 1, x))
            ttft_old = ctx.per_input(("pre", od.gpu), lambda x: p_old.iteration_time_s([(x, 0)], 0, 0))
            if c.n_new:  # a request meets its SLOs alone on either GPU type at best
                ok_new = (ttft_lb <= ctx.ttft_slo) & ((ctx.n_out <= 1) | (tok_new <= ctx.tpot_slo))
                ok_old = (ttft_old <= ctx.ttft_slo) & ((ctx.n_out <= 1) | (tok_old <= ctx.tpot_slo))
                ttft_lb = np.where(ok_new | ~ok_old, ttft_lb, ttft_old)
                tok_lb = np.where(ok_new | ~ok_old, tok_new, tok_old)
            else:
                ttft_lb, tok_lb = ttft_old, tok_old
            mode = _pool_theory(p_new, p_old, n_in, n_out, ctx.rate, c.n_new, c.n_old, new, old)
        elif c.mode == "dpd":
            od = _item(spec, c.old_gpu, "old")
            p_old = ctx.bound(od.gpu, _old_model(ctx, c), od.tp, c.max_batch_size, c.power_cap_frac)
            old = (od.tp, *ctx.embodied(od.gpu, od.age_years))
            bw = _link_bps(spec)
            kvb = m.kv_bytes_per_token
            per_link = {"shared": 1, "per_prefill": c.n_new, "per_decode": c.n_old, "per_pair": c.n_new * c.n_old}[
                spec.link.scope
            ]
            link_util = ctx.rate / per_link * kvb * float(ctx.n_in.mean()) / bw if math.isfinite(bw) else 0.0
            dec = ctx.per_input(("dec", od.gpu, c.power_cap_frac), lambda x: p_old.iteration_time_s((), 1, x))
            xfer = kvb * ctx.n_in / bw + spec.link.latency_s
            tok_lb = dec + xfer / np.maximum(ctx.n_out - 1, 1)
            mode = th.dpd(
                p_new,
                p_old,
                n_in,
                n_out,
                ctx.rate / c.n_new,
                ctx.rate / c.n_old,
                new,
                old,
                kv_bytes_per_token=kvb,
                link_bytes_per_s=bw,
            )
        else:  # spec, dsd
            g = c.gamma
            if c.mode == "dsd":
                od = _item(spec, c.old_gpu, "old")
                p_draft = ctx.bound(od.gpu, ctx.draft, 1, c.max_batch_size)
                bw = _link_bps(spec)
                per_tok = (
                    4
                    + (
                        ctx.draft.head_vocab
                        if d.probabilities == "full_vocab"
                        else d.top_k * (1 + 4 / ctx.draft.dtype_bytes)
                    )
                    * ctx.draft.dtype_bytes
                )
                link_s = g * per_tok / bw + 2 * spec.link.latency_s
                dkey = ("dec", od.gpu, "draft")
            else:
                p_draft = ctx.bound(nw.gpu, ctx.draft, nw.tp, c.max_batch_size)
                link_s = 0.0
                dkey = ("dec", nw.gpu, "draft")
            t_d = ctx.per_input(dkey, lambda x: p_draft.iteration_time_s((), 1, x))
            t_v = ctx.per_input(("ver", nw.gpu, g), lambda x: p_new.iteration_time_s([(g + 1, x)], 0, 0))
            tok_lb = (g * t_d + t_v + link_s) / (g + 1)
            if c.gamma_policy != "fixed":  # an adaptive policy may draft less, down to plain decoding
                plain = ctx.per_input(("dec", nw.gpu), lambda x: p_new.iteration_time_s((), 1, x))
                tok_lb = np.minimum(tok_lb, plain)
            if c.mode == "dsd":
                old = (1, *ctx.embodied(od.gpu, od.age_years))
                mode = th.dsd(p_new, p_draft, n_in, n_out, ctx.rate / c.n_new, new, old, g, alpha)
            else:
                mode = _spec_theory(p_new, p_draft, n_in, n_out, ctx.rate / c.n_new, new, g, alpha)
        util = max(u.utilization_frac for u in mode.uses)
        c.predicted_utilization_frac = util
        c.predicted_carbon_g_per_request = float(
            th.carbon_per_request(mode, ctx.ci, pue, accounting=spec.carbon.accounting)
        )
    except (ConfigError, ZeroDivisionError) as exc:
        c.predicted_utilization_frac = float("inf")
        c.reason = f"theory: overloaded ({exc})"
    ok = (ttft_lb <= ctx.ttft_slo) & ((ctx.n_out <= 1) | (tok_lb <= ctx.tpot_slo))
    c.attainment_upper_bound_frac = float(ok.mean())
    if link_util > 1 and not c.reason:
        c.reason = f"theory: the link would be {link_util:.0%} busy with KV transfers"
        c.predicted_utilization_frac = max(c.predicted_utilization_frac, link_util)
    if c.attainment_upper_bound_frac < spec.attainment_target and not c.reason:
        c.reason = (
            f"theory: at most {c.attainment_upper_bound_frac:.1%} of requests can meet the SLOs even "
            f"served alone (target {spec.attainment_target:.0%})"
        )
    c.predicted_carbon_g_per_request += _unused_gco2_per_request(ctx, c, ctx.horizon_s, ctx.n, ctx.ci)


def _split_theory(p_new, p_old, ctx, is_old: np.ndarray, n_new: int, n_old: int, new, old):
    """Mode class_split: each side a colocated deployment of its class's share of the requests
    (at that class's mean lengths), busy time and energy per request of the whole workload."""
    from greensim.carbon import theory as th

    uses = []
    for perf, sel, n, emb, role in ((p_new, ~is_old, n_new, new, "new"), (p_old, is_old, n_old, old, "old")):
        f = float(sel.mean())
        if f == 0:
            continue
        n_in = max(1, int(round(ctx.n_in[sel].mean())))
        n_out = max(2, int(round(ctx.n_out[sel].mean())))
        u = th.colocated(perf, n_in, n_out, f * ctx.rate / n, *emb, role=role).uses[0]
        uses.append(dataclasses.replace(u, busy_s=f * u.busy_s, busy_j=f * u.busy_j))
    return th.Mode("class_split", tuple(uses))


def _pool_theory(p_new, p_old, n_in: int, n_out: int, rate: float, n_new: int, n_old: int, new, old):
    """A colocated pool of ``n_new`` new and ``n_old`` old instances: the load split so both types
    are equally busy (a shortest-queue router keeps the slower type's share down), each type priced
    by :func:`greensim.carbon.theory.colocated`; per pool request, each role's busy time and energy
    weighted by its share of requests (its utilisation, hence provisioned time, is unchanged)."""
    from greensim.carbon import theory as th

    if n_new == 0:
        return th.colocated(p_old, n_in, n_out, rate / n_old, *old, role="old")

    def util(perf, r, role, emb):
        try:
            return th.colocated(perf, n_in, n_out, r, *emb, role=role)
        except ConfigError:
            return None

    lo, hi = 0.0, 1.0  # share of the requests the new GPUs serve
    best = None
    for _ in range(40):
        x = 0.5 * (lo + hi)
        mn = util(p_new, x * rate / n_new, "new", new)
        mo = util(p_old, (1 - x) * rate / n_old, "old", old) if x < 1 else None
        if mn is None:  # new GPUs overloaded: give the old ones more
            hi = x
            continue
        if mo is None:
            lo = x
            continue
        best = (x, mn, mo)
        if mn.uses[0].utilization_frac > mo.uses[0].utilization_frac:
            hi = x
        else:
            lo = x
    if best is None:
        raise ConfigError(f"theory: a pool of {n_new} new and {n_old} old instances cannot carry {rate:g} req/s")
    x, mn, mo = best
    un, uo = mn.uses[0], mo.uses[0]
    return th.Mode(
        "pool",
        (
            dataclasses.replace(un, busy_s=x * un.busy_s, busy_j=x * un.busy_j),
            dataclasses.replace(uo, busy_s=(1 - x) * uo.busy_s, busy_j=(1 - x) * uo.busy_j),
        ),
    )


def _spec_theory(p_new, p_draft, n_in: int, n_out: int, rate: float, new, gamma: int, alpha: float):
    """Colocated speculative decoding: :func:`greensim.carbon.theory.dsd` with draft and target on one GPU
    (both prefills and the whole draft/verify loop keep the same instance busy)."""
    from greensim.carbon import theory as th

    n_iter = (n_out - 1) / ((1 - alpha ** (gamma + 1)) / (1 - alpha))
    ctx = n_in + n_out / 2.0
    t_pre_t = p_new.iteration_time_s([(n_in, 0)], 0, 0)
    t_pre_d = p_draft.iteration_time_s([(n_in, 0)], 0, 0)

    def parts(b):
        bi = max(1, int(round(b)))
        return gamma * th._decode_time(p_draft, b, ctx), p_new.iteration_time_s([(gamma + 1, int(ctx))] * bi, 0, 0), bi

    b = th.decode_batch(None, rate, n_iter, ctx, t_pre_t + t_pre_d, lambda x: sum(parts(x)[:2]))
    t_draft, t_ver, bi = parts(b)
    busy = t_pre_t + t_pre_d + n_iter * (t_draft + t_ver) / b
    energy = (
        t_pre_t * p_new.power_w(n_in, 0)
        + t_pre_d * p_draft.power_w(n_in, 0)
        + n_iter
        * (
            gamma * th._decode_energy(p_draft, b, ctx)
            + t_ver * p_new.verify_power_w(bi * (gamma + 1), int(bi * ctx), bi, t_ver)
        )
        / b
    )
    return th.Mode("spec", (th._use("new", busy, energy, rate, p_new, *new),))


def _unused_gco2_per_request(ctx: _Context, c: Candidate, duration_s: float, n: int, ci: float) -> float:
    """Idle energy and embodied carbon of inventory GPUs the candidate leaves unused (charge_unused)."""
    spec = ctx.spec
    if not spec.search.charge_unused or n <= 0 or spec.carbon.accounting == "busy":
        return 0.0  # busy accounting charges no idle GPU
    used = {("new", c.new_gpu): c.n_new * _item(spec, c.new_gpu, "new").tp}
    if c.old_gpu is not None:
        od = _item(spec, c.old_gpu, "old")
        used[("old", c.old_gpu)] = c.n_old * (1 if c.mode == "dsd" else od.tp)
    g = 0.0
    for it in spec.inventory:
        free = it.count * it.tp - used.get((it.role, it.gpu), 0)
        if free <= 0:
            continue
        e, lt = ctx.embodied(it.gpu, it.age_years)
        g += free * (
            ci * spec.carbon.pue * ctx.idle_w(it.gpu) * duration_s / J_PER_KWH
            + G_PER_KG * e * duration_s / (lt * S_PER_YEAR)
        )
    return g / n


def _note_unstable(c: Candidate, s: Dict[str, Any]) -> None:
    if not c._stable(s):
        c.reason = (
            f"unstable: its backlog grew by {s['backlog_growth_frac']:.0%} of the arrivals over the second half "
            f"of the window (limit search.max_backlog_growth_frac {c.max_backlog_growth_frac:g}): the queue "
            f"grows without bound, attainment {s['slo_attainment_frac']:.1%} holds only for this finite run"
        )


# ------------------------------------------------------------------ simulation stages
def _simulate(exp: Experiment, memo: Optional[EngineMemo] = None) -> Dict[str, Any]:
    """The run's summary plus its arrival-window (steady-state) carbon, :func:`steady_state`;
    ``memo``: an :class:`~greensim.assembly.simulate.EngineMemo` of engine runs to reuse."""
    import time

    from greensim.assembly import prepare, simulate

    t0 = time.perf_counter()
    r = simulate(prepare(exp), memo=memo)
    r.summary["sim_wall_s"] = time.perf_counter() - t0
    return {**r.summary, **steady_state(r)}


def steady_state(result: Any) -> Dict[str, float]:
    """Carbon per request over the arrival window, free of the drain tail.

    A run ends when its last request finishes, so after the last arrival the cluster only
    drains: every GPU stays provisioned (idle power, embodied carbon) while few requests
    finish, and a short run charges that tail to few requests. The share differs per
    deployment (a slow decode GPU drains longest), which biases the ranking of short runs.
    Over the window ``[0, T]``, ``T`` = the last arrival, this estimate divides the carbon
    emitted in the window (operational from the timeline bins, the last one pro rata;
    embodied ``x T / duration``, linear amortisation) by the requests' work done in it:
    a completed request counts 1, one in flight at ``T`` the fraction of its tokens out by
    ``T`` (its first token at the first-token time, the rest evenly until it finishes), one
    without a first token 0. Under a steady load that work equals the arrivals minus the
    backlog at ``T``, so the ratio is the steady-state carbon per request.

    Returns ``steady_window_s`` (T), ``steady_work_requests`` and
    ``steady_carbon_gco2_per_request`` (NaN with no work in the window), and the stability
    measure ``backlog_growth_frac``: how much the backlog (requests arrived less work done, as
    above) grew from T/2 to T, per request arriving in (T/2, T]. A stable queue's backlog
    fluctuates around its mean (about 0); an overloaded one grows by 1 - capacity / load per
    arrival, however short the run: a finite run that ends before its queue explodes would
    otherwise pass on attainment alone.
    """
    req, tl, s = result.requests, result.timeline, result.summary
    H = float(s["duration_s"])
    arr = req["arrival_s"].to_numpy(dtype=float)
    T = float(arr.max()) if len(arr) else 0.0
    if not (T > 0) or not (H > 0):
        return {
            "steady_window_s": T,
            "steady_work_requests": float("nan"),
            "steady_carbon_gco2_per_request": float(s["carbon_gco2_per_request"]),
            "backlog_growth_frac": float("nan"),
        }
    edges = np.unique(tl["t_s"].to_numpy(dtype=float))
    width = np.diff(np.append(edges, H))
    frac = np.clip((T - edges) / np.where(width > 0, width, 1.0), 0.0, 1.0)
    bin_of = np.searchsorted(edges, tl["t_s"].to_numpy(dtype=float))
    op = float(np.sum(tl["operational_gco2"].to_numpy(dtype=float) * frac[bin_of]))
    emb = float(s["embodied_gco2"]) * min(T / H, 1.0)
    first = arr + req["ttft_s"].to_numpy(dtype=float)
    done = arr + req["e2e_s"].to_numpy(dtype=float)
    n_out = np.maximum(req["n_output_tokens"].to_numpy(dtype=float), 1.0)
    ok = ~req["rejected"].to_numpy(dtype=bool) & np.isfinite(first) & np.isfinite(done)

    def work_by(t: float) -> float:
        with np.errstate(invalid="ignore", divide="ignore"):
            part = (1.0 + (n_out - 1.0) * np.clip((t - first) / (done - first), 0.0, 1.0)) / n_out
        phi = np.where(ok & (done <= t), 1.0, np.where(ok & (first <= t), np.nan_to_num(part, nan=1.0), 0.0))
        return float(phi.sum())

    work = work_by(T)
    # queue stability: the backlog (arrived - work done) at T against at T/2, per arrival in (T/2, T]
    half = T / 2.0
    n_late = float(np.sum(arr > half))
    n_early = float(np.sum(arr <= half))
    growth = ((len(arr) - work) - (n_early - work_by(half))) / n_late if n_late > 0 else float("nan")
    return {
        "steady_window_s": T,
        "steady_work_requests": work,
        "steady_carbon_gco2_per_request": (op + emb) / work if work > 0 else float("nan"),
        "backlog_growth_frac": growth,
    }


def plan(
    spec: Any,
    overrides: Any = None,
    progress: bool = False,
    confirm: bool = True,
    prune: bool = True,
    confidence: Optional[str] = None,
    memo: Optional[EngineMemo] = None,
) -> PlanResult:
    """Search the plan's deployments for the lowest-carbon one that meets the attainment target.

    Parameters
    ----------
    spec : a plan file path, a dict or a :class:`PlanSpec`.
    overrides : ``{"dotted.key": value}`` or ``["key=value", ...]`` applied to the plan.
    progress : show a progress bar over simulations.
    confirm : confirm the winner (and baseline) with full simulations; False ranks by the
        short simulations only.
    prune : False = brute force: a full simulation of every buildable candidate.
    confidence : ``"nominal"`` or ``"pessimistic"``; overrides the plan's ``confidence`` (with
        ``pessimistic`` a candidate must also meet the target at the pessimistic corner of the
        uncertainty bands).
    memo : an :class:`~greensim.assembly.simulate.EngineMemo` shared by several plans that differ only
        in carbon accounting or SLOs (a study re-planning one workload under several grids): an
        engine run already in it is not simulated again (same numbers; ``stats["n_engine_memo_hits"]``).

    With ``performance.uncertainty: corners`` (the default) the winner and the baseline also get
    uncertainty bands (``Candidate.bands``; ``stats["uncertainty"]``, ``stats["saving_frac_band"]``).
    """
    return _plan(spec, overrides, progress, confirm, prune, confidence, memo)


def _plan(
    spec: Any,
    overrides: Any,
    progress: bool,
    confirm: bool,
    prune: bool,
    confidence: Optional[str] = None,
    memo: Optional[EngineMemo] = None,
) -> PlanResult:
    t0 = time.perf_counter()
    if memo is not None and not isinstance(memo, EngineMemo):
        raise ConfigError(
            f"plan(memo=...): expected a greensim.planning.EngineMemo (or None), got {type(memo).__name__}. "
            "Create one with EngineMemo() and pass the same object to each plan(...) that should share runs."
        )
    hits0 = memo.hits if memo is not None else 0
    spec = load_plan_spec(spec, overrides)
    if confidence is not None:
        spec = load_plan_spec(spec, {"confidence": confidence})
    spec, planning = _planning_intensity(spec)
    target = spec.attainment_target
    cands = enumerate_candidates(spec)
    for c in cands:
        c.max_backlog_growth_frac = spec.search.max_backlog_growth_frac
    # workload statistics from the plan itself: a bad workload is the plan's error, not a candidate's
    nw = next(i for i in spec.inventory if i.role == "new")
    probe = Candidate("probe", "colocated", nw.gpu, 1, None, 0, None, spec.search.max_batch_sizes[0])
    ctx = _Context(spec, parse_experiment(_experiment_dict(spec, probe), where=spec.name))
    pessimistic = spec.confidence == "pessimistic"
    from greensim.assembly.uncertainty import corner_experiment

    ctx_p = ctx.at_band("pessimistic") if pessimistic else None
    for c in cands:
        try:
            c.experiment = parse_experiment(_experiment_dict(spec, c), where=f"candidate {c.name}")
            _check_fits(ctx, c)
            _theory(ctx, c)
            if ctx_p is not None and not c.reason:  # SLOs must hold at the pessimistic corner too
                twin = dataclasses.replace(c)
                _theory(ctx_p, twin)
                c.attainment_upper_bound_frac = min(c.attainment_upper_bound_frac, twin.attainment_upper_bound_frac)
                if twin.reason:
                    c.reason = f"{twin.reason} (pessimistic corner, confidence: pessimistic)"
        except GreensimError as exc:
            c.stage, c.reason, c.experiment = STAGE_ERROR, f"cannot build: {exc}", None
    alive = [c for c in cands if c.experiment is not None]
    log.info(
        "plan %s: %d candidates, %d buildable (%s)",
        spec.name,
        len(cands),
        len(alive),
        "pruned search" if prune else "brute force",
    )

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(alive) if not prune else None, unit="sim", desc=f"plan {spec.name}", leave=False)
    n_short = n_full = n_twin = 0

    def run_full(c: Candidate) -> None:
        nonlocal n_full, n_twin
        t = time.perf_counter()
        log.info("plan %s: full simulation of %s", spec.name, c.name)
        try:
            c.summary = _simulate(c.experiment, memo)
            if pessimistic:
                n_twin += 1
                c.summary_pessimistic = _simulate(corner_experiment(c.experiment, "pessimistic"), memo)
            c.stage = STAGE_FULL
            c.unused_gco2_per_request = _unused_gco2_per_request(
                ctx, c, c.summary["duration_s"], c.summary["n_requests"], c.summary["intensity_mean_gco2_per_kwh"]
            )
            _note_unstable(c, c.summary)
        except GreensimError as exc:
            c.stage, c.reason = STAGE_ERROR, f"simulation failed: {exc}"
        c.wall_s += time.perf_counter() - t
        n_full += 1
        if bar is not None:
            bar.update(1)

    def run_short(c: Candidate) -> None:
        nonlocal n_short, n_twin
        t = time.perf_counter()
        log.info("plan %s: short simulation of %s", spec.name, c.name)
        try:
            short = _shorten(c.experiment, spec.search.short_requests)
            c.short_summary = _simulate(short, memo)
            if pessimistic:
                n_twin += 1
                c.short_summary_pessimistic = _simulate(corner_experiment(short, "pessimistic"), memo)
            c.stage = STAGE_SHORT
            s = c.short_summary
            c.unused_gco2_per_request = _unused_gco2_per_request(
                ctx, c, s["duration_s"], s["n_requests"], s["intensity_mean_gco2_per_kwh"]
            )
        except GreensimError as exc:
            c.stage, c.reason = STAGE_ERROR, f"simulation failed: {exc}"
        c.wall_s += time.perf_counter() - t
        n_short += 1
        if bar is not None:
            bar.update(1)

    def short_ok(c):
        return c.short_summary is not None and c.short_decision_attainment_frac >= target

    def short_promising(c):
        return c.short_summary is not None and c.short_decision_attainment_frac >= target - spec.search.short_slack

    def full_ok(c):
        return c.summary is not None and c.full_decision_attainment_frac >= target

    def short_carbon(c):  # arrival-window score (steady_state): no drain-tail bias between candidates
        s = c.short_summary
        work = s.get("steady_work_requests")
        if not (work and work > 0):
            return s["carbon_gco2_per_request"] + c.unused_gco2_per_request
        return s["steady_carbon_gco2_per_request"] + _unused_gco2_per_request(
            ctx, c, s["steady_window_s"], work, s["intensity_mean_gco2_per_kwh"]
        )

    try:
        if not prune:
            for c in alive:
                run_full(c)
        else:
            survivors = [c for c in alive if not c.reason]
            survivors.sort(key=lambda c: (c.predicted_carbon_g_per_request, c.name))
            margin = spec.search.prune_margin
            bar_pred = math.inf
            skipped: List[Candidate] = []
            for c in survivors:
                if c.predicted_carbon_g_per_request > (1 + margin) * bar_pred:
                    skipped.append(c)
                    continue
                run_short(c)
                if short_ok(c):
                    bar_pred = min(bar_pred, c.predicted_carbon_g_per_request)
            for c in skipped:
                c.reason = (
                    f"theory: predicted carbon more than {margin:.0%} above a candidate that met "
                    f"the target in its short simulation"
                )
            if confirm:
                found = _confirm(
                    alive,
                    run_full,
                    short_promising,
                    full_ok,
                    short_carbon,
                    spec.search.top_k,
                    spec.search.confirm_margin,
                )
                if not found and skipped:  # the bar's candidates failed: reopen the skipped ones
                    for c in skipped:
                        c.reason = ""
                        run_short(c)
                    found = _confirm(
                        alive,
                        run_full,
                        short_promising,
                        full_ok,
                        short_carbon,
                        spec.search.top_k,
                        spec.search.confirm_margin,
                    )
                if not found:  # nothing confirmed: the most promising by attainment
                    for c in sorted(
                        [c for c in alive if c.short_summary is not None and c.summary is None],
                        key=lambda c: (-c.short_decision_attainment_frac, short_carbon(c)),
                    ):
                        run_full(c)
                        if full_ok(c):
                            break
                if not found and not any(full_ok(c) for c in alive):
                    # nothing meets the target: the answer is the highest attainment over the whole search
                    # space, so the theory-pruned candidates are simulated too (short, then full for every
                    # one whose short attainment is within short_slack of the best full attainment)
                    for c in alive:
                        if c.short_summary is None and c.summary is None:
                            c.reason = f"simulated as nothing met the target (was {c.reason or 'not screened'})"
                            run_short(c)
                    for c in sorted(
                        [c for c in alive if c.short_summary is not None and c.summary is None],
                        key=lambda c: (-c.short_decision_attainment_frac, c.name),
                    ):
                        top = max(
                            (x.full_decision_attainment_frac for x in alive if x.summary is not None),
                            default=-math.inf,
                        )
                        if c.short_decision_attainment_frac >= top - spec.search.short_slack:
                            run_full(c)
                # the new-GPU colocated baseline, confirmed the same way
                if not any(full_ok(c) for c in alive if c.mode == "colocated"):
                    for c in skipped:
                        if c.mode == "colocated" and c.short_summary is None:
                            c.reason = ""
                            run_short(c)
                    _confirm(
                        [c for c in alive if c.mode == "colocated"],
                        run_full,
                        short_promising,
                        full_ok,
                        short_carbon,
                        spec.search.top_k,
                        spec.search.confirm_margin,
                    )
    finally:
        if bar is not None:
            bar.close()

    def pool(cs):
        if prune and confirm:
            return [c for c in cs if c.summary is not None]
        return [c for c in cs if c._metrics() is not None]

    done = pool(alive)
    feas = [c for c in done if c.decision_attainment_frac >= target]
    if feas:
        best = min(feas, key=lambda c: (c.carbon_g_per_request, c.name))
    elif done:
        best = max(done, key=lambda c: (c.decision_attainment_frac, -c.carbon_g_per_request))
    else:
        best = None
    base_feas = [c for c in feas if c.mode == "colocated"]
    baseline = min(base_feas, key=lambda c: (c.carbon_g_per_request, c.name)) if base_feas else None
    stages = pd.Series([c.stage for c in cands]).value_counts().to_dict()
    n_band = _chosen_bands(spec, [c for c in (best, baseline) if c is not None], memo)
    stats = {
        "n_candidates": len(cands),
        "n_short_simulations": n_short,
        "n_full_simulations": n_full,
        "n_pessimistic_simulations": n_twin,
        "n_band_simulations": n_band,
        "n_engine_memo_hits": (memo.hits - hits0) if memo is not None else 0,
        "stages": stages,
        "prune": prune,
        "confirm": confirm,
        "confidence": spec.confidence,
        **planning,
    }
    if best is not None and best.bands_info is not None:
        stats["uncertainty"] = best.bands_info
    if best is not None and baseline is not None and best.bands and baseline.bands:
        stats["saving_frac_band"] = saving_band({"bands": best.bands}, {"bands": baseline.bands})
    return PlanResult(spec, cands, best, baseline, bool(feas), time.perf_counter() - t0, stats)


def _chosen_bands(spec: PlanSpec, chosen: List[Candidate], memo: Optional[EngineMemo] = None) -> int:
    """Uncertainty bands of the chosen candidates (winner, baseline) when the plan's
    ``performance.uncertainty`` is ``corners``: their most complete run (full, else short) is
    simulated at the two ``performance.band`` corners (a pessimistic twin from ``confidence:
    pessimistic`` is reused). Fills ``bands`` / ``bands_info``; returns the corner simulations run."""
    from greensim.assembly import simulate
    from greensim.assembly.uncertainty import add_bands

    n = 0

    def run_one(p, band):
        nonlocal n
        n += 1
        return simulate(p, memo=memo)

    for c in chosen:
        if c.bands_info is not None or c.experiment is None or c._metrics() is None:
            continue
        full = c.summary is not None
        exp = c.experiment if full else _shorten(c.experiment, spec.search.short_requests)
        twin = c.summary_pessimistic if full else c.short_summary_pessimistic
        s = dict(c._metrics())
        add_bands(s, exp, run_one=run_one, known={"pessimistic": twin} if twin is not None else None)
        c.bands, c.bands_info = s.get("bands"), s.get("uncertainty")
    return n


def _planning_intensity(spec: PlanSpec):
    """With ``carbon.forecast``: the plan with ``carbon.intensity`` replaced by a constant, the
    mean forecast over ``[plan_start_h, plan_start_h + plan_horizon_h)`` (history before the
    start only, unless ``carbon.forecast.oracle``); and what was used, for the stats."""
    fo = spec.carbon.forecast
    if fo is None:
        return spec, {}
    from greensim.carbon.forecast import ForecastView, make_forecaster
    from greensim.carbon.registry import INTENSITY_SOURCES
    from greensim.experiment.carbon import ConstantIntensity

    ic = spec.carbon.intensity
    src = INTENSITY_SOURCES.get(ic.kind, field="carbon.intensity.kind")(
        **{k: v for k, v in ic.model_dump().items() if k != "kind"}
    )
    horizon_h = spec.plan_horizon_h if spec.plan_horizon_h is not None else fo.horizon_h
    n = max(1, int(math.ceil(horizon_h * 3600.0 / src.series.step_s)))
    view = ForecastView(
        src, make_forecaster(fo.kind, **({"lag_h": fo.lag_h} if fo.kind == "seasonal_naive" else {})), oracle=fo.oracle
    )
    try:
        values = np.asarray(view.at(spec.plan_start_h * 3600.0, n), dtype=float)
    except ConfigError as exc:
        raise ConfigError(f"plan_start_h / carbon.forecast: {exc}") from None
    mean = float(values.mean())
    carbon = spec.carbon.model_copy(
        update={"intensity": ConstantIntensity(kind="constant", gco2_per_kwh=mean), "forecast": None}
    )
    info = {
        "planning_intensity_gco2_per_kwh": mean,
        "planning_forecast": fo.kind + (" (oracle)" if fo.oracle else ""),
        "plan_start_h": spec.plan_start_h,
        "plan_horizon_h": horizon_h,
    }
    return spec.model_copy(update={"carbon": carbon}), info


def _confirm(cands, run_full, short_ok, full_ok, short_carbon, top_k: int, margin: float) -> bool:
    """Full-simulate short-promising candidates, lowest short score first, top_k at a time,
    until one is confirmed feasible; then also those whose short score is within ``margin``
    of the lowest short score among the confirmed ones (short runs rank close candidates
    imperfectly). True if one is confirmed."""
    queue = sorted([c for c in cands if short_ok(c)], key=lambda c: (short_carbon(c), c.name))
    while queue:
        batch, queue = queue[:top_k], queue[top_k:]
        for c in batch:
            if c.summary is None:
                run_full(c)
        if any(full_ok(c) for c in cands):
            break
    ok = [c for c in cands if full_ok(c) and c.short_summary is not None]
    if ok:
        bar = (1 + margin) * min(short_carbon(c) for c in ok)
        for c in queue:
            if c.summary is None and short_carbon(c) <= bar:
                run_full(c)
    return any(full_ok(c) for c in cands)


def _old_model(ctx: _Context, c: Candidate):
    """The model as the candidate's old GPUs serve it (its search.quantizations preset applied)."""
    q = QUANT_PRESETS[c.quantization]
    return ctx.model if q is None else ctx.model.quantized(**q)


def _check_fits(ctx: _Context, c: Candidate) -> None:
    """Raise if the model (and draft) do not fit the candidate's GPUs (same check as greensim.assembly.prepare)."""
    from greensim.core.memory import kv_capacity_blocks

    spec, m = ctx.spec, ctx.model
    nw = _item(spec, c.new_gpu, "new")
    g_new = ctx.cat.gpu(nw.gpu, "gpu")
    g_new.require_power(f"inventory ({nw.gpu})")
    w, kv = m.weight_bytes, m.kv_bytes_per_token
    if c.mode == "spec":
        w, kv = w + ctx.draft.weight_bytes, kv + ctx.draft.kv_bytes_per_token
    kv_capacity_blocks(g_new.memory_bytes, nw.tp, w, kv, 16, 0.1, where=f"{c.mode} on {nw.tp}x{nw.gpu}")
    if c.old_gpu is not None:
        od = _item(spec, c.old_gpu, "old")
        g_old = ctx.cat.gpu(od.gpu, "gpu")
        g_old.require_power(f"inventory ({od.gpu})")
        if c.mode in ("dpd", "pool", "class_split"):
            mo = _old_model(ctx, c)
            if mo.compute_dtype != "fp16" and g_old.peak_ops(mo.compute_dtype) is None:
                raise ConfigError(
                    f"search.quantizations: {c.quantization} needs {mo.compute_dtype} tensor cores, which {od.gpu} lacks"
                )
            kv_capacity_blocks(
                g_old.memory_bytes,
                od.tp,
                mo.weight_bytes,
                mo.kv_bytes_per_token,
                16,
                0.1,
                where=f"{'decode' if c.mode == 'dpd' else 'serving'} on {od.tp}x{od.gpu}",
            )
        else:
            kv_capacity_blocks(
                g_old.memory_bytes,
                1,
                ctx.draft.weight_bytes,
                ctx.draft.kv_bytes_per_token,
                16,
                0.1,
                where=f"draft on {od.gpu}",
            )
