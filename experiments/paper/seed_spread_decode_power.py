"""Seed spread of the largest GreenLLM effect under both decode power models.

    python experiments/paper/seed_spread_decode_power.py      # ~2 min here

Chat, SLO x2, medium grid: experiments/check/paper_chat_new_only.yaml vs paper_chat_greenllm.yaml
(DPD 2 x A100 -> 1 x V100), seeds 1081-1088, performance.decode_power constant and utilization;
prints the reduction per seed and its mean +- std (README "Does greensim reproduce GreenLLM?").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.experiment.load import parse_experiment

CHECK = Path(__file__).resolve().parents[1] / "check"


def main() -> None:
    res = {}
    for mode in ("constant", "utilization"):
        red = []
        for seed in range(1081, 1089):
            c = {}
            for f in ("new_only", "greenllm"):
                d = yaml.safe_load((CHECK / f"paper_chat_{f}.yaml").read_text())
                d["seed"] = seed
                d.setdefault("simulation", {})["progress"] = False
                d["performance"] = {"decode_power": mode}
                c[f] = simulate(prepare(parse_experiment(d))).summary["carbon_gco2_per_request"]
            red.append(100 * (1 - c["greenllm"] / c["new_only"]))
            print(
                f"{mode:12s} seed {seed}: new-only {c['new_only']:.6f} GreenLLM {c['greenllm']:.6f} g/request, "
                f"reduction {red[-1]:.1f} %",
                flush=True,
            )
        res[mode] = {"mean_pct": round(float(np.mean(red)), 2), "std_pct": round(float(np.std(red, ddof=1)), 2)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
