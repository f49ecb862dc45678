"""Carbon-aware time shifting: hold deferrable requests until the cleanest forecast hour.

A *release policy* (:class:`greensim.core.interfaces.ReleasePolicy`) tells the engine when
an arriving request is handed to the router; the engine only holds it until then.
``defer.policy: carbon_aware`` (:class:`CarbonAwareDefer`) releases interactive requests at
once and, for a deferrable request (``slo.classes.<name>.deferrable``), arriving at ``t_a``
with deadline ``D`` (latest completion after arrival):

1. estimates its service time ``S``: the request served alone on the slowest instance,
   prefill ``t_prefill(n_in)`` plus ``n_out`` decode iterations of a batch of one at context
   ``n_in + n_out/2`` (``n_out``: the ``output_tokens`` option, default the workload's mean
   output length, standing for an operator's historical mean; a scheduler does not know a
   request's output length);
2. takes the latest start ``t_L = t_a + D - S - margin_s``; if ``t_L < t_a`` (no slack) the
   request is released at once (and probably misses its deadline);
3. reads the forecast (``carbon.forecast``: ``ForecastView.at(t_a, horizon_h)``, history
   only; with ``oracle: true`` the actual values) of the intervals (hours) from the one in
   progress up to the one containing ``t_L``, within the forecast horizon;
4. releases the request at the start of the interval with the lowest forecast intensity
   (ties: the earliest), or at once when that is the interval in progress.

Herding: every request deferred into the same hour would be released at the same instant.
``spread: uniform`` instead releases the ``m``-th request deferred into an interval at
``start + frac(m x 0.618...) x window`` (golden-ratio sequence: evenly spread, deterministic,
no random stream), ``window`` the part of the interval before ``t_L``.
``max_requests_per_hour`` caps the requests released into one interval: a full interval is
skipped for the next cleanest; when all feasible ones are full the request is released at once.

The policy reads the default site's forecast (carbon.intensity's); it does not choose a site.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np

from greensim.base.errors import ConfigError
from greensim.core.interfaces import RouterContext
from greensim.policies.registry import DEFER_POLICIES

__all__ = ["CarbonAwareDefer"]

#: golden-ratio conjugate (sqrt(5) - 1) / 2: the low-discrepancy step of ``spread: uniform``
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0

_NEEDED = {
    "forecast": "carbon.intensity's forecast view (carbon.forecast with a series intensity)",
    "forecast_horizon_h": "the forecast horizon (carbon.forecast.horizon_h)",
    "deadline_s": "each request's deadline after arrival, NaN for interactive requests",
    "instance_perf": "the bound performance model of each instance",
    "mean_output_tokens": "the mean output length",
}


@DEFER_POLICIES.register("carbon_aware")
class CarbonAwareDefer:
    """Release each deferrable request at the start of its cleanest feasible forecast hour.

    Parameters
    ----------
    margin_s : slack kept before the deadline besides the service estimate [s]. Default
        3600 s, one forecast interval (hourly series): our choice, not a published value; it
        covers queueing behind the other work released into the same hour.
    spread : ``start`` (release at the interval's start) or ``uniform`` (spread over it;
        see the module docstring).
    max_requests_per_hour : cap on requests released into one forecast interval; None (the
        default) = no cap.
    output_tokens : output length assumed in the service estimate [tokens]; default: the
        workload's mean (``mean_output_tokens`` in the extras).
    """

    def __init__(
        self,
        margin_s: float = 3600.0,
        spread: str = "start",
        max_requests_per_hour: Optional[int] = None,
        output_tokens: Optional[float] = None,
    ):
        if not (margin_s >= 0 and math.isfinite(margin_s)):
            raise ConfigError(f"defer.options.margin_s: {margin_s!r} must be a finite number >= 0 [s].")
        if spread not in ("start", "uniform"):
            raise ConfigError(f"defer.options.spread: {spread!r} is not one of start, uniform.")
        if max_requests_per_hour is not None and not (int(max_requests_per_hour) == max_requests_per_hour >= 1):
            raise ConfigError(
                f"defer.options.max_requests_per_hour: {max_requests_per_hour!r} must be a whole number >= 1 "
                f"(or null: no cap)."
            )
        if output_tokens is not None and not (output_tokens >= 1):
            raise ConfigError(f"defer.options.output_tokens: {output_tokens!r} must be >= 1 [tokens].")
        self.margin_s = float(margin_s)
        self.spread = spread
        self.cap = None if max_requests_per_hour is None else int(max_requests_per_hour)
        self.n_out = output_tokens
        self._fc: Tuple[float, np.ndarray] = (float("nan"), np.zeros(0))  # (interval start [s], forecast)
        self._service: Dict[int, float] = {}  # prompt tokens -> service estimate [s]
        self._count: Dict[int, int] = {}  # interval index (start / step) -> requests released into it

    @staticmethod
    def check_experiment(exp) -> None:
        """Static checks (greensim.assembly.prepare calls this): a series intensity and its forecast."""
        ic = exp.carbon.intensity
        if ic.kind != "series":
            raise ConfigError(
                f"carbon.intensity.kind: defer.policy carbon_aware reads the forecast of an hourly intensity "
                f"series, got kind '{ic.kind}'. Use kind series (region, start), or defer.policy none."
            )
        if exp.carbon.forecast is None:
            raise ConfigError(
                "carbon.forecast: defer.policy carbon_aware picks hours by forecast intensity. Add "
                "carbon.forecast, e.g. {kind: seasonal_naive} (history only) or {oracle: true} (perfect "
                "foresight, for comparison), or set defer.policy none."
            )

    def bind(self, ctx: RouterContext) -> None:
        missing = [k for k in _NEEDED if ctx.extras.get(k) is None]
        if missing:
            raise ConfigError(
                "defer.policy: carbon_aware needs "
                + "; ".join(f"'{k}' ({_NEEDED[k]})" for k in missing)
                + ". Set carbon.forecast (with a series carbon.intensity) and build the simulation through "
                "greensim.assembly (prepare + simulate), which fills them."
            )
        ex = ctx.extras
        self.forecast = ex["forecast"]
        self.horizon = int(ex["forecast_horizon_h"])
        self.deadline = np.asarray(ex["deadline_s"], dtype=float)
        self.perfs = list({id(p): p for p in ex["instance_perf"]}.values())
        if self.n_out is None:
            self.n_out = float(ex["mean_output_tokens"])

    # ---------------------------------------------------------------- estimates
    def service_s(self, n_in: int) -> float:
        """Service time of the request served alone on the slowest instance [s]."""
        s = self._service.get(n_in)
        if s is None:
            n_out = float(self.n_out)  # type: ignore[arg-type]
            s = max(
                p.iteration_time_s(((n_in, 0),), 0, 0) + n_out * p.iteration_time_s((), 1, int(n_in + n_out / 2))
                for p in self.perfs
            )
            self._service[n_in] = s
        return s

    def _forecast(self, now: float) -> Tuple[float, np.ndarray]:
        """(start of the interval in progress [s], forecast of it and the next ones); one read per interval."""
        s0 = self.forecast.interval_start_s(now)
        if s0 != self._fc[0]:
            self._fc = (s0, np.asarray(self.forecast.at(now, self.horizon), dtype=float))
        return self._fc

    # ---------------------------------------------------------------- decision
    def release_s(self, request_id: int, n_input_tokens: int, now_s: float) -> float:
        d = self.deadline[request_id]
        if not (d == d):  # NaN: interactive, never delayed
            return now_s
        latest = now_s + d - self.service_s(n_input_tokens) - self.margin_s
        if latest <= now_s:
            return now_s
        s0, fc = self._forecast(now_s)
        step = self.forecast.step_s
        n = min(int((latest - s0) // step) + 1, fc.size)
        order = sorted(range(n), key=lambda k: (fc[k], k))  # cleanest first; ties: earliest
        base = int(round(s0 / step))
        if self.cap is not None:
            order = [k for k in order if self._count.get(base + k, 0) < self.cap]
            if not order:
                return now_s
        k = order[0]
        m = self._count.get(base + k, 0)
        self._count[base + k] = m + 1
        if k == 0:
            return now_s
        start = s0 + k * step
        if self.spread == "uniform":
            window = min(start + step, latest) - start
            return start + ((m * _GOLDEN) % 1.0) * window
        return start
