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
