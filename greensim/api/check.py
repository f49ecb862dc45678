"""Regression check: re-run small experiments and compare summaries with recorded values.

``experiments/check/`` holds small, fast experiments and ``recorded.json`` their
summary metrics at the experiment's seed, with per-metric tolerances set from the
seed-to-seed spread measured when the values were recorded::

    tolerance = min(max(k_sigma * std over seeds, floor), cap * |value|)

so a change that moves a metric by less than its sampling noise passes, and one that
moves it by more fails; the cap (half the value) keeps a tolerance from exceeding what it
guards where the seed spread is wider than that (p99 latencies under GPU failures), so a
metric that dropped to zero still fails. A run at the recorded seed is deterministic, so an unchanged
model reproduces the recorded value exactly; the tolerance only decides how large a
deliberate change must be to require re-recording (``greensim check --record``, with
the reason in the commit).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from greensim.api.run import run
from greensim.base.errors import ConfigError
from greensim.base.paths import bundled
from greensim.experiment.load import load_experiment

__all__ = ["METRICS", "CheckRow", "check_experiments", "record_experiments", "default_check_dir"]

#: Metrics compared, with the absolute floor of their tolerance (units of the metric).
METRICS: Dict[str, float] = {
    "slo_attainment_frac": 0.002,
    "ttft_s_p50": 1e-4,
    "ttft_s_p99": 1e-3,
    "tpot_s_p50": 1e-5,
    "tpot_s_p99": 1e-4,
    "throughput_rps": 1e-4,
    "energy_kwh": 1e-7,
    "operational_gco2": 1e-4,
    "embodied_gco2": 1e-5,
    "carbon_gco2_per_request": 1e-7,
}
K_SIGMA = 2.0
N_SEEDS = 8
#: a tolerance is at most this fraction of its recorded value
TOL_CAP_FRAC = 0.5


def tolerance(value: float, std: float, floor: float) -> float:
    """``min(max(K_SIGMA * std, floor), TOL_CAP_FRAC * |value|)`` (no cap for a zero or NaN value)."""
    tol = max(K_SIGMA * std, floor)
    if math.isfinite(value) and value != 0.0:
        tol = min(tol, TOL_CAP_FRAC * abs(value))
    return tol


log = logging.getLogger(__name__)


def default_check_dir() -> Path:
    return (bundled("experiments")) / "check"


@dataclass
class CheckRow:
    experiment: str
    metric: str
    recorded: float
    value: float
    tolerance: float

    @property
    def ok(self) -> bool:
        if math.isnan(self.recorded) and math.isnan(self.value):
            return True
        return abs(self.value - self.recorded) <= self.tolerance


def _experiments(folder: Path) -> List[Path]:
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(f"check: no experiments (*.yaml) in {folder}.")
    return files


def _summary(path: Path, seed: Optional[int] = None) -> Dict[str, float]:
    # point values only: the recorded metrics are the nominal run's (bands would triple the time)
    ov: Dict[str, Any] = {"simulation.progress": False, "performance.uncertainty": "none"}
    if seed is not None:
        ov["seed"] = seed
    s = run(path, overrides=ov, write=False).summary
    return {m: float(s[m]) if s[m] is not None else float("nan") for m in METRICS}


def record_experiments(folder: Path | None = None, n_seeds: int = N_SEEDS) -> Dict[str, dict]:
    """Run each experiment at its seed and at ``n_seeds`` other seeds; write recorded.json."""
    folder = Path(folder) if folder else default_check_dir()
    out: Dict[str, dict] = {}
    for f in _experiments(folder):
        log.info("check: recording %s at its seed and %d others", f.stem, n_seeds)
        base_seed = load_experiment(f).seed
        ref = _summary(f)
        spread = [_summary(f, seed=base_seed + 1000 + i) for i in range(n_seeds)]
        out[f.stem] = {}
        for m, floor in METRICS.items():
            xs = np.array([s[m] for s in spread])
            std = float(np.nanstd(xs, ddof=1)) if np.isfinite(xs).sum() > 1 else 0.0
            out[f.stem][m] = {"value": ref[m], "seed_std": std, "tolerance": tolerance(ref[m], std, floor)}
    (folder / "recorded.json").write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return out


def check_experiments(folder: Path | None = None) -> List[CheckRow]:
    """Re-run every recorded experiment; one row per (experiment, metric)."""
    folder = Path(folder) if folder else default_check_dir()
    rec_path = folder / "recorded.json"
    if not rec_path.is_file():
        raise ConfigError(f"check: {rec_path} missing. Record values with `greensim check --record`.")
    recorded = json.loads(rec_path.read_text())
    rows: List[CheckRow] = []
    for f in _experiments(folder):
        if f.stem not in recorded:
            raise ConfigError(
                f"check: experiment '{f.stem}' has no recorded values. "
                f"Run `greensim check --record` and commit recorded.json with the reason."
            )
        log.info("check: running %s", f.stem)
        now = _summary(f)
        for m, r in recorded[f.stem].items():
            rows.append(
                CheckRow(
                    f.stem, m, float(r["value"] if r["value"] is not None else "nan"), now[m], float(r["tolerance"])
                )
            )
    return rows
