"""GPU aging: age-dependent failures (Weibull hazard) and throughput/power degradation.

Age is a per-instance-group experiment parameter (``cluster.instances[i].age_years``).
Each effect is optional and off by default, because we found no cited values for
datacentre GPUs (``../shared/research/carbon.md``): the experiment must give them.

Failures: instance ``i`` of age ``a`` [years] has hazard ``h(a) = (k/lambda)(a/lambda)^(k-1)``
(Weibull shape ``k``, scale ``lambda``). Given survival to age ``a``, the time to the next
failure is drawn by inversion of the conditional survival function,

    T = lambda * ((a/lambda)^k - ln U)^(1/k) - a,   U ~ Uniform(0, 1).

A failed instance stays down for the repair time; its in-flight and queued requests are
preempted by recomputation and re-routed to the instances that are up (counted per
request as ``n_requeues``). After repair the hazard continues at the current age
("minimal repair", Barlow & Hunter 1960) or restarts at age 0 ("renewal", a replaced GPU).
A failed GPU is assumed to keep drawing idle power while down (its server stays powered).

Degradation: iteration times are divided by ``1 - r_t x age`` and power multiplied by
``1 + r_p x age`` (ages at the start of the run).

Randomness: one child stream per instance from ``SeedSequence(seed, spawn_key=(2,))``,
so enabling aging never shifts the arrival stream (child 0 of the root).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from greensim.base.errors import ConfigError
from greensim.base.units import S_PER_YEAR
from greensim.core.interfaces import BoundPerformance

__all__ = ["WeibullFailureModel", "DegradedPerformance", "degrade", "failure_model_for", "AGING_STREAM"]

#: spawn key of the aging RNG stream under the experiment seed (0: workload, 1: policies)
AGING_STREAM = 2


class WeibullFailureModel:
    """Failure/repair times of instances with a Weibull hazard in age (a core ``FailureModel``).

    Parameters
    ----------
    params : per instance, None (never fails) or a dict with ``shape_k`` [-], ``scale_years``
        [years], ``age_years`` [years] at t = 0, ``repair_s`` [s], ``repair_dist``
        ("constant" or "exponential") and ``repair_model`` ("minimal" or "renewal").
    seed : experiment seed.
    """

    def __init__(self, params: Sequence[Optional[dict]], seed: int):
        self.params = list(params)
        kids = np.random.SeedSequence(seed, spawn_key=(AGING_STREAM,)).spawn(len(self.params))
        self.rng = [np.random.default_rng(k) for k in kids]
        self._age0_s = [p["age_years"] * S_PER_YEAR if p else 0.0 for p in self.params]
        self._renewed_at = [None] * len(self.params)  # sim time of the last renewal

    def age_s(self, i: int, now_s: float) -> float:
        """Age of instance ``i``'s GPUs at simulated time ``now_s`` [s]."""
        if self._renewed_at[i] is not None:
            return now_s - self._renewed_at[i]
        return self._age0_s[i] + now_s

    def time_to_failure_s(self, i: int, now_s: float) -> Optional[float]:
        p = self.params[i]
        if p is None:
            return None
        k, lam = p["shape_k"], p["scale_years"] * S_PER_YEAR
        a = self.age_s(i, now_s)
        u = self.rng[i].random()
        # max(0, .): at an age far past lambda the difference cancels to a rounding error below 0
        return max(0.0, float(lam * ((a / lam) ** k - np.log1p(-u)) ** (1.0 / k) - a))

    def repair_time_s(self, i: int, now_s: float) -> float:
        p = self.params[i]
        if p["repair_dist"] == "exponential":
            return float(self.rng[i].exponential(p["repair_s"]))
        return float(p["repair_s"])

    def on_repaired(self, i: int, now_s: float) -> None:
        if self.params[i]["repair_model"] == "renewal":
            self._renewed_at[i] = now_s


class DegradedPerformance(BoundPerformance):
    """A bound performance model slowed by ``time_factor`` and drawing ``power_factor`` x power."""

    def __init__(self, inner: BoundPerformance, time_factor: float, power_factor: float):
        self.inner, self.tf, self.pf = inner, float(time_factor), float(power_factor)
        self.idle_power_w = inner.idle_power_w * self.pf
        self.decode_power_w = inner.decode_power_w * self.pf
        self.power_varies = inner.power_varies

    def iteration_time_s(self, chunks, n_decode, decode_ctx_tokens):
        return self.inner.iteration_time_s(chunks, n_decode, decode_ctx_tokens) * self.tf

    def power_w(self, n_prefill_tokens, n_decode):
        return self.inner.power_w(n_prefill_tokens, n_decode) * self.pf

    def decode_run_time_s(self, n, ctx0, k):
        return self.inner.decode_run_time_s(n, ctx0, k) * self.tf

    def iteration_power_w(self, chunks, n_decode, decode_ctx_tokens, time_s):
        return self.inner.iteration_power_w(chunks, n_decode, decode_ctx_tokens, time_s / self.tf) * self.pf

    def verify_power_w(self, p_tok, ctx_sum, n_seqs, time_s):
        return self.pf * self.inner.verify_power_w(p_tok, ctx_sum, n_seqs, time_s / self.tf)

    def decode_run_energy_j(self, n, ctx0, k):
        return self.inner.decode_run_energy_j(n, ctx0, k) * self.tf * self.pf

    def decode_iterations_until(self, n, ctx0, kmax, dt_s):
        return self.inner.decode_iterations_until(n, ctx0, kmax, dt_s / self.tf)

    def __getattr__(self, name):  # other attributes (names, specs) of the wrapped model
        return getattr(self.inner, name)


def degrade(bound: BoundPerformance, group, where: str) -> BoundPerformance:
    """Apply a group's degradation at its age; unchanged when aging is off."""
    ag = group.aging
    if ag is None or (ag.throughput_loss_frac_per_year == 0 and ag.power_increase_frac_per_year == 0):
        return bound
    keep = 1.0 - ag.throughput_loss_frac_per_year * group.age_years
    if not keep > 0:
        raise ConfigError(
            f"{where}.aging.throughput_loss_frac_per_year: {ag.throughput_loss_frac_per_year} per "
            f"year at age {group.age_years} years leaves no throughput (factor {keep:g}). "
            f"Lower the rate or the age."
        )
    return DegradedPerformance(bound, 1.0 / keep, 1.0 + ag.power_increase_frac_per_year * group.age_years)


def _params(aging, age_years: float) -> Optional[dict]:
    f = aging.failures if aging is not None else None
    if f is None:
        return None
    return {
        "shape_k": f.shape_k,
        "scale_years": f.scale_years,
        "age_years": age_years,
        "repair_s": f.repair_s,
        "repair_dist": f.repair_dist,
        "repair_model": f.repair_model,
    }


def failure_model_for(exp) -> Optional[WeibullFailureModel]:
    """The failure model of an experiment (None when no group has failures).

    Indices follow the simulation's instances: every serving instance, then the draft
    GPUs of split speculative pairs (``speculative.draft_aging``), in instance order."""
    params: List[Optional[dict]] = []
    drafts: List[Optional[dict]] = []
    for g in exp.cluster.instances:
        params.extend([_params(g.aging, g.age_years)] * g.count)
        sp = g.speculative
        if sp is not None and sp.draft_gpu is not None:
            drafts.extend([_params(sp.draft_aging, sp.draft_gpu_age_years)] * g.count)
    params += drafts
    if all(p is None for p in params):
        return None
    return WeibullFailureModel(params, exp.seed)
