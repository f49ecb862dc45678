"""Shared fixtures: small experiments as dicts, and the path of the shared data."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
# experiments/paper/paper.py is an experiment script, not part of the package: tests import it as `paper`
sys.path.insert(0, str(ROOT / "experiments" / "paper"))

BASE = {
    "name": "t",
    "seed": 1,
    "model": "Llama-2-7B",
    "workload": {
        "kind": "poisson",
        "rate_rps": 4.0,
        "n_requests": 200,
        "input_tokens": {"dist": "lognormal", "median": 400, "sigma": 0.8, "max": 4000},
        "output_tokens": {"dist": "lognormal", "median": 100, "sigma": 0.8, "max": 1000},
    },
    "cluster": {"router": "round_robin", "instances": [{"gpu": "A100-80GB", "count": 2}]},
    "slo": {"ttft_s": 1.0, "tpot_s": 0.1},
    "simulation": {"progress": False},
    "output": {"plots": False},
}


def make_experiment(**updates):
    """BASE with dotted-path updates applied (as greensim.experiment.overrides.apply_overrides)."""
    from greensim.experiment.overrides import apply_overrides

    return apply_overrides(copy.deepcopy(BASE), updates)


@pytest.fixture
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"expected ../shared/data beside the repo at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="module")
def monkeypatch_module():
    """A module-scoped monkeypatch (hypothesis re-runs a test body many times per fixture)."""
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
