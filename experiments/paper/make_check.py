"""Write the paper's regression-check experiments from the planner's choices.

    python experiments/paper/make_check.py && greensim check --record

For one scenario of scenarios.yaml (chat, SLO x2, medium grid, default lifetimes) it runs
the same two searches as run_all.py (new-only, and GreenLLM's full search) and writes the two
chosen deployments as plain experiment files into experiments/check/, so `greensim check`
(CI) re-runs both and compares their summaries with recorded values.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from paper import Scenario, load_paper_spec, scenario_overrides

from greensim.experiment.load import load_yaml
from greensim.planning import plan

HERE = Path(__file__).resolve().parent
SCENARIO = Scenario(app="chat", slo_scale=2, grid="medium", lifetime="new5_old_sunk")


def main() -> None:
    spec, base = load_paper_spec(HERE / "scenarios.yaml")
    path = base / spec.apps[SCENARIO.app]
    ov = scenario_overrides(spec, SCENARIO, load_yaml(path))
    picks = {
        "new_only": plan(path, overrides={**ov, "search.modes": ["colocated"]}).best,
        "greenllm": plan(path, overrides=ov).best,
    }
    for label, c in picks.items():
        exp = c.experiment.model_dump(mode="json", exclude_defaults=True)
        exp["name"] = f"check_paper_chat_{label}"
        exp.pop("output", None)
        full = c.experiment.model_dump(mode="json")["carbon"]
        # keep the carbon inputs explicit even where they equal today's defaults
        exp["carbon"] = {**{k: full[k] for k in ("intensity", "pue", "lifetime_years")}, **exp.get("carbon", {})}
        head = (
            f"# Regression check of the GreenLLM reproduction (README 'Does greensim reproduce GreenLLM?'):\n"
            f"# scenario {SCENARIO.label}, {'new-only baseline' if label == 'new_only' else 'GreenLLM'}'s pick\n"
            f"# {c.name} (carbon {c.carbon_g_per_request:.6g} g/request, attainment {c.slo_attainment_frac:.4g}).\n"
            f"# Written by experiments/paper/make_check.py from the planner's candidate; do not edit by hand.\n"
        )
        out = HERE.parent / "check" / f"paper_chat_{label}.yaml"
        out.write_text(head + yaml.safe_dump(exp, sort_keys=False, default_flow_style=None, width=110))
        print(out)


if __name__ == "__main__":
    main()
