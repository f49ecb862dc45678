"""CLI: greensim plan writes the frontier, the decision and a winner.yaml that greensim run reproduces."""

import json
from pathlib import Path

import pandas as pd
import yaml
from click.testing import CliRunner

from greensim.cli import main

HERE = Path(__file__).resolve()
PLAN = HERE.parents[2] / "experiments" / "plans" / "chat_a100_v100.yaml"


def invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_plan_writes_folder_and_winner_runs(tmp_path):
    res = invoke(
        "plan",
        PLAN,
        "--out",
        tmp_path / "out",
        "--quiet",
        "--set",
        "workload.n_requests=200",
        "--set",
        "search.short_requests=80",
    )
    assert res.exit_code == 0, res.output
    assert "winner: " in res.output and "candidates:" in res.output
    folder = tmp_path / "out" / "chat_a100_v100" / "plan"
    for name in [
        "frontier.csv",
        "frontier.parquet",
        "plan.json",
        "winner.yaml",
        "frontier.png",
        "manifest.json",
        "plan_spec.yaml",
    ]:
        assert (folder / name).is_file(), name
    df = pd.read_parquet(folder / "frontier.parquet")
    assert len(df) == 18 and df["winner"].sum() == 1
    decision = json.loads((folder / "plan.json").read_text())
    assert decision["feasible"] is True and decision["winner"]["name"] == df.loc[df["winner"], "candidate"].iloc[0]
    assert decision["winner"]["slo_attainment_frac"] >= 0.9
    # the winner file is an ordinary experiment: greensim run reproduces the confirming run
    win = yaml.safe_load((folder / "winner.yaml").read_text())
    assert win["workload"]["n_requests"] == 200
    run = invoke("run", folder / "winner.yaml", "--out", tmp_path / "runs")
    assert run.exit_code == 0, run.output
    (summary,) = (tmp_path / "runs").rglob("summary.json")
    s = json.loads(summary.read_text())
    assert s["carbon_gco2_per_request"] == decision["winner"]["carbon_g_per_request"]
    assert s["slo_attainment_frac"] == decision["winner"]["slo_attainment_frac"]
    # ... and its uncertainty bands (performance.uncertainty: corners) are the plan's
    for m in ("carbon_gco2_per_request", "slo_attainment_frac", "ttft_s_p90"):
        assert s["bands"][m] == decision["winner"]["bands"][m], m
    assert "[" in res.output.split("winner: ")[1].splitlines()[0]  # the winner line shows [low, high]


def test_plan_bad_file_exits_2_naming_the_field(tmp_path):
    bad = yaml.safe_load(PLAN.read_text())
    bad["inventory"][0]["gpu"] = "A100-80G"
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(bad))
    res = invoke("plan", p, "--out", tmp_path / "out", "--quiet")
    assert res.exit_code == 2
    assert "inventory.0.gpu" in res.output and "A100-80GB" in res.output
    assert not (tmp_path / "out").exists()


def test_plan_confidence_option(tmp_path):
    """--confidence pessimistic: the winner meets the target at the pessimistic band corner too."""
    res = invoke(
        "plan",
        PLAN,
        "--out",
        tmp_path,
        "--quiet",
        "--no-plots",
        "--confidence",
        "pessimistic",
        "--set",
        "workload.n_requests=200",
        "--set",
        "search.short_requests=80",
        "--set",
        "search.modes=[colocated]",
    )
    assert res.exit_code == 0, res.output
    assert "(nominal and pessimistic corner)" in res.output
    decision = json.loads((tmp_path / "chat_a100_v100" / "plan" / "plan.json").read_text())
    assert decision["confidence"] == "pessimistic"
    w = decision["winner"]
    assert min(w["slo_attainment_frac"], w["slo_attainment_frac_pessimistic"]) == w["decision_attainment_frac"] >= 0.9
    bad = invoke("plan", PLAN, "--out", tmp_path, "--confidence", "sure")
    assert bad.exit_code == 2 and "sure" in bad.output
