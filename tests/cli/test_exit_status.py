"""The exit-status contract of README "Exit status" (issue 18): 0 done, 2 bad input (one line, no
traceback), 1 a `greensim check` failure, Ctrl-C or an internal error."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from conftest import make_experiment

import greensim.api.run as api_run
from greensim.base.errors import ConfigError, SimulationInvariantError
from greensim.cli import main


def _exp(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(make_experiment(**{"workload.n_requests": 20, "performance.uncertainty": "none"})))
    return p


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_done_is_0_and_bad_input_is_2(tmp_path):
    p = _exp(tmp_path)
    assert _invoke("run", p, "--out", tmp_path / "o", "-q").exit_code == 0
    res = _invoke("run", p, "--set", "workload.rate_rps=-1", "--out", tmp_path / "o")
    assert res.exit_code == 2 and res.output.startswith("error: ") and "Traceback" not in res.output
    assert _invoke("run", p, "--no-such-option").exit_code == 2  # click usage error


def test_ctrl_c_is_1(tmp_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(api_run, "prepare", interrupted)
    res = _invoke("run", _exp(tmp_path), "--out", tmp_path / "o")
    assert res.exit_code == 1 and "Aborted!" in res.output


def test_internal_error_is_1(tmp_path, monkeypatch):
    def bug(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(api_run, "prepare", bug)
    res = _invoke("run", _exp(tmp_path), "--out", tmp_path / "o")
    assert res.exit_code == 1 and isinstance(res.exception, ZeroDivisionError)


def test_a_broken_simulation_invariant_is_an_internal_error_1(tmp_path, monkeypatch):
    """SimulationInvariantError is a greensim error but not bad input: exit 1, said to be a bug
    (before issue 18 it exited 2 as if the input were wrong)."""

    def broken(*a, **k):
        raise SimulationInvariantError("3 requests arrived but 2 completed")

    monkeypatch.setattr(api_run, "prepare", broken)
    res = _invoke("run", _exp(tmp_path), "--out", tmp_path / "o")
    assert res.exit_code == 1, res.output
    assert "internal error: 3 requests arrived" in res.output and "a bug in greensim" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("exc", [ConfigError("x.y: bad"), SimulationInvariantError("broken")])
def test_a_greensim_error_outside_a_commands_handler_still_follows_the_contract(tmp_path, monkeypatch, exc):
    """The command group catches what a command lets through (here: while printing the summary)."""
    import greensim.cli.run as cli_run

    def raise_it(*a, **k):
        raise exc

    monkeypatch.setattr(cli_run, "bands_footer", raise_it)
    res = _invoke("run", _exp(tmp_path), "--out", tmp_path / "o")
    assert res.exit_code == (1 if isinstance(exc, SimulationInvariantError) else 2), res.output
    assert str(exc) in res.output and "Traceback" not in res.output
