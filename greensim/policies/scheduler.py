"""SLO-aware carbon scheduler, per request (GreenLLM section 7; ``router: greenllm``).

Each arriving request falls in a *class* (input-length bucket and/or the trace's
``slo_class``); the current *plan* assigns every class a *mode* (a set of instance groups
serving one way: colocated, DPD prefill->decode, DSD target+draft, colocated speculative);
the request goes to the mode's instances, balanced by an inner router
(join-shortest-queue, least KV use, power of two choices, round robin).

Every ``replan_interval_s`` the plan is re-made from the arrival rate and mean lengths per
class seen over the last ``window_s`` and the grid intensity (the carbon forecast of the
hour in progress with ``carbon.forecast``, else the current value): for every assignment
of classes to modes, each mode's carbon rate and latencies are **predicted from the closed
forms of** :mod:`greensim.carbon.theory` with the groups' bound performance models, and the
lowest-carbon plan whose modes are all predicted feasible is chosen (none feasible: the
plan closest to feasible). Why the theory and not an online estimate of each mode's energy
per token: a mode without traffic has no measurement, yet deciding when to send traffic
there is the point; the closed forms match the simulator within 1 % on carbon per request
at steady load (``tests/unit/test_theory.py``).

Predicted latencies (means, a crude approximation to a percentile-based attainment):
TTFT = prefill + half an iteration in progress + an M/D/1 wait behind other prefills
(prefills are prioritised over decode iterations); TPOT = decode iteration at
the theory's mean batch, stretched by the prefill share of the GPU (colocated), or one
speculative loop / expected tokens per loop (DSD, spec). KV and draft-token transfer times
are not included. A mode is feasible if every class it serves has predicted TTFT and TPOT
within ``slo_headroom_frac`` of its SLO and every GPU role is busy less than
``max_utilization_frac``.

Objective ``cluster``: the carbon rate of every provisioned instance (what the simulator
charges: idle power and embodied carbon of modes without traffic included). In a cluster
whose instances are all provisioned, idle and embodied carbon are sunk, so the choice
depends only on busy energy and is the same at every intensity (intensity scales all
modes alike); it changes with the rate (batching) and SLO feasibility. Objective
``attributed`` charges only modes with traffic, each its GPUs' whole carbon over their
utilisation (as per-mode profiles do, GPUs without traffic being released to other
work): then the embodied/operational trade-off, hence the break-even intensity of
:func:`greensim.carbon.theory.break_even_intensity`, decides.

Hysteresis: the plan changes only if the predicted saving exceeds ``hysteresis_frac`` of
the current plan's carbon (or the current plan is predicted infeasible), and only once the
current plan has held ``min_dwell_s``. Switching cost: a mode that gets traffic again
after having none warms up for ``switch_s`` (role switch / model load), during which its
classes stay on the modes that served them before.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from greensim.base.errors import ConfigError
from greensim.base.lazy import lazy_module
from greensim.base.units import J_PER_KWH
from greensim.carbon import theory
from greensim.carbon.embodied import embodied_charge_gco2
from greensim.policies.registry import ROUTERS

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = ["Role", "ModeModel", "Prediction", "build_modes", "predict", "Planner", "GreenLLM"]

_LABEL = {"colocated": "colocated", "prefill": "dpd", "dsd": "dsd", "spec": "spec"}
MAX_PLANS = 4096


@dataclass(frozen=True)
class Role:
    """One GPU role of a mode: ``n`` identical instances."""

    name: str
    perf: Any
    n: int
    tp: int  # GPUs per instance (tp x pp)
    idle_w: float  # idle power of one instance [W]
    emb_gps: float  # embodied carbon charged per instance [gCO2e/s]
    pue: float


@dataclass(frozen=True)
class ModeModel:
    """A mode as the planner sees it: kind, instance groups, GPU roles and speculative knobs."""

    name: str
    kind: str  # colocated | dpd | dsd | spec
    groups: Tuple[int, ...]  # router-visible groups (DPD: the prefill groups)
    roles: Tuple[Role, ...]  # colocated/spec: (gpu,); dpd: (prefill, decode); dsd: (target, draft)
    draft_perf: Any = None
    gamma: int = 0
    alpha: float = 0.0


@dataclass(frozen=True)
class Prediction:
    """Predicted steady state of a mode at an arrival rate."""

    carbon_gps: float  # carbon rate of the mode's GPUs [gCO2e/s]
    ttft_s: float
    tpot_s: float
    util: float  # busiest role's busy fraction [-]
    stable: bool


def _emb_rate(spec) -> float:
    """Embodied carbon charged per second of one instance at t = 0 [gCO2e/s]."""
    return embodied_charge_gco2(
        spec.embodied_kgco2e + spec.host_kgco2e_per_gpu,
        spec.n_gpus,
        1.0,
        spec.lifetime_years,
        spec.scheme,
        spec.age_years,
        spec.extended_years,
        where=f"carbon ({spec.gpu})",
    )


def _role(name: str, gis, perf, spec, pue_default: float, n: Optional[int] = None) -> Role:
    return Role(
        name,
        perf,
        n if n is not None else sum(g.config.count for g in gis),
        spec.n_gpus,
        float(perf.idle_power_w),
        _emb_rate(spec),
        spec.pue if spec.pue is not None else pue_default,
    )


def _same(gis, what: str, key, mode: str, where: str) -> None:
    vals = sorted({str(key(g)) for g in gis})
    if len(vals) > 1:
        raise ConfigError(
            f"{where}: mode '{mode}' has {what} {', '.join(vals)} in groups "
            f"{[g.index for g in gis]}; the planner predicts one GPU type per role. Give each its "
            f"own mode in cluster.scheduler.modes."
        )


def build_modes(
    groups: Sequence[Any],
    pue: float,
    modes: Optional[Dict[str, List[int]]] = None,
    where: str = "cluster.scheduler.modes",
) -> Dict[str, ModeModel]:
    """Modes from the instance groups of a prepared experiment (:class:`greensim.assembly.prepare.GroupInfo`).

    Parameters
    ----------
    groups : the experiment's instance groups.
    pue : carbon.pue (groups without a site).
    modes : mode name -> group indices; default one mode per serving mode (colocated, dpd, dsd, spec).
    """
    visible = [g for g in groups if g.mode != "decode"]
    decode = [g for g in groups if g.mode == "decode"]
    if modes is None:
        modes = {}
        for g in visible:
            modes.setdefault(_LABEL[g.mode], []).append(g.index)
    seen: Dict[int, str] = {}
    for name, idx in modes.items():
        if not idx:
            raise ConfigError(f"{where}.{name}: empty list of instance groups. List indices of cluster.instances.")
        for i in idx:
            if not (isinstance(i, int) and 0 <= i < len(groups)):
                raise ConfigError(f"{where}.{name}: {i!r} is not an index of cluster.instances (0..{len(groups) - 1}).")
            if groups[i].mode == "decode":
                raise ConfigError(
                    f"{where}.{name}: group {i} has role decode; decode groups are reached through "
                    f"the prefill groups and join the mode holding them. List only the prefill group(s)."
                )
            if i in seen:
                raise ConfigError(
                    f"{where}: group {i} is in modes '{seen[i]}' and '{name}'; each group belongs to one mode."
                )
            seen[i] = name
    missing = [g.index for g in visible if g.index not in seen]
    if missing:
        raise ConfigError(f"{where}: instance group(s) {missing} are in no mode. Add them to a mode (or drop them).")
    out: Dict[str, ModeModel] = {}
    for name, idx in modes.items():
        gis = [groups[i] for i in idx]
        labels = sorted({_LABEL[g.mode] for g in gis})
        if len(labels) > 1:
            raise ConfigError(f"{where}.{name}: mixes serving modes {labels}; a mode serves one way. Split it.")
        kind = labels[0]
        _same(gis, "GPUs", lambda g: (g.gpu, g.config.tp, g.config.pp), name, where)
        g0 = gis[0]
        if kind == "colocated":
            out[name] = ModeModel(name, kind, tuple(idx), (_role("gpu", gis, g0.perf, g0.carbon, pue),))
        elif kind == "dpd":
            if len(visible) and any(g.mode == "prefill" and g.index not in idx for g in visible):
                raise ConfigError(
                    f"{where}.{name}: every prefill group must be in one mode (they share the decode pool)."
                )
            _same(decode, "decode GPUs", lambda g: (g.gpu, g.config.tp, g.config.pp), name, where)
            d0 = decode[0]
            out[name] = ModeModel(
                name,
                kind,
                tuple(idx),
                (_role("prefill", gis, g0.perf, g0.carbon, pue), _role("decode", decode, d0.perf, d0.carbon, pue)),
            )
        else:
            sp = g0.config.speculative
            _same(
                gis,
                "speculative settings",
                lambda g: (
                    g.config.speculative.draft_model,
                    g.config.speculative.draft_gpu,
                    g.config.speculative.gamma,
                    g.config.speculative.alpha_value,
                ),
                name,
                where,
            )
            if sp.alpha_value is None:
                raise ConfigError(
                    f"cluster.instances.{g0.index}.speculative: the planner's closed form needs a "
                    f"scalar alpha, not alpha_by_position. Set alpha for a scheduled mode."
                )
            roles = [_role("target", gis, g0.perf, g0.carbon, pue)]
            if kind == "dsd":
                roles.append(_role("draft", gis, g0.part["draft_perf"], g0.draft_carbon, pue))
            out[name] = ModeModel(
                name,
                kind,
                tuple(idx),
                tuple(roles),
                draft_perf=g0.part["draft_perf"],
                gamma=sp.gamma,
                alpha=sp.alpha_value,
            )
    return out


def _busy(mode: ModeModel, rate: float, n_in: int, n_out: int):
    """Per-request busy (s, J) per role, utilisations, TTFT and TPOT [s] from the theory."""
    ctx = n_in + n_out / 2.0
    r0 = mode.roles[0]
    p0 = r0.perf
    lam = rate / r0.n
    t_pre = p0.iteration_time_s([(n_in, 0)], 0, 0)
    if mode.kind == "colocated":
        m = theory.colocated(p0, n_in, n_out, lam, r0.tp, 0.0, 1.0)
        b = theory.decode_batch(p0, lam, n_out - 1, ctx, t_pre, lambda x: theory._decode_time(p0, x, ctx))
        tpot = theory._decode_time(p0, b, ctx) / max(1e-9, 1.0 - lam * t_pre)
        uses = m.uses
        ttft = _ttft(t_pre, lam, theory._decode_time(p0, b, ctx))
    elif mode.kind == "dpd":
        rd = mode.roles[1]
        m = theory.dpd(p0, rd.perf, n_in, n_out, lam, rate / rd.n, (r0.tp, 0.0, 1.0), (rd.tp, 0.0, 1.0))
        b = theory.decode_batch(
            rd.perf, rate / rd.n, n_out - 1, ctx, 0.0, lambda x: theory._decode_time(rd.perf, x, ctx)
        )
        tpot = theory._decode_time(rd.perf, b, ctx)
        uses = m.uses
        ttft = _ttft(t_pre, lam, 0.0)
    else:
        dp = mode.draft_perf
        m = theory.dsd(p0, dp, n_in, n_out, lam, (r0.tp, 0.0, 1.0), (1, 0.0, 1.0), mode.gamma, mode.alpha)
        per_iter = (1 - mode.alpha ** (mode.gamma + 1)) / (1 - mode.alpha)
        t_pre_d = dp.iteration_time_s([(n_in, 0)], 0, 0)

        def loop(x):
            bi = max(1, int(round(x)))
            return mode.gamma * theory._decode_time(dp, x, ctx) + p0.iteration_time_s(
                [(mode.gamma + 1, int(ctx))] * bi, 0, 0
            )

        pre = max(t_pre, t_pre_d) if mode.kind == "dsd" else t_pre + t_pre_d
        b = theory.decode_batch(None, lam, (n_out - 1) / per_iter, ctx, pre, loop)
        tpot = loop(b) / per_iter
        if mode.kind == "spec":  # draft and target share the GPU: one role, sums of both
            u_new, u_old = m.uses
            uses = (
                theory.RoleUse(
                    "target",
                    u_new.busy_s + u_old.busy_s,
                    u_new.busy_j + u_old.busy_j,
                    u_new.utilization_frac + u_old.utilization_frac,
                    r0.idle_w,
                    r0.tp,
                    0.0,
                    1.0,
                ),
            )
            if uses[0].utilization_frac > 1:
                raise ConfigError(f"mode '{mode.name}': draft and target together saturate the GPU")
        else:
            uses = m.uses
        ttft = _ttft(pre, lam, loop(b))
    return uses, ttft, tpot


def _ttft(t_pre: float, lam: float, t_iter: float) -> float:
    """Mean TTFT [s]: prefills are prioritised over decode, so a request waits for the iteration
    in progress (half of ``t_iter`` on average) and for the prefills queued before it (an M/D/1
    queue of prefills at load lam x t_pre: Pollaczek-Khinchine wait rho t_pre / (2 (1 - rho)))."""
    rho = lam * t_pre
    if rho >= 1:
        return math.inf
    return t_pre + 0.5 * t_iter + rho * t_pre / (2 * (1 - rho))


def predict(mode: ModeModel, rate_rps: float, n_in: float, n_out: float, intensity: float) -> Prediction:
    """Predicted carbon rate and latencies of ``mode`` at ``rate_rps`` with mean lengths.

    carbon = sum over roles of CI x PUE x (rate x busy_j + (n - rate x busy_s) x P_idle) / 3.6e6
    + n x embodied rate (the simulator's accounting; :mod:`greensim.carbon.theory`).
    """
    idle = sum(r.n * (intensity * r.pue * r.idle_w / J_PER_KWH + r.emb_gps) for r in mode.roles)
    if rate_rps <= 0:
        return Prediction(idle, 0.0, 0.0, 0.0, True)
    n_in_i, n_out_i = max(1, int(round(n_in))), max(2, int(round(n_out)))
    try:
        uses, ttft, tpot = _busy(mode, rate_rps, n_in_i, n_out_i)
    except ConfigError:  # the theory says the rate saturates a role
        return Prediction(math.inf, math.inf, math.inf, math.inf, False)
    c = 0.0
    for r, u in zip(mode.roles, uses):
        c += intensity * r.pue * (rate_rps * u.busy_j + (r.n - rate_rps * u.busy_s) * r.idle_w) / J_PER_KWH
        c += r.n * r.emb_gps
    util = max(u.utilization_frac for u in uses)
    return Prediction(c, ttft, tpot, util, True)  # the theory raises beyond saturation


@dataclass(frozen=True)
class ClassStats:
    """What the planner knows of one class: rate [req/s], mean lengths [tokens], SLO pair [s]."""

    rate_rps: float
    n_in: float
    n_out: float
    ttft_slo_s: float
    tpot_slo_s: float


@dataclass(frozen=True)
class PlanScore:
    assignment: Tuple[str, ...]  # mode per class
    carbon_gps: float  # objective [gCO2e/s]
    violation: float  # <= 1: feasible
    gco2_per_request: float

    @property
    def feasible(self) -> bool:
        return self.violation <= 1.0


class Planner:
    """Scores every assignment of classes to modes (see the module docstring)."""

    def __init__(
        self, modes: Dict[str, ModeModel], objective: str = "cluster", headroom: float = 1.0, max_util: float = 1.0
    ):
        self.modes = modes
        self.names = list(modes)
        self.objective, self.headroom, self.max_util = objective, headroom, max_util

    def _mode_cost(self, m: str, members: Tuple[int, ...], stats: Sequence[ClassStats], ci: float, memo):
        key = (m, members)
        if key in memo:
            return memo[key]
        rate = sum(stats[c].rate_rps for c in members)
        if rate > 0:
            n_in = sum(stats[c].rate_rps * stats[c].n_in for c in members) / rate
            n_out = sum(stats[c].rate_rps * stats[c].n_out for c in members) / rate
        else:
            n_in = n_out = 0.0
        p = predict(self.modes[m], rate, n_in, n_out, ci)
        viol = 0.0
        if rate > 0:
            if not p.stable:
                viol = math.inf
            else:
                viol = p.util / self.max_util
                for c in members:
                    if stats[c].rate_rps > 0:
                        viol = max(
                            viol,
                            p.ttft_s / (self.headroom * stats[c].ttft_slo_s),
                            p.tpot_s / (self.headroom * stats[c].tpot_slo_s),
                        )
        carbon = p.carbon_gps if (rate > 0 or self.objective == "cluster") else 0.0
        memo[key] = (carbon, viol)
        return memo[key]

    def score(self, assignment: Tuple[str, ...], stats: Sequence[ClassStats], ci: float, memo=None) -> PlanScore:
        memo = {} if memo is None else memo
        carbon, viol = 0.0, 0.0
        for m in self.names:
            members = tuple(i for i, a in enumerate(assignment) if a == m)
            c, v = self._mode_cost(m, members, stats, ci, memo)
            carbon += c
            viol = max(viol, v)
        rate = sum(s.rate_rps for s in stats)
        return PlanScore(assignment, carbon, viol, carbon / rate if rate > 0 else math.inf)

    def best(self, stats: Sequence[ClassStats], ci: float, current: Optional[Tuple[str, ...]] = None):
        """(best plan, current plan's score); ties go to the current plan, then to the order of modes."""
        memo: Dict = {}
        cur = self.score(current, stats, ci, memo) if current is not None else None
        best = cur
        for a in itertools.product(self.names, repeat=len(stats)):
            s = self.score(a, stats, ci, memo)
            if best is None or better(s, best):
                best = s
        return best, cur


def better(a: PlanScore, b: PlanScore) -> bool:
    if a.feasible != b.feasible:
        return a.feasible
    if not a.feasible:
        return a.violation < b.violation
    return a.carbon_gps < b.carbon_gps * (1 - 1e-12)


def decide(
    best: PlanScore, cur: Optional[PlanScore], now: float, since: float, hysteresis: float, min_dwell: float
) -> Tuple[bool, str]:
    """Whether to switch from ``cur`` to ``best`` (hysteresis and minimum dwell), and why."""
    if cur is None:
        return True, "initial"
    if best.assignment == cur.assignment:
        return False, "best"
    if cur.feasible:
        gain = (cur.carbon_gps - best.carbon_gps) / cur.carbon_gps if cur.carbon_gps > 0 else 0.0
        if not best.feasible or gain <= hysteresis:
            return False, f"gain {gain:.1%} <= hysteresis {hysteresis:.1%}"
        why = f"saves {gain:.1%}"
    else:
        why = "current plan predicted infeasible"
    if now - since < min_dwell:
        return False, f"{why}, but held {now - since:.0f} s < min_dwell_s {min_dwell:g}"
    return True, why


def classify_fn(classes, where: str = "cluster.scheduler.classes"):
    """A function (n_input_tokens, slo_class) -> class index (first match), raising on no match."""
    conds = [(c.max_input_tokens, c.slo_class) for c in classes]

    def f(n_in: int, slo: str) -> int:
        for i, (mx, sc) in enumerate(conds):
            if (mx is None or n_in <= mx) and (sc is None or sc == slo):
                return i
        raise ConfigError(
            f"{where}: a request with {n_in} input tokens and slo_class '{slo}' matches no class. "
            f"Add a catch-all class (no conditions) last."
        )

    return f


@ROUTERS.register("greenllm")
class GreenLLM:
    """Routes each request by class to the mode the current plan assigns (module docstring)."""

    def __init__(self, rng: Optional[np.random.Generator] = None) -> None:
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.ctx = None

    # ---------------------------------------------------------------- setup
    def bind(self, ctx) -> None:
        self.ctx = ctx
        ex = ctx.extras
        exp = ex.get("experiment")
        if exp is None or ex.get("groups") is None:
            raise ConfigError(
                "router greenllm needs the extras greensim.assembly passes routers (experiment, "
                "groups); run it through greensim.run."
            )
        sc = exp.cluster.scheduler
        self.cfg = sc
        self.modes = build_modes(ex["groups"], exp.carbon.pue, sc.modes)
        self.mode_names = list(self.modes)
        self.group_mode = {gi: m for m, mm in self.modes.items() for gi in mm.groups}
        names = [c.name for c in sc.classes]
        if len(set(names)) != len(names):
            raise ConfigError(f"cluster.scheduler.classes: duplicate class names {names}. Name each class once.")
        for i, c in enumerate(sc.classes):
            if c.slo_class not in (None, "") and c.slo_class not in exp.slo.classes:
                raise ConfigError(
                    f"cluster.scheduler.classes.{i}.slo_class: '{c.slo_class}' is not in slo.classes "
                    f"({sorted(exp.slo.classes) or 'none defined'}). Fix the name or define it."
                )
            if c.slo_class and exp.slo.classes[c.slo_class].deferrable:
                raise ConfigError(
                    f"cluster.scheduler.classes.{i}.slo_class: '{c.slo_class}' is deferrable (a deadline, no "
                    f"TTFT/TPOT pair); the greenllm scheduler plans TTFT/TPOT classes only. Use another router "
                    f"with defer.policy, or make the class interactive."
                )
        if len(self.modes) ** len(names) > MAX_PLANS:
            raise ConfigError(
                f"cluster.scheduler: {len(self.modes)} modes ^ {len(names)} classes = "
                f"{len(self.modes) ** len(names)} plans (> {MAX_PLANS}). Use fewer classes or modes."
            )
        self.class_names = names
        self.classify = classify_fn(sc.classes)
        self.class_slo = [
            (
                (exp.slo.classes[c.slo_class] if c.slo_class else exp.slo).ttft_s,
                (exp.slo.classes[c.slo_class] if c.slo_class else exp.slo).tpot_s,
            )
            for c in sc.classes
        ]
        self.planner = Planner(self.modes, sc.objective, sc.slo_headroom_frac, sc.max_utilization_frac)
        t = ex["table"]
        self._nout = np.asarray(t.n_output_tokens)
        self._slo_class = t.slo_class
        self._intensity, self._forecast = ex.get("intensity"), ex.get("forecast")
        self.inner = {}
        for m in self.mode_names:
            f = ROUTERS.get(sc.inner_router, field="cluster.scheduler.inner_router")
            try:
                self.inner[m] = f(rng=np.random.default_rng(int(self.rng.integers(2**63))))
            except TypeError:
                self.inner[m] = f()
        self.win = [deque() for _ in names]  # (arrival, n_in, n_out) per class
        self.plan: Optional[Tuple[str, ...]] = None
        self.serving: List[Optional[str]] = [None] * len(names)
        self.warm_until = {m: 0.0 for m in self.mode_names}
        self.since = 0.0
        self.next_replan = 0.0
        self.rows: List[dict] = []
        self.req_class: List[Tuple[int, int, str]] = []
        self._idx_of: Any = None  # instance list the mode indices refer to
        self._mode_idx: Dict[str, List[int]] = {}
        self.n_switches = 0

    # ---------------------------------------------------------------- planning
    def _intensity_now(self, now: float) -> float:
        if self._forecast is not None:
            return float(self._forecast.at(now, 1)[0])
        return float(np.asarray(self._intensity.at(np.asarray([now])))[0])

    def _stats(self, now: float) -> List[ClassStats]:
        out = []
        # the window, or the time elapsed (at least one replan interval: the first plan sees a low rate)
        span = min(self.cfg.window_s, max(now, self.cfg.replan_interval_s))
        for i, w in enumerate(self.win):
            while w and w[0][0] <= now - self.cfg.window_s:
                w.popleft()
            if w:
                a = np.asarray(w, dtype=float)
                out.append(
                    ClassStats(
                        len(w) / max(span, 1e-9), float(a[:, 1].mean()), float(a[:, 2].mean()), *self.class_slo[i]
                    )
                )
            else:
                out.append(ClassStats(0.0, 0.0, 0.0, *self.class_slo[i]))
        return out

    def _replan(self, now: float) -> None:
        stats = self._stats(now)
        ci = self._intensity_now(now)
        best, cur = self.planner.best(stats, ci, self.plan)
        switch, why = decide(best, cur, now, self.since, self.cfg.hysteresis_frac, self.cfg.min_dwell_s)
        if switch:
            self._adopt(best.assignment, now)
            if cur is not None:
                self.n_switches += 1
        inforce = best if switch else cur
        for i, c in enumerate(self.class_names):
            self.rows.append(
                {
                    "time_s": now,
                    "class": c,
                    "mode": inforce.assignment[i],
                    "best_mode": best.assignment[i],
                    "serving_mode": self.serving[i],
                    "rate_rps": stats[i].rate_rps,
                    "intensity_gco2_per_kwh": ci,
                    "predicted_gco2_per_request": inforce.gco2_per_request,
                    "best_gco2_per_request": best.gco2_per_request,
                    "predicted_feasible": inforce.feasible,
                    "switched": switch and cur is not None,
                    "reason": why,
                }
            )

    def _adopt(self, assignment: Tuple[str, ...], now: float) -> None:
        if self.plan is None:  # the deployed cluster: every mode is warm at the start
            self.serving = list(assignment)
        else:
            active = {m for m in self.serving} | {m for m, t in self.warm_until.items() if t > now}
            for m in set(assignment) - active:
                self.warm_until[m] = now + self.cfg.switch_s
        self.plan = assignment
        self.since = now

    # ---------------------------------------------------------------- routing
    def choose(self, request_id: int, n_input_tokens: int, instances) -> int:
        now = self.ctx.now_s()
        slo = "" if self._slo_class is None else str(self._slo_class[request_id])
        c = self.classify(int(n_input_tokens), slo)
        self.win[c].append((now, int(n_input_tokens), int(self._nout[request_id])))
        if now >= self.next_replan:
            self._replan(now)
            k = math.floor(now / self.cfg.replan_interval_s) + 1
            self.next_replan = k * self.cfg.replan_interval_s
        for i, m in enumerate(self.plan):
            if self.serving[i] != m and self.warm_until[m] <= now:
                self.serving[i] = m
        m = self.serving[c]
        if instances is not self._idx_of:  # the simulation passes one list per arrival path
            self._idx_of, self._mode_idx = instances, {}
        idx = self._mode_idx.get(m)
        if idx is None:
            idx = self._mode_idx[m] = [j for j, v in enumerate(instances) if self.group_mode.get(v.cfg.group) == m]
        if not idx:
            raise ConfigError(f"cluster.scheduler: mode '{m}' has no instance available to the router.")
        k = self.inner[m].choose(request_id, n_input_tokens, [instances[j] for j in idx])
        self.req_class.append((request_id, c, m))
        return idx[k]

    def report(self):
        """({"plans": plan history, "scheduler_requests": class and mode per request}, summary values)."""
        plans = pd.DataFrame(self.rows)
        reqs = pd.DataFrame(self.req_class, columns=["request_id", "class_index", "mode"])
        reqs["class"] = [self.class_names[i] for i in reqs["class_index"]]
        reqs = reqs.drop(columns="class_index")
        return (
            {"plans": plans, "scheduler_requests": reqs},
            {
                "n_plan_switches": int(self.n_switches),
                "n_replans": int(len(self.rows) // max(1, len(self.class_names))),
            },
        )
