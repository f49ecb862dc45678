"""greensim.sweep: one row per run, derived seeds, failing rows, cache, checks before runs."""

import math

import pandas as pd
import pytest
from conftest import make_experiment

import greensim
import greensim.api.sweep as sw
import greensim.base.version
from greensim.api.backends import BackendError, LocalBackend
from greensim.api.sweep import SweepError, derive_seed, expand_grid
from greensim.base.errors import ConfigError

SMALL = {"workload.n_requests": 60}


class Recording(LocalBackend):
    """An in-process backend that records which experiments it ran."""

    def __init__(self):
        super().__init__(workers=1)
        self.ran = []

    def map_unordered(self, fn, items):
        self.ran.extend(items)
        return super().map_unordered(fn, items)


def base():
    return make_experiment(**SMALL)


def metrics(df):
    """Summary metric columns (everything but bookkeeping that legitimately differs)."""
    return df.drop(columns=["cached", "wall_s"])


def test_rows_follow_grid_order_with_inputs_and_metrics(tmp_path):
    """Cartesian product, last axis fastest, replicates innermost; inputs and metrics as columns."""
    df = sw.sweep(
        base(),
        grid={"workload.rate_rps": [2.0, 8.0], "cluster.router": ["round_robin", "join_shortest_queue"]},
        seeds=2,
        backend=Recording(),
        cache_dir=tmp_path,
        progress=False,
    )
    assert len(df) == 8
    assert list(df["workload.rate_rps"]) == [2.0] * 4 + [8.0] * 4
    assert list(df["cluster.router"][:4]) == ["round_robin"] * 2 + ["join_shortest_queue"] * 2
    assert list(df["replicate"]) == [0, 1] * 4
    assert (df["status"] == "ok").all() and df["error"].isna().all()
    assert (df["n_requests"] == 60).all()
    # A higher arrival rate finishes the same number of requests sooner.
    assert (
        df[df["workload.rate_rps"] == 8.0]["duration_s"].max() < df[df["workload.rate_rps"] == 2.0]["duration_s"].min()
    )


def test_row_equals_a_direct_run_with_the_rows_seed(tmp_path):
    """A row reproduces greensim.run(base, overrides={point, seed}) exactly."""
    df = sw.sweep(
        base(), grid={"workload.rate_rps": [3.0, 6.0]}, backend=Recording(), cache_dir=tmp_path, progress=False
    )
    row = df.iloc[1]
    direct = greensim.run(base(), overrides={"workload.rate_rps": 6.0, "seed": int(row["seed"])}, write=False).summary
    for k in ["slo_attainment_frac", "ttft_s_p99", "energy_kwh", "carbon_gco2", "duration_s"]:
        assert row[k] == direct[k], k


def test_seeds_derive_from_parameters_not_position(tmp_path):
    """Adding a value in front of an axis leaves the other runs' seeds and numbers unchanged."""
    a = sw.sweep(base(), grid={"workload.rate_rps": [6.0]}, seeds=2, cache=False, backend=Recording(), progress=False)
    b = sw.sweep(
        base(), grid={"workload.rate_rps": [1.0, 6.0]}, seeds=2, cache=False, backend=Recording(), progress=False
    )
    b6 = b[b["workload.rate_rps"] == 6.0].reset_index(drop=True)
    pd.testing.assert_frame_equal(metrics(a), metrics(b6))
    assert a["seed"].nunique() == 2  # replicates differ
    assert set(a["seed"]).isdisjoint(set(b[b["workload.rate_rps"] == 1.0]["seed"]))


def test_derive_seed_properties():
    s = derive_seed(1, {"a": 1, "b": 2}, 0)
    assert s == derive_seed(1, {"b": 2, "a": 1}, 0)  # key order does not matter
    assert s != derive_seed(2, {"a": 1, "b": 2}, 0)  # base seed matters
    assert s != derive_seed(1, {"a": 1, "b": 3}, 0)  # values matter
    assert s != derive_seed(1, {"a": 1, "b": 2}, 1)  # replicate matters
    assert derive_seed(1, {"a": 1}, 0, common=True) == derive_seed(1, {"a": 9}, 0, common=True)
    assert 0 <= s < 2**63


def test_common_random_numbers_share_seed_across_points():
    df = sw.sweep(
        base(),
        grid={"cluster.router": ["round_robin", "join_shortest_queue"]},
        cache=False,
        backend=Recording(),
        progress=False,
        common_random_numbers=True,
    )
    assert df["seed"].nunique() == 1


def test_grid_sweeping_seed_uses_it_as_given():
    df = sw.sweep(base(), grid={"seed": [5, 7]}, cache=False, backend=Recording(), progress=False)
    assert list(df["seed"]) == [5, 7]
    with pytest.raises(SweepError, match="sweeps 'seed' directly"):
        sw.sweep(base(), grid={"seed": [5, 7]}, seeds=2, cache=False, backend=Recording(), progress=False)


def test_failing_run_becomes_a_row_and_others_continue():
    df = sw.sweep(
        base(),
        grid={"model": ["Llama-2-7B", "Llama-2-70B", "Llama-2-7B"], "workload.rate_rps": [4.0]},
        cache=False,
        backend=Recording(),
        progress=False,
    )
    assert list(df["status"]) == ["ok", "error", "ok"]
    assert "does not fit" in df["error"][1] and df["error"][1].startswith("ConfigError")
    assert math.isnan(df["slo_attainment_frac"][1]) and df["slo_attainment_frac"][0] >= 0


