"""Uncertainty bands carried through a run (``performance.uncertainty: corners``).

Besides the nominal run, the same experiment (same seed, hence the same requests and policy
random streams) is simulated at the two ``performance.band`` corners: ``optimistic`` (every
bound performance model's iteration times x (1 - latency_frac), powers x (1 - power_frac))
and ``pessimistic`` (x (1 + ...)), with the half-widths of ``profiles/uncertainty.yaml``
(:mod:`greensim.hardware.bands`). :func:`add_bands` adds to the nominal summary

- ``bands``: ``{metric: {"low", "point", "high", "optimistic", "pessimistic"}}`` for the headline
  metrics (:data:`greensim.results.bands.HEADLINE_METRICS`), low/high the min/max over the
  three runs (queueing is not guaranteed monotone);
- ``uncertainty``: how they were obtained (``method``, ``note``, the ``fractions`` used per GPU
  with their ``uncertainty.yaml`` entry and ``source``, the corners' wall time), or, without
  bands, ``{"method": "none", "note": why}``.

A corner run equals ``greensim.run`` of the experiment with ``performance.band`` set to that
corner. The nominal run's tables, plots and point values are unchanged.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from greensim.assembly.prepare import Prepared, prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ProfileError
from greensim.base.memory import release_free_memory
from greensim.experiment.schema import Experiment
from greensim.results import Tables
from greensim.results.bands import BANDS_NOTE, CORNERS, metric_bands

__all__ = ["CORNERS", "corners_reason", "corner_experiment", "run_corners", "attach_bands", "band_corners", "add_bands"]

log = logging.getLogger(__name__)

UNCERTAINTY_FILE = "profiles/uncertainty.yaml"

#: a corner of at least this many requests is followed by :func:`release_free_memory`: a full
#: garbage collection costs ~40 ms of CPU with pandas loaded, more than a small sweep run's whole
#: overhead (``benchmarks/README.md``, "Sweeps"); at 1M requests it lowers the peak ~250 MB ("Memory").
RELEASE_AFTER_REQUESTS = 100_000


def corners_reason(exp: Experiment) -> Optional[str]:
    """None when ``exp`` gets band corners, else why it does not."""
    p = exp.performance
    if p.uncertainty == "none":
        return "performance.uncertainty: none (nominal run only)"
    if p.band != "nominal":
        return (
            f"performance.band is '{p.band}': this run is itself a band corner, so it gets no bands "
            "(set band: nominal for low/point/high)"
        )
    return None


def corner_experiment(exp: Experiment, band: str) -> Experiment:
    """``exp`` at a performance band (everything else, the seed included, unchanged; no iteration export)."""
    return exp.model_copy(
        update={
            "performance": exp.performance.model_copy(update={"band": band}),
            "output": exp.output.model_copy(update={"iterations": False}),  # corners give summaries only
        }
    )


def run_corners(
    exp: Experiment,
    run_one: Optional[Callable[[Prepared, str], Tables]] = None,
    known: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, Dict[str, Any]]]:
    """Simulate ``exp`` at the corners: ``({corner: summary}, {GPU: uncertainty.yaml entry used})``.

    ``run_one(prepared, corner)`` runs one prepared corner (default :func:`simulate`, e.g. with a
    progress bar); ``known`` holds corner summaries already computed (not re-run).
    Raises :class:`ProfileError` when a GPU has no entry in ``uncertainty.yaml``.
    """
    out: Dict[str, Dict[str, Any]] = {k: dict(v) for k, v in (known or {}).items()}
    fractions: Dict[str, Dict[str, Any]] = {}

    def corner_summary(band: str) -> Tuple[Dict[str, Any], int]:
        # a function of its own, so that a corner's workload, engine and tables are freed before
        # the next corner runs (only the summary is kept): 1M requests, ~150 MB less peak memory
        p = prepare(corner_experiment(exp, band))
        fractions.update(getattr(p.perf, "bands_used", None) or {})
        return (run_one(p, band) if run_one is not None else simulate(p)).summary, len(p.table)

    for band in CORNERS:
        if band not in out:
            out[band], n = corner_summary(band)
            if n >= RELEASE_AFTER_REQUESTS:
                release_free_memory()  # the corner's engine and tables are garbage now
    return {b: out[b] for b in CORNERS}, fractions


def attach_bands(
    summary: Dict[str, Any],
    corners: Mapping[str, Mapping[str, Any]],
    fractions: Mapping[str, Mapping[str, Any]],
    wall_s: float = float("nan"),
) -> Dict[str, Any]:
    """Add ``bands`` and ``uncertainty`` to the nominal ``summary`` (in place; also returned)."""
    summary["bands"] = metric_bands(summary, corners)
    summary["uncertainty"] = {
        "method": "corners",
        "note": BANDS_NOTE,
        "file": UNCERTAINTY_FILE,
        "fractions": {k: dict(v) for k, v in fractions.items()}
        or "not reported by this performance model (no bands_used)",
        "corners_wall_s": wall_s,
    }
    return summary


def band_corners(
    exp: Experiment,
    run_one: Optional[Callable[[Prepared, str], Tables]] = None,
    known: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> Callable[[Dict[str, Any]], Dict[str, Any]]:
    """Run ``exp``'s band corners now (when it asks for them, :func:`corners_reason`); return the
    function that adds ``bands`` and ``uncertainty`` to its nominal summary (in place; also returned).

    :func:`greensim.run` runs the corners *before* the nominal run, so that their tables are gone
    by the time the nominal tables are built (peak memory one run's, not two); a corner's results
    do not depend on when it runs. A GPU without an ``uncertainty.yaml`` entry leaves the run
    without bands (logged, and said in ``summary["uncertainty"]["note"]``) rather than failing it.
    """
    reason = corners_reason(exp)
    if reason is not None:
        return lambda summary: _no_bands(summary, reason)
    t0 = time.perf_counter()
    try:
        corners, fractions = run_corners(exp, run_one, known)
    except ProfileError as exc:
        log.warning("%s: no uncertainty bands: %s", exp.name, exc)
        note = f"band corners not run: {exc}"
        return lambda summary: _no_bands(summary, note)
    wall = time.perf_counter() - t0
    return lambda summary: attach_bands(summary, corners, fractions, wall)


def _no_bands(summary: Dict[str, Any], note: str) -> Dict[str, Any]:
    summary["uncertainty"] = {"method": "none", "note": note}
    return summary


def add_bands(
    summary: Dict[str, Any],
    exp: Experiment,
    run_one: Optional[Callable[[Prepared, str], Tables]] = None,
    known: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> Dict[str, Any]:
    """Bands of ``exp``'s nominal ``summary`` when ``exp`` asks for them (:func:`band_corners`)."""
    return band_corners(exp, run_one, known)(summary)
