"""Prefix caching: its hit rate, TTFT and carbon effect on a multi-turn chat workload and on
the Mooncake conversation trace (its ``hash_ids``).

Runs ``prefix_chat.yaml`` beside this script with the cache off, on (join-shortest-queue)
and on with the ``prefix_affinity`` router, at a few session rates; then the first requests
of ``mooncake_fast25_conversation`` (slowed by ``--mooncake-scale``) on two H100s, cache off
and on. Same workload seed everywhere. Prints Markdown tables:

    python experiments/compare_prefix_caching.py [--rates 0.5 1 2] [--n 3000] [--mooncake-n 2000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import greensim

HERE = Path(__file__).resolve().parent
CASES = [
    ("off", {"cluster.instances.0.prefix_caching": False}),
    ("on, join_shortest_queue", {}),
    ("on, prefix_affinity", {"cluster.router": "prefix_affinity"}),
]


def run(overrides: dict) -> dict:
    return greensim.run(HERE / "prefix_chat.yaml", overrides=overrides, write=False, progress=False).summary


def row(label: str, s: dict) -> str:
    hit_t = s.get("prefix_hit_tokens_frac", 0.0)
    hit_r = s.get("prefix_hit_requests_frac", 0.0)
    return (
        f"| {label} | {hit_t:.3f} | {hit_r:.3f} | {s['ttft_s_mean']:.3f} | {s['ttft_s_p90']:.3f} | "
        f"{s['energy_kwh']:.3f} | {1e3 * s['carbon_gco2_per_request']:.3f} | {s['slo_attainment_frac']:.3f} |"
    )


HEAD = (
    "| case | hit tokens | hit requests | TTFT mean s | TTFT p90 s | energy kWh | mgCO2e/request | SLO attainment |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="session starts per second")
    ap.add_argument("--n", type=int, default=3000, help="requests (turns) per run")
    ap.add_argument("--mooncake-n", type=int, default=2000, help="first requests of the Mooncake trace")
    ap.add_argument("--mooncake-scale", type=float, default=0.5, help="rate_scale of the Mooncake trace")
    a = ap.parse_args()
    print(HEAD)
    for rate in a.rates:
        for label, o in CASES:
            s = run({"workload.arrivals.rate_rps": rate, "workload.n_requests": a.n, **o})
            print(row(f"chat {rate:g} sessions/s, {label}", s))
    mooncake = {
        "workload": {
            "kind": "trace",
            "name": "mooncake_fast25_conversation",
            "max_requests": a.mooncake_n,
            "rate_scale": a.mooncake_scale,
        },
        "cluster.instances.0.gpu": "H100-SXM",
    }
    for label, o in CASES:
        s = run({**mooncake, **o})
        print(row(f"Mooncake conversation x{a.mooncake_scale:g}, {label}", s))


if __name__ == "__main__":
    main()
