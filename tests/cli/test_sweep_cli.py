"""CLI: greensim sweep writes one parquet table and summary plots; bad input exits 2."""

import json
import socket

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import make_experiment

from greensim.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)))


@pytest.fixture
def files(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(make_experiment(**{"workload.n_requests": 60, "output.plots": True})))
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump({"grid": {"workload.rate_rps": [2.0, 8.0], "cluster.instances.0.count": [1, 2]}, "seeds": 1})
    )
    return exp, grid


def test_sweep_writes_table_plots_and_uses_cache(files, tmp_path):
    exp, grid = files
    args = ["sweep", exp, "--grid", grid, "--workers", 1, "--out", tmp_path / "out", "--cache-dir", tmp_path / "c"]
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert "4 runs (0 from cache, 0 failed)" in res.output
    (folder,) = (tmp_path / "out" / "t").iterdir()
    for name in ["sweep.parquet", "sweep.yaml", "carbon_vs_slo.png", "heatmap.png", "manifest.json"]:
        assert (folder / name).is_file(), name
    df = pd.read_parquet(folder / "sweep.parquet")
    assert len(df) == 4 and set(df["cluster.instances.0.count"]) == {1, 2}
    assert (df["status"] == "ok").all() and df["carbon_gco2"].gt(0).all()
    assert json.loads((folder / "manifest.json").read_text())["n_runs"] == 4
    again = invoke(*args)
    assert "4 runs (4 from cache, 0 failed)" in again.output
    pd.testing.assert_frame_equal(
        df.drop(columns="cached"), pd.read_parquet(folder / "sweep.parquet").drop(columns="cached")
    )


def test_plain_grid_file_and_seeds_option(tmp_path, files):
    exp, _ = files
    grid = tmp_path / "plain.yaml"
    grid.write_text("workload.rate_rps: [3.0]\n")
    res = invoke(
        "sweep", exp, "--grid", grid, "--seeds", 3, "--workers", 1, "--no-cache", "--no-plots", "--out", tmp_path / "o"
    )
    assert res.exit_code == 0, res.output
    (folder,) = (tmp_path / "o" / "t").iterdir()
    df = pd.read_parquet(folder / "sweep.parquet")
    assert df["replicate"].tolist() == [0, 1, 2] and df["seed"].nunique() == 3
    assert not (folder / "carbon_vs_slo.png").exists()


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "grid_text,extra,pattern",
    [
        ("grid: {workload.rate_rps: []}\n", [], r"grid\.workload\.rate_rps: the axis is empty"),
        ("grid: {workload.rat: [1]}\n", [], r"override 'workload\.rat'.*Did you mean 'workload\.rate_rps'"),
        ("grid: {workload.rate_rps: [1]}\nseed: 3\n", [], r"unknown top-level key\(s\) \['seed'\]"),
        ("", [], r"--grid .*: the file is empty"),
        ("grid:\n", [], r"grid: is empty.*workload\.rate_rps: \[2, 4, 8\]"),
        ("grid: {workload.rate_rps: [1]}\ngrid: {workload.rate_rps: [2]}\n", [], r"duplicate key 'grid' at line 2"),
        ("grid: {workload.rate_rps: [1]}\n", ["--set", "cluster.routr=x"], r"override 'cluster\.routr'"),
        (
            "grid: {workload.rate_rps: [1]}\n",
            ["--backend", "dask", "--timeout", "1", "--scheduler", "SCHED"],
            r"no scheduler answered at tcp://127\.0\.0\.1:\d+ within 1 s",
        ),
    ],
)
def test_bad_sweep_input_exits_2_before_running(tmp_path, files, grid_text, extra, pattern):
    exp, _ = files
    g = tmp_path / "bad.yaml"
    g.write_text(grid_text)
    extra = [f"tcp://127.0.0.1:{_port()}" if a == "SCHED" else a for a in extra]
    res = invoke("sweep", exp, "--grid", g, "--no-cache", "--out", tmp_path / "o", *extra)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    import re

    assert re.search(pattern, res.output, re.S), res.output
    assert not (tmp_path / "o").exists()


def test_missing_grid_file_exits_2(files, tmp_path):
    exp, _ = files
    res = invoke("sweep", exp, "--grid", tmp_path / "nope.yaml")
    assert res.exit_code == 2 and "no such file" in res.output


def test_run_with_unknown_set_key_exits_2_naming_it(files):
    exp, _ = files
    res = invoke("run", exp, "--set", "workload.rate=3", "--no-plots")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "override 'workload.rate'" in res.output and "Did you mean 'workload.rate_rps'?" in res.output
