"""Planner speed and the accuracy of its pruning stages (issue 8).

For each plan: the pruned search and brute force (alternating, ``--repeats`` times, wall
times and their ratio within one run), the number of simulations per stage, whether both
pick the same winner; then, over every buildable candidate, the gap between the theory's
predicted carbon and the full simulation's, and between a short simulation's attainment
and the full one's (what ``search.prune_margin`` and ``search.short_slack`` must cover).

    python benchmarks/bench_planner.py                       # the example plans
    python benchmarks/bench_planner.py experiments/plans/chat_a100_t4.yaml --repeats 3
    python benchmarks/bench_planner.py experiments/paper/chat.yaml --set slo.ttft_s=0.4 --set slo.tpot_s=0.2 \
        --set carbon.intensity.gco2_per_kwh=49.4 --set carbon.gpu_lifetime_years.A100-80GB=3   # the screening miss
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "plans", nargs="*", default=[str(p) for p in sorted((ROOT / "experiments" / "plans").glob("*.yaml"))]
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    a = ap.parse_args()
    from greensim.planning import plan
    from greensim.planning.search import _shorten, _simulate

    for path in a.plans:
        tp, tb = [], []
        for _ in range(a.repeats):  # alternate A/B: the machine is shared and noisy
            t = time.perf_counter()
            fast = plan(path, a.overrides)
            tp.append(time.perf_counter() - t)
            t = time.perf_counter()
            brute = plan(path, a.overrides, prune=False)
            tb.append(time.perf_counter() - t)
        ratio = statistics.median(b / p for b, p in zip(tb, tp))
        print(f"\n== {Path(path).name}: {len(fast.candidates)} candidates")
        print(
            f"pruned:      {statistics.median(tp):6.2f} s  short sims {fast.stats['n_short_simulations']:3d}  "
            f"full sims {fast.stats['n_full_simulations']:3d}  stages {fast.stats['stages']}"
        )
        print(
            f"brute force: {statistics.median(tb):6.2f} s  full sims {brute.stats['n_full_simulations']:3d}  "
            f"-> brute / pruned wall = {ratio:.1f}x (median of {a.repeats} alternating pairs)"
        )
        print(
            f"winner: pruned {fast.best.name} ({fast.best.carbon_g_per_request:.5g}), brute "
            f"{brute.best.name} ({brute.best.carbon_g_per_request:.5g}); same: {fast.best.name == brute.best.name}"
        )
        gaps, att, sc = [], [], []
        short_n = fast.spec.search.short_requests
        target = fast.spec.attainment_target
        for c in brute.candidates:
            if c.summary is None:
                continue
            if np.isfinite(c.predicted_carbon_g_per_request):
                gaps.append(c.predicted_carbon_g_per_request / c.carbon_g_per_request - 1)
            s = _simulate(_shorten(c.experiment, short_n))
            att.append((c.slo_attainment_frac, s["slo_attainment_frac"]))
            sc.append(
                (
                    s["carbon_gco2_per_request"] / c.summary["carbon_gco2_per_request"],
                    s["steady_carbon_gco2_per_request"] / c.summary["carbon_gco2_per_request"],
                )
            )
        g = np.array(gaps)
        print(
            f"theory vs full simulation, carbon per request ({len(g)} candidates the theory does not call "
            f"overloaded): median {np.median(g):+.1%}, min {g.min():+.1%}, max {g.max():+.1%}"
        )
        r = np.array(sc)
        print(
            f"short / full carbon per request: plain {r[:, 0].min():.3f}-{r[:, 0].max():.3f} "
            f"(spread {r[:, 0].max() / r[:, 0].min():.3f}x), arrival-window score {r[:, 1].min():.3f}-"
            f"{r[:, 1].max():.3f} (spread {r[:, 1].max() / r[:, 1].min():.3f}x)"
        )
        d = np.array([s - f for f, s in att])
        near = np.array([f >= target - 0.15 for f, _ in att])
        if near.any():
            rn = r[near]
            print(
                f"  among candidates within 0.15 of the target: plain spread {rn[:, 0].max() / rn[:, 0].min():.3f}x, "
                f"arrival-window spread {rn[:, 1].max() / rn[:, 1].min():.3f}x"
            )
        print(
            f"short ({short_n} requests) - full attainment: median {np.median(d):+.3f}, "
            f"min {d.min():+.3f}, max {d.max():+.3f}; among candidates within 0.15 of the target: "
            f"min {d[near].min() if near.any() else float('nan'):+.3f}"
        )


if __name__ == "__main__":
    main()
