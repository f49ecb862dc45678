"""Sweep throughput: runs per minute vs local worker processes, and on a local Dask cluster.

Each run is the bundled quickstart (Llama-3.1-8B on A100-80GB instances, Poisson arrivals
with Azure-conversation-like lengths) with ``--n`` requests; the grid is arrival rate x
instance count x replicate seeds (``--runs`` runs in all). The cache is off, so every run
is simulated. For each backend the whole ``greensim.sweep`` call is timed, pool start-up
included (a local pool is created per call); the Dask cluster is started before timing
(a user connects to a running cluster) and its start-up is printed separately.

Scaling efficiency = throughput(backend) / (workers x throughput of one in-process worker).
CPU efficiency = CPU seconds per run in-process / CPU seconds per run on the backend (this
process plus its reaped pool or cluster processes): the backend's own overhead, which a
machine shared with other processes does not distort the way it distorts wall time.
Every backend's table is checked equal to the in-process one (same numbers everywhere).

    python benchmarks/bench_sweep.py                       # 24 runs of 20k requests; 1, 2, 4 workers; Dask x2
    python benchmarks/bench_sweep.py --workers 1,2 --no-dask --runs 8 --n 5000
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import pandas as pd

import greensim
from greensim.api.run import default_experiment_path


def grid_for(runs: int):
    """A rate x instance-count grid with enough replicates to reach ``runs`` runs."""
    grid = {"workload.rate_rps": [6, 10, 14], "cluster.instances.0.count": [2, 3]}
    points = 6
    seeds = max(1, round(runs / points))
    return grid, seeds


def cpu_s() -> float:
    """CPU seconds of this process and its reaped children (pool and cluster workers) [s]."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed_sweep(label: str, n: int, runs: int, **kw):
    grid, seeds = grid_for(runs)
    t0 = time.perf_counter()
    df = greensim.sweep(
        default_experiment_path(),
        grid=grid,
        seeds=seeds,
        cache=False,
        progress=False,
        overrides={"workload.n_requests": n},
        **kw,
    )
    wall = time.perf_counter() - t0
    assert (df["status"] == "ok").all(), df.loc[df["status"] != "ok", "error"].tolist()
    return df, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="requests per run")
    ap.add_argument("--runs", type=int, default=24, help="runs per sweep (rounded to a multiple of 6)")
    ap.add_argument("--workers", default="1,2,4", help="local worker counts, comma-separated")
    ap.add_argument("--dask-workers", type=int, default=2, help="worker processes of the local Dask cluster")
    ap.add_argument("--no-dask", action="store_true")
    args = ap.parse_args()
    print(
        f"cores: {os.cpu_count()}; {args.runs} runs x {args.n} requests; greensim {greensim.__version__}; "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    rows = []
    c0 = cpu_s()
    ref, wall1 = timed_sweep("in-process", args.n, args.runs, workers=1)
    per_run = wall1 / len(ref)
    rows.append(("local, 1 worker (in-process)", 1, len(ref), wall1, ref["wall_s"].mean(), cpu_s() - c0))
    for w in [int(x) for x in args.workers.split(",") if int(x) > 1]:
        c0 = cpu_s()
        df, wall = timed_sweep(f"local x{w}", args.n, args.runs, workers=w)
        pd.testing.assert_frame_equal(df.drop(columns=["wall_s"]), ref.drop(columns=["wall_s"]))
        rows.append((f"local, {w} worker processes", w, len(df), wall, df["wall_s"].mean(), cpu_s() - c0))
    if not args.no_dask:
        import distributed

        c0 = cpu_s()
        t0 = time.perf_counter()
        cluster = distributed.LocalCluster(
            processes=True, n_workers=args.dask_workers, threads_per_worker=1, dashboard_address=None, silence_logs=40
        )
        client = distributed.Client(cluster)
        startup = time.perf_counter() - t0
        try:
            client.run(lambda: __import__("greensim"))  # warm imports, as a long-lived cluster is
            df, wall = timed_sweep("dask", args.n, args.runs, backend=client)
            pd.testing.assert_frame_equal(df.drop(columns=["wall_s"]), ref.drop(columns=["wall_s"]))
            row = [
                f"Dask LocalCluster, {args.dask_workers} worker processes",
                args.dask_workers,
                len(df),
                wall,
                df["wall_s"].mean(),
            ]
        finally:
            client.close()
            cluster.close()
        rows.append(tuple(row + [cpu_s() - c0]))  # CPU includes the cluster's start and stop
        print(f"Dask LocalCluster start-up (not timed above): {startup:.1f} s")
    base = len(ref) / wall1
    print(f"mean wall time of one run in-process: {per_run:.2f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f} (above the core count: other processes compete)")
    cpu1 = rows[0][5] / rows[0][2]
    print(
        "| backend | workers | runs | wall [s] | mean run wall in worker [s] | runs/min | speed-up | "
        "scaling efficiency | CPU per run [s] | CPU efficiency |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, w, n_runs, wall, run_s, cpu in rows:
        thr = n_runs / wall
        print(
            f"| {label} | {w} | {n_runs} | {wall:.1f} | {run_s:.2f} | {60 * thr:.0f} | {thr / base:.2f} | "
            f"{thr / base / w:.0%} | {cpu / n_runs:.2f} | {cpu1 / (cpu / n_runs):.0%} |"
        )
    print("identical tables on every backend: yes")


if __name__ == "__main__":
    main()
