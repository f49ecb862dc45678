"""Uncertainty bands of a run's headline metrics: low / point / high over the nominal run and
the two performance-band corners (``performance.uncertainty: corners``).

``point`` is the nominal run's value (the run whose tables and plots are written); ``low`` and
``high`` are the minimum and maximum over the three runs (nominal, ``band: optimistic``,
``band: pessimistic``; same seed, same requests). They are taken over the runs rather than
read off the corners because queueing is not guaranteed monotone in the scaling: a faster GPU
can, say, admit a larger batch and end up with a longer TPOT tail.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional

__all__ = [
    "CORNERS",
    "HEADLINE_METRICS",
    "BANDS_NOTE",
    "metric_bands",
    "band_columns",
    "saving_band",
]

#: the two runs besides the nominal one: ``performance.band`` values
CORNERS = ("optimistic", "pessimistic")

_TIMED = ("ttft_s", "tpot_s", "e2e_s", "queue_delay_s", "decode_wait_s", "kv_transfer_s")

#: summary metrics that get a band (those a run's summary has)
HEADLINE_METRICS: tuple = (
    "slo_attainment_frac",
    "ttft_attainment_frac",
    "tpot_attainment_frac",
    "throughput_rps",
    "goodput_rps",
    "output_tokens_per_s",
    "duration_s",
    *[f"{m}_{s}" for m in _TIMED for s in ("mean", "p50", "p90", "p99")],
    "energy_kwh",
    "operational_gco2",
    "embodied_gco2",
    "carbon_gco2",
    "carbon_gco2_per_request",
    "operational_gco2_per_request",
    "embodied_gco2_per_request",
    "carbon_gco2_per_1k_output_tokens",
    "operational_gco2_per_1k_output_tokens",
    "embodied_gco2_per_1k_output_tokens",
)

BANDS_NOTE = (
    "low/high = min/max over three runs with the same seed and requests: the nominal run (point) and the "
    "performance.band corners optimistic (iteration times x (1 - latency_frac), powers x (1 - power_frac)) "
    "and pessimistic (x (1 + latency_frac), x (1 + power_frac)), with the half-widths of profiles/uncertainty.yaml "
    "listed under 'fractions'. Queueing is not guaranteed monotone in these scalings, so low/high are taken over "
    "the three runs, not assumed to be the corners. Tables and plots are the nominal run's."
)


def _num(x: Any) -> Optional[float]:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def metric_bands(
    point: Mapping[str, Any], corners: Mapping[str, Mapping[str, Any]], metrics: Iterable[str] = HEADLINE_METRICS
) -> Dict[str, Dict[str, float]]:
    """``{metric: {"low", "point", "high", <corner>: value...}}`` for every metric of ``point``.

    ``corners`` maps a corner name (``optimistic``, ``pessimistic``) to its run's summary. NaN
    values (say, a percentile of no requests) are left out of the min/max; a metric that is NaN
    in every run is NaN.
    """
    out: Dict[str, Dict[str, float]] = {}
    for m in metrics:
        p = _num(point.get(m))
        if p is None:
            continue
        vals = {"point": p}
        for name, s in corners.items():
            v = _num(s.get(m))
            vals[name] = float("nan") if v is None else v
        finite = [v for v in vals.values() if math.isfinite(v)]
        lo = min(finite) if finite else float("nan")
        hi = max(finite) if finite else float("nan")
        out[m] = {"low": lo, "point": p, "high": hi, **{k: v for k, v in vals.items() if k != "point"}}
    return out


def band_columns(summary: Mapping[str, Any], metrics: Optional[Iterable[str]] = None) -> Dict[str, float]:
    """``{<metric>_low: .., <metric>_high: ..}`` from a summary's ``bands`` (empty without bands)."""
    bands = summary.get("bands") or {}
    names: List[str] = list(bands) if metrics is None else [m for m in metrics if m in bands]
    out: Dict[str, float] = {}
    for m in names:
        out[f"{m}_low"] = bands[m]["low"]
        out[f"{m}_high"] = bands[m]["high"]
    return out


def saving_band(best: Mapping[str, Any], baseline: Mapping[str, Any], key: str = "carbon_gco2_per_request"):
    """low / point / high of ``1 - best / baseline`` over the runs both have (nominal and each corner),
    each corner comparing the two deployments under the same band; None without both bands."""
    bb, ba = best.get("bands", {}).get(key), baseline.get("bands", {}).get(key)
    if not bb or not ba:
        return None
    vals = {}
    for run in ("point", *CORNERS):
        b, a = bb.get(run), ba.get(run)
        if b is not None and a is not None and a > 0 and math.isfinite(a) and math.isfinite(b):
            vals[run] = 1.0 - b / a
    if "point" not in vals:
        return None
    corners = {k: v for k, v in vals.items() if k != "point"}
    return {"low": min(vals.values()), "point": vals["point"], "high": max(vals.values()), **corners}
