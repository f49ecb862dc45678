"""Sweep throughput: runs per minute vs local worker processes, and on local Dask clusters.

Each run is the bundled quickstart (Llama-3.1-8B on A100-80GB instances, Poisson arrivals
with Azure-conversation-like lengths) with ``--n`` requests; the grid is arrival rate x
instance count x replicate seeds (``--runs`` runs in all). The cache is off, so every run
is simulated. For each backend the whole ``greensim.sweep`` call is timed, pool start-up
included (a local pool is created per call). Each Dask LocalCluster (one per entry of
``--dask-workers``: ``processes=True``, ``threads_per_worker=1``) is started and its workers
warmed (``import greensim.api.sweep``, which pulls in pandas) before timing, as a user
connects to a running cluster; its start-up is printed separately. Dask's statistical worker
profiler (on by default in Dask: it samples every worker thread every 10 ms) is switched off for
these clusters; ``--dask-profiler`` keeps it (measured: ~25 % more CPU per run with it on).

Scaling efficiency = throughput(backend) / (workers x throughput of the reference): the
one-worker in-process run, and (column "vs Dask x1", when ``--dask-workers`` holds 1) the
one-worker Dask cluster. CPU efficiency = CPU seconds per run in-process / CPU seconds per run
on the backend during the timed sweep: for a local pool, this process plus its reaped pool
processes (pool start included); for Dask, this process (client and scheduler) plus the
workers' own CPU, read on each worker before and after the sweep. It is the backend's
overhead, which a machine shared with other processes does not distort the way it distorts
wall time. The in-process run also reports the CPU spent in the simulation itself
(``Simulation.run``) against the whole run (per-run overhead: parsing, preparing, tables,
band corners included in both). Every backend's table is checked equal to the in-process one.

    python benchmarks/bench_sweep.py                       # 24 runs of 20k requests; 1, 2, 4 workers; Dask x2
    python benchmarks/bench_sweep.py --workers 1,2 --no-dask --runs 8 --n 5000
    python benchmarks/bench_sweep.py --workers 1,16 --dask-workers 1,2,4,8,16 --runs 96 --csv curve.csv
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
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


def self_cpu_s() -> float:
    """CPU seconds of the calling process alone (run on each Dask worker) [s]."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def timed_sweep(n: int, runs: int, **kw):
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


@contextlib.contextmanager
def engine_cpu():
    """Within the block, sum the CPU seconds spent inside ``Simulation.run`` (in this process) into
    the yielded list's ``[0]`` and count the simulations in ``[1]``."""
    from greensim.core.simulation import Simulation

    acc = [0.0, 0]
    original = Simulation.run

    def timed_run(self):
        t0 = time.process_time()
        try:
            return original(self)
        finally:
            acc[0] += time.process_time() - t0
            acc[1] += 1

    Simulation.run = timed_run  # type: ignore[method-assign]
    try:
        yield acc
    finally:
        Simulation.run = original  # type: ignore[method-assign]


def in_process_sweep(n: int, runs: int):
    """The one-worker in-process sweep, with the CPU spent inside ``Simulation.run`` summed up."""
    with engine_cpu() as acc:
        df, wall = timed_sweep(n, runs, workers=1)
    return df, wall, acc[0]


