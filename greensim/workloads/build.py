"""Turn the experiment's workload section into a RequestTable."""
from __future__ import annotations

import numpy as np

from ..config import PoissonWorkload, TraceWorkload
from ..core.requests import RequestTable
from . import WORKLOADS
from .synthetic import poisson_table
from .traces import read_trace_frame, table_from_frame

__all__ = ["build_workload"]


@WORKLOADS.register("poisson")
def _poisson(cfg: PoissonWorkload, seeds: np.random.SeedSequence) -> RequestTable:
    s_arr, s_len = seeds.spawn(2)
    return poisson_table(cfg.rate_rps, cfg.n_requests, cfg.input_tokens, cfg.output_tokens,
                         np.random.default_rng(s_arr), np.random.default_rng(s_len))


@WORKLOADS.register("trace")
def _trace(cfg: TraceWorkload, seeds: np.random.SeedSequence) -> RequestTable:
    df = read_trace_frame(cfg.path, cfg.format)
    return table_from_frame(df, where=f"workload ({cfg.path})", max_requests=cfg.max_requests,
                            time_scale=cfg.time_scale)


def build_workload(cfg, seeds: np.random.SeedSequence) -> RequestTable:
    """Dispatch on ``cfg.kind`` through the workload registry."""
    return WORKLOADS.get(cfg.kind, field="workload.kind")(cfg, seeds)
