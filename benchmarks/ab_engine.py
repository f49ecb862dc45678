"""Same-run engine A/B: two checkouts simulate the same workload alternately; CPU time of
``Simulation.run`` and whether every per-request result is identical.

    git worktree add --detach /tmp/wt_ref <commit>
    python benchmarks/ab_engine.py /tmp/wt_ref . --modes colocated,dpd,dsd --n 100000 --rounds 2

For each round, mode and tree, a fresh interpreter with ``PYTHONPATH=<tree>`` builds the
``Simulation`` of ``bench_engine.experiment(n, rate, 4, False, mode)`` (the tree's own
benchmarks/bench_engine.py; kernel model; bench_engine's 70 % load rates unless ``--rate``),
times ``run()`` with ``time.process_time`` (best of ``--repeat``) and saves every per-request
record array and each instance's ledger totals; the arrays of the two trees are then compared
with ``np.array_equal`` (NaN equal to NaN).
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

RATES = {"colocated": 22.1, "dpd": 8.6, "dsd": 17.7}  # bench_engine.py's 70 % of saturation, 100k requests

WORKER = r"""
import pickle, sys, time
tree, mode, n, rate, repeat, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
sys.path.insert(0, tree + "/benchmarks")
import numpy as np
import bench_engine as be
from greensim.assembly.prepare import make_router, prepare
from greensim.core.simulation import Simulation
from greensim.experiment.load import parse_experiment
be.PERF = "kernel"
p = prepare(parse_experiment(be.experiment(n, rate, 4, False, mode=mode)))
best = float("inf")
for _ in range(repeat):
    sim = Simulation(p.table, p.instances, make_router(p.router_factory, p.policy_seeds), p.bin_s,
                     disaggregation=p.disaggregation() if p.disaggregation is not None else None,
                     speculative=p.speculative() if p.speculative is not None else None)
    t = time.process_time()
    res = sim.run()
    best = min(best, time.process_time() - t)
rec = res.record
arrs = {k: np.asarray(v) for k, v in vars(rec).items() if isinstance(v, np.ndarray)}
arrs.update({"x_" + k: np.asarray(v) for k, v in getattr(rec, "extra", {}).items()})
arrs["ledger"] = np.array([[i.ledger.busy_s, i.ledger.busy_j] for i in res.instances])
pickle.dump((best, arrs), open(out, "wb"))
"""


def _equal(a, b) -> bool:
    import numpy as np

    if a.keys() != b.keys():
        return False
    for k in a:
        try:
            same = np.array_equal(a[k], b[k], equal_nan=True)
        except TypeError:  # object or string arrays: no NaN test
            same = np.array_equal(a[k], b[k])
        if not same:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs=2, help="the reference checkout, then the one to compare")
    ap.add_argument("--modes", default="colocated,dpd,dsd")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=None, help="arrival rate [req/s] (default: per mode, RATES)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="runs per measurement (the best is kept)")
    args = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in args.trees]
    modes = args.modes.split(",")
    print("| mode | " + " | ".join(f"{t} req/s" for t in trees) + " | ratio | per-request results |")
    print("| --- | " + " | ".join("---" for _ in trees) + " | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            rate = args.rate if args.rate is not None else RATES[mode]
            speeds: dict = {t: [] for t in trees}
            results = {}
            for r in range(args.rounds):
                for i, tree in enumerate(trees):
                    out = os.path.join(tmp, f"{mode}_{i}_{r}.pkl")
                    env = {**os.environ, "PYTHONPATH": tree}
                    cmd = [sys.executable, "-c", WORKER, tree, mode, str(args.n), str(rate), str(args.repeat), out]
                    subprocess.run(cmd, env=env, check=True)
                    with open(out, "rb") as f:
                        best, arrs = pickle.load(f)
                    speeds[tree].append(args.n / best)
                    results[tree] = arrs
            same = _equal(results[trees[0]], results[trees[1]])
            ratio = (sum(speeds[trees[1]]) / len(speeds[trees[1]])) / (sum(speeds[trees[0]]) / len(speeds[trees[0]]))
            cells = " | ".join(" / ".join(f"{s:,.0f}" for s in speeds[t]) for t in trees)
            print(f"| {mode} | {cells} | {ratio:.2f}x | {'identical' if same else 'DIFFER'} |", flush=True)


if __name__ == "__main__":
    main()
