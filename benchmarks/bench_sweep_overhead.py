"""Per-run overhead of a large sweep: a 1,000-point grid run in-process, CPU time of the whole
``greensim.sweep`` call against the CPU time spent inside the engine (``Simulation.run``).

    python benchmarks/bench_sweep_overhead.py                  # 1,000 runs of the quickstart x 1,000 requests
    python benchmarks/bench_sweep_overhead.py --points 100 --n 300

Grid: arrival rate x instance count x seeds of the bundled quickstart, cache off, one worker
(in-process), as a notebook user runs it. Every run is what ``greensim.run`` does (with the
default ``performance.uncertainty: corners``, three simulations: nominal and two band corners).
"Overhead" is everything but the engine: preparing each experiment, building its tables and
summary, the band statistics, the sweep's own bookkeeping and the result DataFrame.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import engine_cpu  # noqa: E402

import greensim  # noqa: E402
from greensim.api.run import default_experiment_path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--points", type=int, default=1000, help="grid points (rates x counts x seeds, 10 x 10 x points/100)"
    )
    ap.add_argument("--n", type=int, default=1000, help="requests per run")
    args = ap.parse_args()
    seeds = max(1, args.points // 100)
    grid = {
        "workload.rate_rps": [4 + 1.5 * i for i in range(10)],
        "cluster.instances.0.count": list(range(1, 11)),
    }
    t0 = time.process_time()
    with engine_cpu() as engine:
        df = greensim.sweep(
            default_experiment_path(),
            grid=grid,
            seeds=seeds,
            cache=False,
            progress=True,
            workers=1,
            overrides={"workload.n_requests": args.n},
        )
    total = time.process_time() - t0
    ok = int((df["status"] == "ok").sum())
    over = total - engine[0]
    print(f"{len(df)} runs ({ok} ok), {engine[1]} simulations of {args.n} requests; greensim {greensim.__version__}")
    print("| runs | CPU total [s] | CPU in engine [s] | overhead per run [ms] | overhead share |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print(f"| {len(df)} | {total:.1f} | {engine[0]:.1f} | {1000 * over / len(df):.1f} | {over / total:.0%} |")


if __name__ == "__main__":
    main()
