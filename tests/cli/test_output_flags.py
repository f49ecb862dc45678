"""-q/--quiet and -v/--verbose: quiet drops the progress bar and the tables (the results path
and essential lines remain); verbose logs INFO lines on stderr. Also: `python -m greensim.cli`,
and `greensim --help` stays light."""

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import make_experiment

from greensim.cli import main

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "experiments" / "plans" / "chat_a100_v100.yaml"
REPLAN = ROOT / "experiments" / "online_replan.yaml"


def invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def lines(res):
    return [s for s in res.output.splitlines() if s.strip()]


@pytest.fixture
def exp(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(make_experiment(**{"workload.n_requests": 60})))
    return p


def test_run_quiet_prints_only_the_results_path(exp, tmp_path):
    res = invoke("run", exp, "--out", tmp_path / "o", "--quiet")
    assert res.exit_code == 0, res.output
    (folder,) = (tmp_path / "o" / "t").iterdir()
    assert lines(res) == [f"results: {folder}"]
    assert (folder / "summary.json").is_file()
    loud = invoke("run", exp, "--out", tmp_path / "o")
    assert "SLO attainment" in loud.output and f"results: {folder}" in loud.output


def test_run_verbose_logs_info_lines_and_keeps_the_summary(exp, tmp_path):
    res = invoke("run", exp, "--out", tmp_path / "o", "-v")
    assert res.exit_code == 0, res.output
    assert "INFO greensim.api.run: t: 60 requests" in res.output
    assert "SLO attainment" in res.output and "results: " in res.output


def test_verbose_logging_ends_with_the_command(exp, tmp_path):
    root, pkg = logging.getLogger(), logging.getLogger("greensim")
    before = (list(root.handlers), pkg.level)
    assert invoke("run", exp, "--out", tmp_path / "o", "-v").exit_code == 0
    assert (list(root.handlers), pkg.level) == before
    assert "INFO" not in invoke("run", exp, "--out", tmp_path / "o").output


@pytest.mark.parametrize("cmd", ["run", "sweep", "aging", "check", "plan", "replan"])
def test_quiet_and_verbose_exclude_each_other(exp, cmd):
    args = {
        "run": ["run", exp],
        "sweep": ["sweep", exp, "--grid", exp],
        "aging": ["aging", "sweep", exp],
        "check": ["check"],
        "plan": ["plan", PLAN],
        "replan": ["replan", REPLAN],
    }[cmd]
    res = invoke(*args, "-q", "-v")
    assert res.exit_code == 2 and "exclude each other" in res.output


def test_sweep_quiet_has_no_progress_bar_and_no_summary(exp, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("workload.rate_rps: [2.0, 4.0]\n")
    base = ["sweep", exp, "--grid", grid, "--workers", 1, "--no-cache", "--no-plots", "--out", tmp_path / "o"]
    loud = invoke(*base)
    assert loud.exit_code == 0, loud.output
    assert "run/s" in loud.output and "greensim sweep: t: 2 runs" in loud.output  # tqdm bar, summary line
    res = invoke(*base, "-q")
    assert res.exit_code == 0, res.output
    (folder,) = (tmp_path / "o" / "t").iterdir()
    assert lines(res) == [f"results: {folder}"]
    verbose = invoke(*base, "--verbose")
    assert "INFO greensim.api.sweep: sweep t: 2 runs" in verbose.output


def test_plan_quiet_drops_the_frontier_table_and_verbose_logs_each_simulation(tmp_path):
    base = [
        "plan",
        PLAN,
        "--out",
        tmp_path / "out",
        "--no-plots",
        "--set",
        "workload.n_requests=200",
        "--set",
        "search.short_requests=80",
    ]
    res = invoke(*base, "-q")
    assert res.exit_code == 0, res.output
    assert "predicted_carbon_g_per_request" not in res.output and "sim/s" not in res.output
    assert lines(res)[0].startswith("18 candidates:") and "winner: " in res.output
    assert f"results: {tmp_path / 'out' / 'chat_a100_v100' / 'plan'}" in res.output
    res = invoke(*base, "-v", "--rows", 3)
    assert res.exit_code == 0, res.output
    assert "INFO greensim.planning.search: plan chat_a100_v100: short simulation of" in res.output
    assert "predicted_carbon_g_per_request" in res.output


def test_replan_quiet_and_verbose(tmp_path):
    base = ["replan", REPLAN, "--no-plots", "--out", tmp_path / "o", "--set", "workload.duration_s=1800"]
    res = invoke(*base, "--quiet")
    assert res.exit_code == 0, res.output
    assert len(lines(res)) == 1 and lines(res)[0].startswith("results: ")  # no window lines, no table
    res = invoke(*base, "-v")
    assert res.exit_code == 0, res.output
    assert "INFO greensim.planning.online: replan online_replan: window 1/1" in res.output
    assert "window 1/1 new_only" in res.output and "strategy" in res.output


def test_aging_sweep_quiet_and_verbose(exp, tmp_path):
    base = ["aging", "sweep", exp, "--ages", "0,4", "--out", tmp_path / "a"]
    res = invoke(*base, "-q")
    assert res.exit_code == 0, res.output
    assert lines(res) == [f"table: {tmp_path / 'a' / 'age_sweep.csv'}  plot: {tmp_path / 'a' / 'age_sweep.png'}"]
    res = invoke(*base, "-v")
    assert res.exit_code == 0, res.output
    assert "INFO greensim.api.aging: aging sweep: group 0 at 4 years" in res.output and "age_years" in res.output


def test_check_quiet_prints_failures_and_the_count_only(tmp_path):
    from greensim.api.check import default_check_dir

    shutil.copy(default_check_dir() / "colocated_a100.yaml", tmp_path / "colocated_a100.yaml")
    rec = json.loads((default_check_dir() / "recorded.json").read_text())
    (tmp_path / "recorded.json").write_text(json.dumps({"colocated_a100": rec["colocated_a100"]}))
    loud = invoke("check", "--dir", tmp_path)
    assert loud.exit_code == 0, loud.output
    assert "ok   colocated_a100" in loud.output
    res = invoke("check", "--dir", tmp_path, "-q")
    assert res.exit_code == 0, res.output
    assert lines(res) == [f"{len(rec['colocated_a100'])}/{len(rec['colocated_a100'])} metrics within tolerance"]
    res = invoke("check", "--dir", tmp_path, "-v")
    assert "INFO greensim.api.check: check: running colocated_a100" in res.output
    # a failing metric is essential: -q still prints it (and exits 1)
    rec["colocated_a100"]["energy_kwh"]["value"] *= 2
    (tmp_path / "recorded.json").write_text(json.dumps({"colocated_a100": rec["colocated_a100"]}))
    res = invoke("check", "--dir", tmp_path, "-q")
    assert res.exit_code == 1 and len(lines(res)) == 2 and lines(res)[0].startswith("FAIL colocated_a100")


def test_python_dash_m_greensim_cli_and_light_help():
    res = subprocess.run([sys.executable, "-m", "greensim.cli", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "Usage: greensim" in res.stdout and "sweep" in res.stdout and "trace" in res.stdout
    code = (
        "import sys; from greensim.cli import main\n"
        "for args in (['--help'], ['run', '--help'], ['trace', 'stats', '--help'], ['plan', '--help']):\n"
        "    main(args, standalone_mode=False)\n"
        "print(sorted(m for m in ('pandas', 'matplotlib', 'pydantic', 'numpy') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"
