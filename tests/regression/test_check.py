"""`greensim check`: recorded values reproduce, and a real model change is caught."""

import shutil

import yaml
from click.testing import CliRunner

from greensim.api.check import check_experiments, default_check_dir
from greensim.cli import main


def test_recorded_values_reproduce_exactly():
    """Same experiment + seed => identical numbers, so every metric matches its recorded value."""
    rows = check_experiments()
    assert len(rows) >= 30
    assert all(r.value == r.recorded or (r.value != r.value and r.recorded != r.recorded) for r in rows)


def test_a_slower_engine_fails_the_check(tmp_path):
    """Quadrupling the per-iteration overhead moves latencies beyond their seed-spread tolerance."""
    d = tmp_path / "check"
    shutil.copytree(default_check_dir(), d)
    f = d / "colocated_a100.yaml"
    exp = yaml.safe_load(f.read_text())
    exp["performance"] = {"iteration_overhead_s": 0.0108}
    f.write_text(yaml.safe_dump(exp))
    res = CliRunner().invoke(main, ["check", "--dir", str(d)])
    assert res.exit_code == 1, res.output
    assert "FAIL colocated_a100" in res.output and "tpot_s_p50" in res.output


def test_missing_record_is_a_clear_error(tmp_path):
    shutil.copy(default_check_dir() / "colocated_a100.yaml", tmp_path / "x.yaml")
    res = CliRunner().invoke(main, ["check", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "recorded.json missing" in res.output


def _fails_when(tmp_path, case, change):
    """Copy one recorded case with its values, apply ``change`` to the experiment, re-check it:
    the metrics (name -> recorded, now) that moved beyond their tolerances."""
    import json

    d = tmp_path / "check"
    d.mkdir()
    exp = yaml.safe_load((default_check_dir() / f"{case}.yaml").read_text())
    change(exp)
    (d / f"{case}.yaml").write_text(yaml.safe_dump(exp))
    rec = json.loads((default_check_dir() / "recorded.json").read_text())
    (d / "recorded.json").write_text(json.dumps({case: rec[case]}))
    return {r.metric: (r.recorded, r.value) for r in check_experiments(d) if not r.ok}


def test_new_cases_catch_what_they_guard(tmp_path):
    """Each case added for issue 17 fails when the feature it guards is broken: the hourly series
    replaced by a constant at the 2023 mean of the same region; the cited acceptance entry replaced
    by the assumed 0.7; the carbon-aware router replaced by round robin; the old GPUs' failures
    switched off (their aging slowdown kept)."""

    def constant(e):
        e["carbon"]["intensity"] = {"kind": "constant", "gco2_per_kwh": 260.7}  # US-CAL-CISO 2023 mean

    def assumed(e):
        e["cluster"]["instances"][0]["speculative"]["acceptance"] = "assumed-0.7"

    def round_robin(e):
        e["cluster"]["router"] = "round_robin"

    def no_failures(e):
        del e["cluster"]["instances"][1]["aging"]["failures"]

    for case, change, metric in (
        ("aging_failures_dpd", no_failures, "ttft_s_p99"),
        ("hourly_intensity", constant, "operational_gco2"),
        ("dsd_v100_a100", assumed, "tpot_s_p50"),
        ("carbon_aware_routing", round_robin, "operational_gco2"),
    ):
        sub = tmp_path / case
        sub.mkdir()
        failed = _fails_when(sub, case, change)
        assert metric in failed, (case, failed)


def test_tolerances_are_smaller_than_the_values_they_guard():
    """A tolerance as large as its value would pass a metric that dropped to zero. One entry,
    recorded before this rule, was capped with it."""
    import json

    rec = json.loads((default_check_dir() / "recorded.json").read_text())
    known: set = set()  # capped at half the value since (greensim.api.check.TOL_CAP_FRAC)
    bad = {
        (case, m)
        for case, ms in rec.items()
        for m, r in ms.items()
        if r["value"] is None or r["tolerance"] >= abs(r["value"])
    }
    assert bad == known
