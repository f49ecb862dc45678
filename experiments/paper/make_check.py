"""Write the paper's regression-check experiments from the planner's choices.

    python experiments/paper/make_check.py && greensim check --record

Also, for the sensitivity study's presets ``PRESETS`` (experiments/paper/regimes.yaml), the
new-only baseline and the pick at the workload of the preset's largest saving, from the
committed study (experiments/paper/results/sensitivity/picks.csv), with the regime's carbon
options written out: ``paper_<preset>_{new_only,pick}.yaml``.

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


PRESETS = ("operator", "paper_like")


def write_preset_checks() -> None:
    import pandas as pd
    import sensitivity as sens

    from greensim.experiment.overrides import apply_overrides
    from greensim.planning import candidate_experiments

    reg = sens.load_regimes(HERE / "regimes.yaml")
    picks = pd.read_csv(HERE / "results" / "sensitivity" / "picks.csv")
    for name in PRESETS:
        p = reg["presets"][name]
        m = picks[(picks["space"] == "paper") & picks["comparable"]]
        for a in sens.AXES:
            m = m[m[a].astype(str) == str(p[a])]
        row = m.loc[m["reduction_pct"].idxmax()]
        plan_path = HERE / reg["apps"][row["app"]]
        plan_data = load_yaml(plan_path)
        wl = plan_data["workload"]
        key = "workload.arrivals.rate_rps" if "arrivals" in wl else "workload.rate_rps"
        rate = (wl["arrivals"] if "arrivals" in wl else wl)["rate_rps"] * float(row["rate_scale"])
        cands = {
            c.name: c
            for c in candidate_experiments(plan_path, {"search.modes": reg["search_spaces"]["paper"], key: rate})
        }
        ov = sens.regime_overrides(p, float(reg["axes"]["grid"][p["grid"]]), plan_data)
        ov.update(
            {
                "slo.ttft_s": plan_data["slo"]["ttft_s"] * float(row["slo_scale"]),
                "slo.tpot_s": plan_data["slo"]["tpot_s"] * float(row["slo_scale"]),
            }
        )
        for label, col in (("new_only", "baseline_config"), ("pick", "pick_config")):
            exp = apply_overrides(cands[row[col]].experiment.model_dump(mode="json", exclude_defaults=True), ov)
            exp["name"] = f"check_paper_{name}_{label}"
            exp.pop("output", None)
            full = cands[row[col]].experiment.model_dump(mode="json")["carbon"]
            exp["carbon"] = {**{k: full[k] for k in ("pue", "lifetime_years")}, **exp["carbon"]}
            head = (
                f"# Regression check of the sensitivity study's preset '{name}' (README 'Does greensim reproduce\n"
                f"# GreenLLM?'): {row['app']} at {row['rate_scale']:g}x load, SLO x{row['slo_scale']:g}, "
                f"{'new-only baseline' if label == 'new_only' else 'pick'} {row[col]}\n"
                f"# (study: {row[col.replace('config', 'carbon_g_per_request')]:.6g} g/request; saving {row['reduction_pct']:.1f} %).\n"
                f"# Written by experiments/paper/make_check.py from experiments/paper/results/sensitivity; do not edit by hand.\n"
            )
            out = HERE.parent / "check" / f"paper_{name}_{label}.yaml"
            out.write_text(head + yaml.safe_dump(exp, sort_keys=False, default_flow_style=None, width=110))
            print(out)


if __name__ == "__main__":
    main()
    write_preset_checks()