def test_cache_hit_skips_runs_and_returns_identical_numbers(tmp_path):
    grid = {"workload.rate_rps": [2.0, 5.0]}
    first = Recording()
    a = sw.sweep(base(), grid=grid, backend=first, cache_dir=tmp_path, progress=False)
    assert len(first.ran) == 2 and not a["cached"].any()
    again = Recording()
    b = sw.sweep(base(), grid=grid, backend=again, cache_dir=tmp_path, progress=False)
    assert again.ran == [] and b["cached"].all()
    pd.testing.assert_frame_equal(metrics(a), metrics(b))
    # A changed field misses the cache; failed runs are never cached.
    third = Recording()
    sw.sweep(base(), grid={"workload.rate_rps": [2.0, 5.0, 9.0]}, backend=third, cache_dir=tmp_path, progress=False)
    assert [d["workload"]["rate_rps"] for d in third.ran] == [9.0]


def test_cache_key_covers_experiment_and_version(monkeypatch):
    e = greensim.experiment.load.parse_experiment(base())
    k = sw.cache_key(e)
    assert k == sw.cache_key(greensim.experiment.load.parse_experiment(base()))
    assert k != sw.cache_key(greensim.experiment.load.parse_experiment(make_experiment(**SMALL, **{"slo.ttft_s": 2.0})))
    assert k == sw.cache_key(greensim.experiment.load.parse_experiment(make_experiment(**SMALL, **{"output.dir": "x"})))
    monkeypatch.setattr(greensim.base.version, "__version__", "9.9.9")
    assert k != sw.cache_key(e)


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GREENSIM_CACHE_DIR", str(tmp_path / "c"))
    assert sw.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GREENSIM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))  # platformdirs follows XDG on Linux
    if __import__("sys").platform.startswith("linux"):
        assert sw.default_cache_dir() == tmp_path / "x" / "greensim"


@pytest.mark.parametrize(
    "grid,seeds,exc,pattern",
    [
        ({"workload.rate_rps": []}, 1, SweepError, r"grid\.workload\.rate_rps: the axis is empty"),
        (
            {"workload.rate_rps": 3},
            1,
            SweepError,
            r"grid\.workload\.rate_rps: expected a list of values, got 3\. Write \[3\]",
        ),
        ([], 1, SweepError, r"grid: the list of points is empty"),
        ({"workload.rate": [1, 2]}, 1, ConfigError, r"override 'workload\.rate'.*Did you mean 'workload\.rate_rps'"),
        ({"workload.rate_rps": [2, -1]}, 1, ConfigError, r"(?s)sweep point \(workload\.rate_rps=-1\).*greater than 0"),
        ({"workload.rate_rps": [2]}, 0, SweepError, r"seeds: the number of replicates must be >= 1, got 0"),
        ({"workload.rate_rps": [2]}, [], SweepError, r"seeds: the list of replicates is empty"),
    ],
)
def test_bad_sweeps_fail_before_any_run(grid, seeds, exc, pattern):
    rec = Recording()
    with pytest.raises(exc, match=pattern):
        sw.sweep(base(), grid=grid, seeds=seeds, backend=rec, cache=False, progress=False)
    assert rec.ran == []


def test_unknown_backend_and_bad_workers_fail_clearly():
    with pytest.raises(BackendError, match=r"unknown backend 'dsak' \(valid: local, dask\)\. Did you mean 'dask'\?"):
        sw.sweep(base(), grid={"seed": [1]}, backend="dsak", cache=False, progress=False)
    with pytest.raises(BackendError, match=r"workers: must be a positive integer, got 0"):
        sw.sweep(base(), grid={"seed": [1]}, workers=0, cache=False, progress=False)


def test_expand_grid_list_of_points():
    assert expand_grid([{"a": 1}, {"a": 2, "b": 3}]) == [{"a": 1}, {"a": 2, "b": 3}]
    assert expand_grid(None) == [{}]
    assert expand_grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]


def test_progress_bar_counts_runs_including_cached(tmp_path, capsys):
    """One tick per run; cached runs start the bar ahead (3 runs, 1 cached: 1/3 then 3/3)."""
    sw.sweep(base(), grid={"workload.rate_rps": [2.0]}, backend=Recording(), cache_dir=tmp_path, progress=True)
    capsys.readouterr()
    sw.sweep(
        base(), grid={"workload.rate_rps": [2.0, 3.0, 4.0]}, backend=Recording(), cache_dir=tmp_path, progress=True
    )
    err = capsys.readouterr().err
    assert "1/3" in err and "3/3" in err and "run" in err


def test_cache_key_changes_when_the_trace_file_changes(tmp_path):
    """Same experiment text, edited trace file: a different key (size and mtime are hashed)."""
    import os

    trace = tmp_path / "t.csv"
    trace.write_text("arrival_time_s,input_tokens,output_tokens\n0.0,10,5\n")
    exp = greensim.experiment.load.parse_experiment(
        make_experiment(**{"workload": {"kind": "trace", "path": str(trace)}})
    )
    k1 = sw.cache_key(exp)
    trace.write_text("arrival_time_s,input_tokens,output_tokens\n0.0,10,5\n1.0,20,5\n")
    os.utime(trace, ns=(1, 1))
    assert sw.cache_key(exp) != k1
