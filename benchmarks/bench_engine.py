"""Engine speed: simulated requests per wall-clock second and peak memory.

Workload: Poisson arrivals with Azure LLM 2023 conversation lengths (resampled from
../shared/data/traces/azure_llm_2023_conv.csv), Llama-3.1-8B on N A100-80GB instances
(join-shortest-queue), at a load of about 70% of capacity. Capacity is measured first
by a saturation run (all requests at t~0), so the load level holds if the performance
model changes.

    python benchmarks/bench_engine.py                 # 100k requests, 4 instances
    python benchmarks/bench_engine.py --n 1000000     # memory at 1M requests
    python benchmarks/bench_engine.py --gpu H100-SXM --perf profiled   # measured-profile model
    python benchmarks/bench_engine.py --mode dpd      # prefill/decode split (see experiment())
    python benchmarks/bench_engine.py --mode dsd      # speculative decoding split

Prints one line per run; run it on an otherwise idle core (numbers are noisy).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from greensim.assembly.prepare import make_router, prepare
from greensim.assembly.simulate import simulate
from greensim.core.simulation import Simulation
from greensim.experiment.load import parse_experiment
from greensim.results import build_tables

TRACE = Path(__file__).resolve().parents[1].parent / "shared/data/traces/azure_llm_2023_conv.csv"


GPU, PERF = "A100-80GB", "kernel"  # set from --gpu / --perf in main()


def experiment(n: int, rate: float, instances: int, chunked: bool, seed: int = 0, mode: str = "colocated") -> dict:
    lengths = ({"dist": "empirical", "path": str(TRACE), "column": c} for c in ("input_tokens", "output_tokens"))
    inp, out = lengths
    if mode == "dpd":
        # 1 A100 prefill instance per 3 V100-32GB decode instances (``instances`` groups of 4
        # GPUs), KV over InfiniBand HDR; the 10 us latency is this benchmark's assumption.
        g = max(1, instances // 4)
        return {
            "name": "bench",
            "seed": seed,
            "model": "Llama-3.1-8B",
            "workload": {
                "kind": "poisson",
                "rate_rps": rate,
                "n_requests": n,
                "input_tokens": inp,
                "output_tokens": out,
            },
            "cluster": {
                "router": "join_shortest_queue",
                "instances": [
                    {
                        "gpu": "A100-80GB",
                        "count": g,
                        "max_batched_tokens": 16384,
                        "chunked_prefill": chunked,
                        "role": "prefill",
                    },
                    {
                        "gpu": "V100-32GB",
                        "count": 3 * g,
                        "max_batched_tokens": 16384,
                        "chunked_prefill": chunked,
                        "role": "decode",
                    },
                ],
                "disaggregation": {
                    "decode_router": "least_loaded",
                    "link": {"kind": "infiniband_hdr", "latency_s": 1e-5, "scope": "per_pair"},
                },
            },
            "slo": {"ttft_s": 1.0, "tpot_s": 0.1},
            "simulation": {"progress": False},
        }
    spec = None
    if mode == "dsd":
        # each A100 target paired with a V100-32GB running Llama-3.2-1B; alpha and gamma
        # are this benchmark's choice (alpha is required: it depends on pair and data)
        spec = {
            "draft_model": "Llama-3.2-1B",
            "draft_gpu": "V100-32GB",
            "alpha": 0.7,
            "gamma": 4,
            "link": {"kind": "pcie_gen4_x16", "latency_s": 1e-5},
        }
    return {
        "name": "bench",
        "seed": seed,
        "model": "Llama-3.1-8B",
        "workload": {"kind": "poisson", "rate_rps": rate, "n_requests": n, "input_tokens": inp, "output_tokens": out},
        "cluster": {
            "router": "join_shortest_queue",
            "instances": [
                {
                    "gpu": GPU,
                    "count": instances,
                    "max_batched_tokens": 16384,
                    "chunked_prefill": chunked,
                    "speculative": spec,
                }
            ],
        },
        "slo": {"ttft_s": 1.0, "tpot_s": 0.1},
        "simulation": {"progress": False},
        "performance": {"model": PERF},
    }


def capacity_rps(instances: int, chunked: bool, mode: str = "colocated") -> float:
    """Throughput at saturation: 20k requests arriving within ~0.2 s."""
    p = prepare(parse_experiment(experiment(20000, 1e5, instances, chunked, mode=mode)))
    t = simulate(p)
    return t.summary["throughput_rps"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000, help="requests to simulate")
    ap.add_argument("--instances", type=int, default=4)
    ap.add_argument("--load", type=float, default=0.7, help="fraction of saturation throughput")
    ap.add_argument("--chunked", action="store_true", help="chunked prefill")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--gpu", default="A100-80GB", help="catalogue GPU of every instance")
    ap.add_argument(
        "--perf", default="kernel", help="performance model (kernel, the package default | roofline | profiled)"
    )
    ap.add_argument("--mode", choices=["colocated", "dpd", "dsd"], default="colocated")
    a = ap.parse_args()
    global GPU, PERF
    GPU, PERF = a.gpu, a.perf
    cap = capacity_rps(a.instances, a.chunked, a.mode)
    rate = a.load * cap
    p = prepare(parse_experiment(experiment(a.n, rate, a.instances, a.chunked, mode=a.mode)))
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        sim = Simulation(
            p.table,
            p.instances,
            make_router(p.router_factory, p.policy_seeds),
            p.bin_s,
            disaggregation=p.disaggregation() if p.disaggregation is not None else None,
            speculative=p.speculative() if p.speculative is not None else None,
        )
        out = sim.run()
        t1 = time.perf_counter()
        rss_engine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tables = build_tables(out, p.specs, p.intensity, p.experiment.carbon.pue, p.ttft_slo_s, p.tpot_slo_s)
        t2 = time.perf_counter()
        iters = sum(i.n_iterations for i in out.instances)
        s = tables.summary
        print(
            f"mode={a.mode} gpu={GPU} perf={PERF} n={a.n:,} instances={a.instances} chunked={a.chunked} capacity={cap:.1f} req/s "
            f"rate={rate:.1f} req/s | engine {a.n / (t1 - t0):,.0f} req/s ({t1 - t0:.2f} s) | "
            f"engine+tables {a.n / (t2 - t0):,.0f} req/s | iterations {iters:,} | "
            f"TTFT p50 {s['ttft_s_p50']:.3f} s, TPOT p50 {1e3 * s['tpot_s_p50']:.1f} ms | "
            f"peak RSS after engine {rss_engine:.0f} MB, after tables "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
            flush=True,
        )
        del sim, out, tables


if __name__ == "__main__":
    sys.exit(main())
