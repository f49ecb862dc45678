"""Deadlines of deferrable requests: per-request columns, SLO by deadline, and a carbon-shift estimate.

:func:`add_deadlines` runs after :func:`~greensim.results.metrics.build_tables` when some
request belongs to a deferrable SLO class (``slo.classes.<name>.deferrable``). It adds to the
requests table:

* ``deadline_s``: latest completion after arrival [s] (NaN: interactive request);
* ``released_s``: when the router got the request [s] (its arrival without ``defer.policy``);
* ``defer_s``: ``released_s - arrival_s`` [s];
* ``deadline_met``: completed within ``deadline_s`` of arrival (True for interactive requests,
  which have no deadline);
* ``operational_gco2_est`` / ``operational_gco2_undeferred_est`` (deferrable requests):
  the request's energy (``energy_j``, idle share included) x its site's PUE x the mean grid
  intensity over its span in the system, ``[released_s, done]``, and the same energy over a
  span of the same length starting at its arrival (had it not been held) [gCO2e].

A deferrable request is judged by its deadline alone: ``slo_met`` is ``deadline_met`` (TTFT
measured from arrival includes the deliberate hold, so the interactive TTFT SLO does not
apply); ``slo_attainment_frac`` and ``goodput_rps`` are recomputed accordingly. Latency
columns and percentiles (``ttft_s``, ``e2e_s``, ...) stay measured from arrival, hold included;
``interactive_*`` summary values cover interactive requests only.

Carbon saved. ``deferral_carbon_saved_est_gco2`` sums ``operational_gco2_undeferred_est -
operational_gco2_est`` over deferrable requests: an intensity-shift estimate at fixed
energy. It ignores that shifting changes batching (and hence energy) and idle time; the
counterfactual that includes them is the same experiment with ``defer.policy: none`` (same
seed, same requests): compare its ``operational_gco2`` with this run's
(:func:`greensim.api.compare_deferral` runs both).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from greensim.base.units import J_PER_KWH

__all__ = ["add_deadlines"]


def add_deadlines(tables: Any, deadline_s: np.ndarray, specs: Sequence[Any], intensity: Any, pue: float) -> None:
    """Add the deadline columns and summary values to ``tables`` in place (see the module docstring).

    Parameters
    ----------
    tables : :class:`~greensim.results.metrics.Tables` of the run.
    deadline_s : per request, deadline after arrival [s]; NaN for interactive requests.
    specs : per instance, its carbon spec (``intensity``, ``pue``; None = the run's defaults).
    intensity : the run's default grid intensity (carbon.intensity).
    pue : the default PUE (carbon.pue) [-].
    """
    r = tables.requests
    arrival = r["arrival_s"].to_numpy(dtype=float)
    deadline = np.asarray(deadline_s, dtype=float)
    deferrable = np.isfinite(deadline)
    released = r["released_s"].to_numpy(dtype=float) if "released_s" in r.columns else arrival.copy()
    done_ok = ~r["rejected"].to_numpy(dtype=bool)
    e2e = r["e2e_s"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        met = np.where(deferrable, done_ok & (e2e <= deadline), True)
    op_est, op_undeferred = _shift_estimate(r, deferrable & done_ok, released, arrival + e2e, specs, intensity, pue)
    r["deadline_s"] = deadline
    r["released_s"] = released
    r["defer_s"] = released - arrival
    r["deadline_met"] = met
    r["operational_gco2_est"] = op_est
    r["operational_gco2_undeferred_est"] = op_undeferred
    slo_met = np.where(deferrable, met, r["slo_met"].to_numpy(dtype=bool))
    r["slo_met"] = slo_met
    s = tables.summary
    n = len(r)
    H = s["duration_s"]
    s["slo_attainment_frac"] = float(slo_met.mean()) if n else 0.0
    s["goodput_rps"] = float(slo_met.sum()) / H if H > 0 else 0.0
    s.update(_summary(r, deferrable, met, slo_met))


def _shift_estimate(r, m: np.ndarray, released, done, specs, intensity, pue):
    """Per request (NaN outside ``m``): operational carbon of its energy over its actual span,
    and over a span as long starting at its arrival [gCO2e]."""
    n = len(r)
    est = np.full(n, np.nan)
    undeferred = np.full(n, np.nan)
    inst = r["instance"].to_numpy()
    energy = r["energy_j"].to_numpy(dtype=float)
    arrival = r["arrival_s"].to_numpy(dtype=float)
    for k in np.unique(inst[m]):
        spec = specs[int(k)]
        src = spec.intensity if spec.intensity is not None else intensity
        pue_k = spec.pue if spec.pue is not None else pue
        i = np.flatnonzero(m & (inst == k))
        span = done[i] - released[i]
        e = energy[i] / J_PER_KWH * pue_k
        est[i] = e * np.asarray(src.mean_over(released[i], done[i]), dtype=float)
        undeferred[i] = e * np.asarray(src.mean_over(arrival[i], arrival[i] + span), dtype=float)
    return est, undeferred


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if x.size else float("nan")


def _summary(r, deferrable: np.ndarray, met: np.ndarray, slo_met: np.ndarray) -> Dict[str, Optional[float]]:
    defer = r["defer_s"].to_numpy(dtype=float)[deferrable]
    inter = ~deferrable
    ttft = r["ttft_s"].to_numpy(dtype=float)[inter & ~r["rejected"].to_numpy(dtype=bool)]
    ttft = ttft[np.isfinite(ttft)]
    est = r["operational_gco2_est"].to_numpy(dtype=float)
    und = r["operational_gco2_undeferred_est"].to_numpy(dtype=float)
    ok = np.isfinite(est)
    saved = float(np.sum(und[ok] - est[ok]))
    base = float(np.sum(und[ok]))
    nd = int(deferrable.sum())
    return {
        "n_deferrable": nd,
        "n_deferred": int(np.sum(defer > 0)),
        "defer_s_mean": float(defer.mean()) if nd else float("nan"),
        "defer_s_p90": _pct(defer, 90),
        "deadline_miss_frac": float(1.0 - met[deferrable].mean()) if nd else float("nan"),
        "interactive_slo_attainment_frac": float(slo_met[inter].mean()) if inter.any() else float("nan"),
        "interactive_ttft_s_p50": _pct(ttft, 50),
        "interactive_ttft_s_p99": _pct(ttft, 99),
        "deferrable_operational_gco2": float(r["operational_gco2"].to_numpy(dtype=float)[deferrable].sum()),
        "deferral_carbon_saved_est_gco2": saved,
        "deferral_carbon_saved_est_frac": saved / base if base > 0 else float("nan"),
    }
