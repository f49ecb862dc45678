"""Synthetic workloads: Poisson arrivals and token-length distributions."""

from __future__ import annotations

import numpy as np

from greensim.base.errors import TraceError
from greensim.core.requests import RequestTable
from greensim.experiment.workload import ConstantLength, EmpiricalLength, LognormalLength, UniformLength
from greensim.workloads.traces import read_trace_frame

__all__ = ["sample_lengths", "poisson_table"]


def sample_lengths(dist, n: int, rng: np.random.Generator, where: str) -> np.ndarray:
    """Draw ``n`` integer token counts (>= 1) from a length-distribution config."""
    if isinstance(dist, ConstantLength):
        return np.full(n, dist.value, dtype=np.int64)
    if isinstance(dist, UniformLength):
        return rng.integers(dist.low, dist.high + 1, size=n, dtype=np.int64)
    if isinstance(dist, LognormalLength):
        with np.errstate(over="ignore"):  # a huge median or sigma overflows to inf, clipped to max below
            x = np.rint(dist.median * np.exp(dist.sigma * rng.standard_normal(n)))
        return np.clip(x, dist.min, max(dist.min, dist.max)).astype(np.int64)
    if isinstance(dist, EmpiricalLength):
        df = read_trace_frame(dist.path, where=f"{where}.path", recognise=False)  # any table with the column
        if dist.column not in df.columns:
            raise TraceError(
                f"{where}.column: '{dist.column}' is not a column of {dist.path} "
                f"(columns: {', '.join(map(str, df.columns))})."
            )
        pool = df[dist.column].to_numpy(dtype=float)
        pool = pool[np.isfinite(pool) & (pool >= 1)]
        if pool.size == 0:
            raise TraceError(f"{where}: column '{dist.column}' has no value >= 1 to sample from.")
        return pool[rng.integers(0, pool.size, size=n)].astype(np.int64)
    raise TraceError(f"{where}: unsupported length distribution {dist!r}")


def poisson_table(
    rate_rps: float,
    n: int,
    input_dist,
    output_dist,
    rng_arrivals: np.random.Generator,
    rng_lengths: np.random.Generator,
    where: str = "workload",
) -> RequestTable:
    """Poisson arrivals (exponential gaps, first arrival at its first gap)."""
    gaps = rng_arrivals.exponential(1.0 / rate_rps, size=n)
    arrival = np.cumsum(gaps)
    n_in = sample_lengths(input_dist, n, rng_lengths, f"{where}.input_tokens")
    n_out = sample_lengths(output_dist, n, rng_lengths, f"{where}.output_tokens")
    return RequestTable(arrival, n_in, n_out)
