"""``failures.parquet``: one row per GPU failure of a run (instance, down and up times), the
intervals ``timeline.png`` shades."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from greensim.base.lazy import lazy_module

pd = lazy_module("pandas")

__all__ = ["failure_table"]


def failure_table(instances: Sequence[Any], horizon_s: float) -> "pd.DataFrame":
    """Per failure: ``instance`` (its index in instances.parquet), ``down_s`` (failure time),
    ``up_s`` (repair time; NaN when the GPU was still down at the end of the run) and
    ``down_for_s`` (time down within the run, up to the horizon) [s]."""
    rows = [
        (k, float(a), float(b) if math.isfinite(b) else float("nan"), max(0.0, min(b, horizon_s) - a))
        for k, inst in enumerate(instances)
        for a, b in getattr(inst, "down_intervals", ())
    ]
    cols = ("instance", "down_s", "up_s", "down_for_s")
    if not rows:
        return pd.DataFrame({c: np.zeros(0, dtype=np.int64 if c == "instance" else float) for c in cols})
    arr = list(zip(*rows))
    return pd.DataFrame(
        {
            "instance": np.asarray(arr[0], dtype=np.int64),
            "down_s": np.asarray(arr[1], dtype=float),
            "up_s": np.asarray(arr[2], dtype=float),
            "down_for_s": np.asarray(arr[3], dtype=float),
        }
    )
