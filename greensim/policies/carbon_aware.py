"""Carbon-aware routing across sites (regions): the lowest-carbon site that keeps the TTFT SLO.

For each arriving request and each site (instances grouped by ``cfg.site``), the router
estimates, from the site's least-loaded instance (fewest waiting + running requests):

* **carbon per request** [gCO2e] = E x CI x PUE / 3.6e6, where CI is the site's intensity
  signal for the current hour [gCO2e/kWh] (its carbon.forecast view when there is one:
  ``ForecastView.at(now, 1)``, which never reads the current hour's actual; otherwise the
  intensity in force, as real-time grid data gives) and E [J] the busy energy above idle
  of the request served alone on that instance's bound performance model: the prefill of
  its prompt ``(P(n_in, 0) - P_idle) x t_prefill(n_in)`` plus ``n_out`` decode iterations of
  a batch of one, ``(P(0, 1) - P_idle) x t_decode(1, n_in + n_out/2)``. ``n_out`` is the
  ``output_tokens`` option, by default the workload's mean output length (standing for an
  operator's historical mean: a router does not know a request's output length). E is a
  per-GPU-type scale, not the marginal energy in a batch: the marginal energy falls with
  the batch a request joins (10x and more from batch 1 to 30), and a greedy router pricing
  it would herd requests onto whichever site is busiest rather than the cleanest. Between
  sites of one GPU type the ranking is thus CI x PUE. Idle power and embodied carbon are
  left out: provisioned GPUs draw and amortise them whichever site serves the request.
* **predicted TTFT** [s] = rtt_s + the iteration in progress (a decode iteration of the
  running batch, when there is one) + (n_waiting + 1) prefills of this prompt (waiting
  requests ahead, each assumed as long as this one; vLLM schedules prefills first). It
  ignores KV-memory stalls, so it is optimistic under memory pressure.
* **predicted TPOT** [s] = one decode iteration of a batch of ``b = n_running + 1`` plus the
  prefills that interleave with decoding: by Little's law requests join at rate
  ``b / (n_out x TPOT)``, each stalling the batch for one prefill, so
  ``TPOT = t_decode(b) + b x t_prefill(n_in) / n_out`` (this prompt standing for the
  typical one). Network delay does not change TPOT: first and last token are delayed alike.

It sends the request to the site with the lowest carbon among those whose predicted TTFT
is within ``ttft_budget_frac`` x the request's TTFT SLO and whose predicted TPOT is within
its TPOT SLO; when none is, to the site with the lowest predicted TTFT. Ties: lower
carbon, then lower predicted TTFT (so equal sites share the load), then the site name. Within the site, the ``inner`` router
(default join_shortest_queue) picks the instance. A site whose rtt_s alone exceeds the
budget is therefore never chosen while another site is predicted within it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from greensim.base.errors import ConfigError
from greensim.base.units import J_PER_KWH
from greensim.core.interfaces import InstanceView, RouterContext
from greensim.policies.registry import ROUTERS

__all__ = ["CarbonAware"]

_NEEDED = {
    "sites": "per-site intensity, forecast, PUE and rtt_s (carbon.sites)",
    "instance_perf": "the bound performance model of each instance",
    "ttft_slo_s": "the TTFT SLO of each request (slo.ttft_s)",
    "tpot_slo_s": "the TPOT SLO of each request (slo.tpot_s)",
    "mean_output_tokens": "the mean output length",
}


@ROUTERS.register("carbon_aware")
class CarbonAware:
    """Lowest forecast carbon per request among sites predicted within the TTFT and TPOT SLOs.

    Parameters
    ----------
    inner : router name choosing the instance within the chosen site.
    ttft_budget_frac : predicted TTFT must be <= this x the request's TTFT SLO [-].
    output_tokens : output length assumed in the energy estimate [tokens]; default: the
        workload's mean (``mean_output_tokens`` in the router extras).
    rng : random stream for an inner router that draws (greensim.assembly passes it).
    """

    def __init__(
        self,
        inner: str = "join_shortest_queue",
        ttft_budget_frac: float = 1.0,
        output_tokens: Optional[float] = None,
        rng: Optional[np.random.Generator] = None,
    ):
        if inner == "carbon_aware":
            raise ConfigError(
                "cluster.router_options.inner: carbon_aware cannot be its own inner router; "
                "use join_shortest_queue, round_robin, least_kv or power_of_two."
            )
        self._inner_factory = ROUTERS.get(inner, field="cluster.router_options.inner")
        if not (ttft_budget_frac > 0):
            raise ConfigError(
                f"cluster.router_options.ttft_budget_frac: {ttft_budget_frac!r} must be > 0 (1 = the TTFT SLO itself)."
            )
        if output_tokens is not None and not (output_tokens >= 1):
            raise ConfigError(f"cluster.router_options.output_tokens: {output_tokens!r} must be >= 1 [tokens].")
        self.frac = float(ttft_budget_frac)
        self.n_out = output_tokens
        self.rng = rng
        self._inner: Dict[str, Any] = {}
        self._groups: Optional[tuple] = None  # (id of the instance list, {site: [indices]})
        self._ci_cache: Dict[str, tuple] = {}  # site -> (hour index, forecast value)
        self._energy: Dict[tuple, float] = {}  # (performance model, prompt tokens) -> energy estimate [J]
        self.ctx: Optional[RouterContext] = None

    # ---------------------------------------------------------------- checks
    @staticmethod
    def check_experiment(exp, sites) -> None:
        """Static checks (greensim.assembly.prepare calls this): two or more sites, each with rtt_s."""
        used = []
        for i, g in enumerate(exp.cluster.instances):
            if g.site is None:
                raise ConfigError(
                    f"cluster.instances.{i}.site: router carbon_aware routes across sites; every "
                    f"instance group needs site: NAME (a carbon.sites entry with pue and rtt_s)."
                )
            if exp.carbon.sites[g.site].rtt_s is None:
                raise ConfigError(
                    f"carbon.sites.{g.site}.rtt_s: router carbon_aware needs the network round trip "
                    f"of every site it routes to (it predicts TTFT with it). Add rtt_s [s]."
                )
            used.append(g.site)
        if len(set(used)) < 2:
            raise ConfigError(
                f"cluster.router: carbon_aware chooses among sites, but every instance group is at "
                f"site '{used[0]}'. Put groups at two or more carbon.sites, or use "
                f"join_shortest_queue."
            )

    def bind(self, ctx: RouterContext) -> None:
        missing = [k for k in _NEEDED if ctx.extras.get(k) is None]
        if missing:
            raise ConfigError(
                "cluster.router: carbon_aware needs "
                + "; ".join(f"'{k}' ({_NEEDED[k]})" for k in missing)
                + " in the router extras. Build the simulation with "
                "greensim.assembly.prepare.router_extras(prepare(experiment)), which fills them from the "
                "experiment's slo and carbon.sites."
            )
        self.ctx = ctx
        self.sites = ctx.extras["sites"]
        self.perf = ctx.extras["instance_perf"]
        self.slo = ctx.extras["ttft_slo_s"]
        self.tpot_slo = ctx.extras["tpot_slo_s"]
        if self.n_out is None:
            self.n_out = float(ctx.extras["mean_output_tokens"])

    # ---------------------------------------------------------------- estimates
    def _groups_of(self, instances: Sequence[InstanceView]) -> Dict[str, List[int]]:
        # identity, not id(): a list freed on the failure path could hand its id to another
        if self._groups is None or self._groups[0] is not instances:
            g: Dict[str, List[int]] = {}
            for j, inst in enumerate(instances):
                g.setdefault(inst.cfg.site, []).append(j)
            for s in g:
                if s not in self.sites or self.sites[s].rtt_s is None:
                    raise ConfigError(
                        f"carbon.sites.{s}.rtt_s: router carbon_aware needs the round trip of "
                        f"site '{s}'. Add rtt_s [s]."
                    )
            self._groups = (instances, dict(sorted(g.items())))
        return self._groups[1]

    def intensity_now(self, site: str, now: float) -> float:
        """The site's intensity signal for the current hour [gCO2e/kWh] (forecast if any)."""
        info = self.sites[site]
        fc = info.forecast
        if fc is None:
            return float(info.intensity.at(now))
        step = fc.source.series.step_s
        i = int(np.floor(fc.source._offset + now / step))
        hit = self._ci_cache.get(site)
        if hit is None or hit[0] != i:
            hit = (i, float(fc.at(now, 1)[0]))
            self._ci_cache[site] = hit
        return hit[1]

    def energy_j(self, perf, n_in: int) -> float:
        """Busy energy above idle of one request served alone [J] (see the module docstring)."""
        idle = perf.idle_power_w
        t_pre = perf.iteration_time_s(((n_in, 0),), 0, 0)
        t_dec = perf.iteration_time_s((), 1, int(n_in + self.n_out / 2))
        return max(perf.power_w(n_in, 0) - idle, 0.0) * t_pre + self.n_out * max(perf.power_w(0, 1) - idle, 0.0) * t_dec

    def tpot_s(self, perf, n_in: int, n_running: int) -> float:
        """Predicted time per output token at an instance [s] (see the module docstring)."""
        b = n_running + 1
        return (
            perf.iteration_time_s((), b, int(b * (n_in + self.n_out / 2)))
            + b * perf.iteration_time_s(((n_in, 0),), 0, 0) / self.n_out
        )

    def ttft_s(self, perf, rtt_s: float, n_in: int, n_waiting: int, n_running: int) -> float:
        """Predicted TTFT at an instance [s] (see the module docstring)."""
        t = rtt_s + (n_waiting + 1) * perf.iteration_time_s(((n_in, 0),), 0, 0)
        if n_running:
            t += perf.iteration_time_s((), n_running, int(n_running * (n_in + self.n_out / 2)))
        return t

    def estimates(self, n_in: int, instances: Sequence[InstanceView]) -> Dict[str, tuple]:
        """Per site: (carbon per request [gCO2e], predicted TTFT [s], predicted TPOT [s]) at its
        least-loaded instance."""
        now = self.ctx.now_s()
        out = {}
        for site, idx in self._groups_of(instances).items():
            j = min(idx, key=lambda j: (instances[j].n_waiting + instances[j].n_running, j))
            inst = instances[j]
            perf = self.perf[inst.index]
            key = (id(perf), n_in)
            e = self._energy.get(key)
            if e is None:
                e = self._energy[key] = self.energy_j(perf, n_in)
            info = self.sites[site]
            g = e / J_PER_KWH * self.intensity_now(site, now) * info.pue
            out[site] = (
                g,
                self.ttft_s(perf, info.rtt_s, n_in, inst.n_waiting, inst.n_running),
                self.tpot_s(perf, n_in, inst.n_running),
            )
        return out

    # ---------------------------------------------------------------- routing
    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        est = self.estimates(n_input_tokens, instances)
        budget = self.frac * float(self.slo[request_id])
        tpot = float(self.tpot_slo[request_id])
        ok = [(g, t, s) for s, (g, t, d) in est.items() if t <= budget and d <= tpot]
        if ok:
            site = min(ok)[2]
        else:
            site = min((t, g, s) for s, (g, t, _) in est.items())[2]
        idx = self._groups_of(instances)[site]
        inner = self._inner.get(site)
        if inner is None:
            inner = self._inner[site] = _with_rng(
                self._inner_factory, self.rng if self.rng is not None else np.random.default_rng(0)
            )
        return idx[inner.choose(request_id, n_input_tokens, [instances[j] for j in idx])]


def _with_rng(factory, rng):
    import inspect

    try:
        takes = "rng" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = False
    return factory(rng=rng) if takes else factory()
