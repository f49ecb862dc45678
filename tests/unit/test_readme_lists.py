"""The README's lists match the code (issue 18): routers and decode routers against the registries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from greensim.policies import DECODE_ROUTERS, ROUTERS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _block(marker: str) -> str:
    m = re.search(rf"<!-- {marker}: begin[^>]*-->(.*?)<!-- {marker}: end -->", README, re.S)
    assert m, f"README has no '<!-- {marker}: begin -->' ... '<!-- {marker}: end -->' block"
    return m.group(1)


def _builtins(reg) -> set:
    return {n for n in reg.names() if getattr(reg.get(n), "__module__", "").startswith("greensim.")}


@pytest.mark.parametrize(
    "marker, reg, pattern",
    [("routers", ROUTERS, r"^\| `([a-z0-9_]+)` \|"), ("decode routers", DECODE_ROUTERS, r"`([a-z0-9_]+)`")],
)
def test_readme_lists_every_builtin_router(marker, reg, pattern):
    listed = re.findall(pattern, _block(marker), re.M)
    assert len(listed) == len(set(listed))
    assert set(listed) == _builtins(reg)


def _results_files() -> set:
    """The file names README "Running experiments" lists for a run's results folder."""
    m = re.search(r"A results folder holds(.*?)\n\n", README, re.S)
    assert m
    return set(re.findall(r"`([a-z_]+\.(?:parquet|csv|json|yaml|png))`", m.group(1)))


@pytest.mark.parametrize(
    "experiment, overrides",
    [
        (None, {"workload.n_requests": 60}),  # the quickstart: bands.png with the default uncertainty
        ("dpd_a100_v100.yaml", {"workload.n_requests": 40, "performance.uncertainty": "none"}),
        (None, {"workload.n_requests": 30, "performance.uncertainty": "none", "output.iterations": True}),
    ],
)
def test_readme_lists_every_file_a_run_writes(tmp_path, experiment, overrides):
    import greensim

    exp = None if experiment is None else str(Path(__file__).resolve().parents[2] / "experiments" / experiment)
    res = greensim.run(exp, overrides={**overrides, "simulation.progress": False}, out_dir=tmp_path)
    written = {p.name for p in res.folder.iterdir()}
    assert written <= _results_files(), written - _results_files()
