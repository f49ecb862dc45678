"""Workload generation speed: requests generated (or loaded) per wall-clock second.

The engine simulates ~45k requests/s (benchmarks/README.md); building the workload must
stay far below that. Each line times `build_workload` (best of 3) for one workload kind:

    python benchmarks/bench_workloads.py              # 1M requests per synthetic kind
    python benchmarks/bench_workloads.py --n 200000

Trace replays use ../shared/data/traces (Azure 2023 conversation, repeated to reach ~n
requests; BurstGPT- and Azure-2024-format files of n rows written to a temporary folder first).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from greensim.experiment.load import parse_experiment
from greensim.workloads import build_workload

TRACES = Path(__file__).resolve().parents[1].parent / "shared/data/traces"
FITTED = {"kind": "fitted", "trace": "azure_llm_2023_conv"}


def cases(n: int, tmp: Path):
    yield (
        "poisson + fitted lengths",
        {"kind": "synthetic", "n_requests": n, "arrivals": {"process": "poisson", "rate_rps": 10.0}, "lengths": FITTED},
    )
    yield (
        "gamma cv=3 + fitted lengths",
        {
            "kind": "synthetic",
            "n_requests": n,
            "arrivals": {"process": "gamma", "rate_rps": 10.0, "cv": 3.0},
            "lengths": FITTED,
        },
    )
    yield (
        "diurnal + fitted lengths",
        {
            "kind": "synthetic",
            "n_requests": n,
            "arrivals": {"process": "diurnal", "mean_rate_rps": 10.0},
            "lengths": FITTED,
        },
    )
    yield (
        "servegen m-large + fitted lengths",
        {
            "kind": "synthetic",
            "n_requests": n,
            "lengths": FITTED,
            "arrivals": {
                "process": "servegen",
                "path": str(TRACES / "servegen_rate_profile_10min.csv"),
                "mean_rate_rps": 10.0,
            },
        },
    )
    conv = TRACES / "azure_llm_2023_conv.csv"
    yield (
        "replay azure conv, repeat_until_s",
        {"kind": "trace", "path": str(conv), "repeat_until_s": 3502.0 * n / 19366},
    )
    rng = np.random.default_rng(0)
    p = tmp / "burstgpt.csv"
    pd.DataFrame(
        {
            "Timestamp": np.cumsum(rng.exponential(0.1, n)).round(3),
            "Model": "ChatGPT",
            "Request tokens": rng.integers(0, 2000, n),
            "Response tokens": rng.integers(0, 500, n),
            "Total tokens": 0,
            "Log Type": "Conversation log",
        }
    ).to_csv(p, index=False)
    p24 = tmp / "AzureLLMInferenceTrace_conv_1week.csv"
    ts = pd.Timestamp("2024-05-12", tz="UTC") + pd.to_timedelta(np.cumsum(rng.exponential(0.02, n)), unit="s")
    pd.DataFrame(
        {
            "TIMESTAMP": ts.strftime("%Y-%m-%d %H:%M:%S.%f+00:00"),
            "ContextTokens": rng.integers(1, 5000, n),
            "GeneratedTokens": rng.integers(1, 500, n),
        }
    ).to_csv(p24, index=False)
    yield (
        "Azure 2024-format file (timestamp parse included)",
        {"kind": "trace", "path": str(p24), "format": "azure_llm"},
    )
    yield (
        "BurstGPT file, drop_invalid (csv parse included)",
        {"kind": "trace", "path": str(p), "format": "burstgpt", "drop_invalid": True},
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    base = {
        "name": "b",
        "seed": 0,
        "model": "Llama-3.1-8B",
        "slo": {"ttft_s": 1, "tpot_s": 0.1},
        "cluster": {"instances": [{"gpu": "A100-80GB"}]},
    }
    import logging

    logging.getLogger("greensim.workloads").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as d:
        for label, wl in cases(args.n, Path(d)):
            exp = parse_experiment({**base, "workload": wl})
            best, n = float("inf"), 0
            for _ in range(3):
                t0 = time.perf_counter()
                n = len(build_workload(exp.workload, np.random.SeedSequence(0)))
                best = min(best, time.perf_counter() - t0)
            print(f"{label:<50} {n:>9,} requests  {best:6.2f} s  {n / best / 1e6:6.2f} M req/s")


if __name__ == "__main__":
    main()
