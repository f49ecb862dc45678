"""Where the engine's time goes, as bounds: what the colocated benchmark run would reach if parts
of its per-event work cost nothing.

    python benchmarks/bench_engine_floor.py              # 30k requests of bench_engine's workload
    python benchmarks/bench_engine_floor.py --n 100000

Rows (CPU seconds of ``Simulation.run``, best of ``--repeat``, one process):

- ``engine``: the real run (kernel performance model, as bench_engine.py --perf kernel);
- ``ledger off``: the instances' ledgers (busy time / energy per bin, queue and batch samples)
  replaced by no-ops;
- ``model constant``: the performance model's calls answered by constants (50 ms per prefill
  iteration, 30 ms per decode iteration, fixed power): the dynamics change (other batches), the
  engine's mechanics stay;
- ``both``: ledger off and model constant: the scheduling mechanics alone (SimPy events, routing,
  admission, KV-block accounting, decode runs, completions);
- ``SimPy alone``: the event rate of SimPy itself (a chain of timeouts with an empty callback),
  converted at the engine's events per request.

The rows other than ``engine`` are not valid simulations; they only bound what faster code in
each part could give.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_engine as be  # noqa: E402

from greensim.assembly.prepare import make_router, prepare  # noqa: E402
from greensim.core.ledger import Ledger  # noqa: E402
from greensim.core.simulation import Simulation  # noqa: E402
from greensim.experiment.load import parse_experiment  # noqa: E402


def _stub_ledger() -> None:
    Ledger.busy = lambda self, *a, **k: None  # type: ignore[method-assign]
    Ledger.sample = lambda self, *a, **k: None  # type: ignore[method-assign]


def _stub_model(cls) -> None:
    cls.iteration_time_s = lambda self, c, nd, ctx: 0.05
    cls.iteration_power_w = lambda self, c, nd, ctx, t: 300.0
    cls.decode_run_time_s = lambda self, n, c, k: 0.03 * k
    cls.decode_run_energy_j = lambda self, n, c, k: 9.0 * k
    cls.decode_iterations_until = lambda self, n, c, k, dt: max(1, min(k, int(dt / 0.03) + 1))


def simpy_events_per_s(n: int = 300_000) -> float:
    env = simpy.Environment()
    left = [n]

    def tick(_ev) -> None:
        left[0] -= 1
        if left[0] > 0:
            env.timeout(0.001).callbacks.append(tick)

    t = time.process_time()
    tick(None)
    env.run()
    return n / (time.process_time() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--rate", type=float, default=22.1, help="arrival rate (bench_engine's 70%% load: 22.1 req/s)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    be.PERF = "kernel"
    p = prepare(parse_experiment(be.experiment(args.n, args.rate, 4, False)))
    orig_ledger = (Ledger.busy, Ledger.sample)
    cls = type(p.instances[0][1])
    orig_model = {
        k: cls.__dict__[k]
        for k in (
            "iteration_time_s",
            "iteration_power_w",
            "decode_run_time_s",
            "decode_run_energy_j",
            "decode_iterations_until",
        )
    }
    events = 0
    rows = []
    for label, ledger_off, model_const in [
        ("engine", False, False),
        ("ledger off", True, False),
        ("model constant", False, True),
        ("both", True, True),
    ]:
        Ledger.busy, Ledger.sample = orig_ledger
        for k, v in orig_model.items():
            setattr(cls, k, v)
        if ledger_off:
            _stub_ledger()
        if model_const:
            _stub_model(cls)
        best = float("inf")
        for _ in range(args.repeat):
            sim = Simulation(p.table, p.instances, make_router(p.router_factory, p.policy_seeds), p.bin_s)
            t = time.process_time()
            sim.run()
            best = min(best, time.process_time() - t)
            if label == "engine":
                events = next(sim.env._eid)  # events scheduled (one id each)
        rows.append((label, args.n / best))
    per_req = events / args.n
    rows.append((f"SimPy alone ({per_req:.2f} events per request)", simpy_events_per_s() / per_req))
    print(f"n={args.n:,} rate={args.rate} req/s, CPU time of Simulation.run, best of {args.repeat}")
    print("| bound | req/s per CPU-second |\n| --- | ---: |")
    for label, rate in rows:
        print(f"| {label} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