def dask_sweep(w: int, n: int, runs: int, profiler: bool = False):
    """A sweep on a fresh LocalCluster of ``w`` single-threaded worker processes; ``profiler``: keep
    Dask's statistical worker profiler on (its default: it samples each worker thread every 10 ms)."""
    import distributed

    t0, c0 = time.perf_counter(), cpu_s()
    # as a user starts workers: DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False dask worker ...
    # (the worker processes read it from their environment)
    key = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"
    old = os.environ.get(key)
    os.environ[key] = "True" if profiler else "False"
    try:
        cluster = distributed.LocalCluster(
            processes=True, n_workers=w, threads_per_worker=1, dashboard_address=None, silence_logs=40
        )
    finally:
        if old is None:
            del os.environ[key]
        else:
            os.environ[key] = old
    client = distributed.Client(cluster)
    try:
        client.wait_for_workers(w)
        client.run(lambda: __import__("greensim.api.sweep"))  # warm imports, as a long-lived cluster is
        startup = (time.perf_counter() - t0, cpu_s() - c0 + sum(client.run(self_cpu_s).values()))
        before_workers = client.run(self_cpu_s)
        before_me = self_cpu_s()
        df, wall = timed_sweep(n, runs, backend=client)
        cpu = self_cpu_s() - before_me
        after_workers = client.run(self_cpu_s)
        assert after_workers.keys() == before_workers.keys(), "a Dask worker restarted during the sweep"
        cpu += sum(after_workers[k] - before_workers[k] for k in after_workers)
    finally:
        client.close()
        cluster.close()
    return df, wall, cpu, startup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="requests per run")
    ap.add_argument("--runs", type=int, default=24, help="runs per sweep (rounded to a multiple of 6)")
    ap.add_argument("--workers", default="1,2,4", help="local worker counts, comma-separated")
    ap.add_argument(
        "--dask-workers", default="2", help="worker processes of each local Dask cluster, comma-separated (1,2,4,8)"
    )
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument(
        "--dask-profiler",
        action="store_true",
        help="keep Dask's statistical worker profiler on (Dask's default; off here: it costs ~25%% CPU per run)",
    )
    ap.add_argument("--csv", help="also write the table to this CSV file")
    args = ap.parse_args()
    local_counts = [int(x) for x in args.workers.split(",") if int(x) > 1]
    dask_counts = [] if args.no_dask else [int(x) for x in args.dask_workers.split(",")]
    if any(w < 1 for w in dask_counts):
        ap.error(f"--dask-workers: worker counts must be >= 1, got {args.dask_workers!r}")
    versions = f"Python {platform.python_version()}, pandas {pd.__version__}"
    if dask_counts:
        import dask
        import distributed

        versions += f", dask {dask.__version__}, distributed {distributed.__version__}"
    print(
        f"cores: {os.cpu_count()} (usable: {len(os.sched_getaffinity(0))}); {args.runs} runs x {args.n} requests; "
        f"greensim {greensim.__version__}; {versions}; load average before: {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows = []  # label, workers, runs, wall, mean run wall in worker, CPU of the sweep
    c0 = cpu_s()
    ref, wall1, sim_cpu = in_process_sweep(args.n, args.runs)
    cpu_ref = cpu_s() - c0
    rows.append(("local, 1 worker (in-process)", 1, len(ref), wall1, ref["wall_s"].mean(), cpu_ref))
    print(f"in-process: {len(ref)} runs in {wall1:.1f} s", flush=True)
    for w in local_counts:
        c0 = cpu_s()
        df, wall = timed_sweep(args.n, args.runs, workers=w)
        pd.testing.assert_frame_equal(df.drop(columns=["wall_s"]), ref.drop(columns=["wall_s"]))
        rows.append((f"local, {w} worker processes", w, len(df), wall, df["wall_s"].mean(), cpu_s() - c0))
        print(f"local x{w}: {wall:.1f} s", flush=True)
    startups = []
    for w in dask_counts:
        df, wall, cpu, startup = dask_sweep(w, args.n, args.runs, args.dask_profiler)
        pd.testing.assert_frame_equal(df.drop(columns=["wall_s"]), ref.drop(columns=["wall_s"]))
        rows.append(
            (
                f"Dask LocalCluster, {w} worker process{'es' if w > 1 else ''}",
                w,
                len(df),
                wall,
                df["wall_s"].mean(),
                cpu,
            )
        )
        startups.append((w, *startup))
        print(f"Dask x{w}: {wall:.1f} s (cluster start-up {startup[0]:.1f} s, not timed)", flush=True)
    base = len(ref) / wall1
    dask1 = next((r[2] / r[3] for r in rows if r[0].startswith("Dask") and r[1] == 1), None)
    cpu1 = cpu_ref / len(ref)
    print(f"mean wall time of one run in-process: {wall1 / len(ref):.2f} s")
    print(
        f"per-run overhead in-process: CPU per run {cpu1:.3f} s, of which Simulation.run {sim_cpu / len(ref):.3f} s "
        f"(3 simulations per run: nominal + 2 band corners); the rest ({cpu1 - sim_cpu / len(ref):.3f} s, "
        f"{1 - sim_cpu / cpu_ref:.1%}) is the sweep, parsing, preparing, tables and bands"
    )
    for w, s_wall, s_cpu in startups:
        print(f"Dask LocalCluster x{w}: start-up + warm-up {s_wall:.1f} s wall, {s_cpu:.1f} s CPU (not timed)")
    print(f"load average after: {os.getloadavg()[0]:.2f} (above the core count: other processes compete)")
    print(
        "| backend | workers | runs | wall [s] | mean run wall in worker [s] | runs/min | speed-up | "
        "scaling efficiency | vs Dask x1 | CPU per run [s] | CPU efficiency |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    table = []
    for label, w, n_runs, wall, run_s, cpu in rows:
        thr = n_runs / wall
        eff_d1 = thr / dask1 / w if dask1 is not None and label.startswith("Dask") else None
        table.append(
            {
                "backend": label,
                "workers": w,
                "runs": n_runs,
                "wall_s": wall,
                "mean_run_wall_s": run_s,
                "runs_per_min": 60 * thr,
                "speed_up": thr / base,
                "scaling_efficiency": thr / base / w,
                "scaling_efficiency_vs_dask1": eff_d1,
                "cpu_per_run_s": cpu / n_runs,
                "cpu_efficiency": cpu1 / (cpu / n_runs),
            }
        )
        print(
            f"| {label} | {w} | {n_runs} | {wall:.1f} | {run_s:.2f} | {60 * thr:.0f} | {thr / base:.2f} | "
            f"{thr / base / w:.0%} | {'' if eff_d1 is None else f'{eff_d1:.0%}'} | {cpu / n_runs:.2f} | "
            f"{cpu1 / (cpu / n_runs):.0%} |"
        )
    print("identical tables on every backend: yes")
    if args.csv:
        pd.DataFrame(table).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
