"""Uncertainty bands carried through results (issue 15, item 5): performance.uncertainty: corners
runs the nominal point and the two performance.band corners, and reports low / point / high."""

from __future__ import annotations

import json
import math

import pytest
from conftest import make_experiment

import greensim
import greensim.api.sweep as sw
import greensim.hardware.bands as hb
from greensim.experiment.load import parse_experiment
from greensim.hardware.catalog import load_catalog
from greensim.results.bands import HEADLINE_METRICS, metric_bands

SMALL = {"workload.n_requests": 120, "workload.rate_rps": 6.0}
ORDERED = [
    "energy_kwh",
    "operational_gco2",
    "embodied_gco2",
    "carbon_gco2",
    "carbon_gco2_per_request",
    "ttft_s_p50",
    "ttft_s_p90",
    "ttft_s_p99",
    "tpot_s_p50",
    "tpot_s_p90",
    "tpot_s_p99",
    "slo_attainment_frac",
    "throughput_rps",
]


def exp(**updates):
    return make_experiment(**{**SMALL, **updates})


_RUNS: dict = {}


def run(key="corners", **updates):
    """greensim.run once per case for the module (write=False)."""
    if key not in _RUNS:
        _RUNS[key] = greensim.run(exp(**updates), write=False, progress=False)
    return _RUNS[key]


def nowall(s):
    return {k: v for k, v in s.items() if "wall" not in k and k not in ("bands", "uncertainty")}


def test_bands_are_ordered_and_not_degenerate():
    s = run().summary
    b = s["bands"]
    for m in ORDERED:
        assert b[m]["low"] <= b[m]["point"] <= b[m]["high"], m
        assert b[m]["point"] == s[m]
        assert b[m]["low"] == min(b[m]["point"], b[m]["optimistic"], b[m]["pessimistic"])
        assert b[m]["high"] == max(b[m]["point"], b[m]["optimistic"], b[m]["pessimistic"])
    for m in ("energy_kwh", "operational_gco2", "carbon_gco2", "ttft_s_p90", "tpot_s_p50"):
        assert b[m]["low"] < b[m]["point"] < b[m]["high"], m  # the half-widths of uncertainty.yaml are > 0
    # slower and hungrier GPUs cost more energy and time
    assert b["energy_kwh"]["pessimistic"] > b["energy_kwh"]["optimistic"]
    assert b["tpot_s_p50"]["pessimistic"] > b["tpot_s_p50"]["optimistic"]
    assert set(b) <= set(HEADLINE_METRICS)


def test_point_values_and_tables_are_the_nominal_run():
    """Bands change nothing of the nominal run: summary point values and tables are identical."""
    corners, plain = run(), run("none", **{"performance.uncertainty": "none"})
    assert nowall(corners.summary) == nowall(plain.summary)
    assert corners.requests.equals(plain.requests)
    assert corners.instances.equals(plain.instances)
    assert "bands" not in plain.summary and plain.bands.empty
    assert plain.summary["uncertainty"]["method"] == "none"


@pytest.mark.parametrize("corner", ["pessimistic", "optimistic"])
def test_a_corner_equals_a_run_at_that_band(corner):
    """The corner values are those of a plain run with performance.band set to the corner."""
    b = run().summary["bands"]
    direct = run(corner, **{"performance.band": corner}).summary
    for m in b:
        assert b[m][corner] == direct[m] or (math.isnan(b[m][corner]) and math.isnan(direct[m])), m
    # a run at a corner band is itself a corner: no bands of its own
    assert "bands" not in direct
    assert direct["uncertainty"]["method"] == "none" and corner in direct["uncertainty"]["note"]


def test_summary_json_records_bands_and_the_fractions_used(tmp_path):
    res = greensim.run(exp(**{"output.plots": True}), out_dir=tmp_path, progress=False)
    s = json.loads((res.folder / "summary.json").read_text())
    assert set(s["bands"]["ttft_s_p90"]) >= {"low", "point", "high"}
    u = s["uncertainty"]
    assert u["method"] == "corners" and "min/max" in u["note"] and "monotone" in u["note"]
    gpu = load_catalog().gpu("A100-80GB", "gpu")
    want = hb.band_entry(hb.load_uncertainty(), gpu, measured=False, section="kernel")  # the default model
    assert u["fractions"] == {"A100-80GB": want}
    assert want["entry"] == f"kernel.architectures.{gpu.architecture}" and want["source"]
    assert (res.folder / "bands.png").is_file()
    df = res.bands
    assert list(df.columns[:3]) == ["low", "point", "high"] and df.loc["energy_kwh", "point"] == s["energy_kwh"]


def test_profiled_model_reports_the_measured_entry():
    res = greensim.run(
        None,
        overrides={
            "workload.n_requests": 60,
            "cluster.instances.0.gpu": "H100-SXM",
            "performance.model": "profiled",
            "output.plots": False,
        },
        write=False,
        progress=False,
    )
    assert res.summary["uncertainty"]["fractions"]["H100-SXM"]["entry"] == "measured.H100-SXM"


def test_a_gpu_without_an_uncertainty_entry_runs_without_bands(monkeypatch):
    monkeypatch.setattr(hb, "load_uncertainty", lambda: {"measured": {}, "roofline": {}})
    res = greensim.run(exp(), write=False, progress=False)
    assert "bands" not in res.summary
    assert "no uncertainty for GPU 'A100-80GB'" in res.summary["uncertainty"]["note"]
    assert nowall(res.summary) == nowall(run().summary)


def test_low_and_high_are_taken_over_the_runs_not_the_corners():
    """Queueing need not be monotone: the optimistic corner may be worse than nominal."""
    b = metric_bands(
        {"tpot_s_p99": 1.0, "energy_kwh": 2.0, "ttft_s_p50": float("nan")},
        {
            "optimistic": {"tpot_s_p99": 1.2, "energy_kwh": float("nan"), "ttft_s_p50": float("nan")},
            "pessimistic": {"tpot_s_p99": 0.9, "energy_kwh": 3.0, "ttft_s_p50": float("nan")},
        },
    )
    assert (b["tpot_s_p99"]["low"], b["tpot_s_p99"]["point"], b["tpot_s_p99"]["high"]) == (0.9, 1.0, 1.2)
    assert (b["energy_kwh"]["low"], b["energy_kwh"]["high"]) == (2.0, 3.0)  # NaN left out
    assert math.isnan(b["ttft_s_p50"]["low"]) and math.isnan(b["ttft_s_p50"]["high"])


# ------------------------------------------------------------------ sweeps and the cache
def test_sweep_rows_get_low_and_high_columns(tmp_path):
    df = sw.sweep(
        exp(), grid={"workload.rate_rps": [3.0, 9.0]}, backend="local", workers=1, cache_dir=tmp_path, progress=False
    )
    assert (df["uncertainty"] == "corners").all()
    for m in ORDERED:
        assert (df[f"{m}_low"] <= df[m]).all() and (df[m] <= df[f"{m}_high"]).all(), m
    assert (df["energy_kwh_low"] < df["energy_kwh_high"]).all()
    assert not any(c.startswith("bands.") or c.startswith("uncertainty.") for c in df.columns)
    # a row's band is greensim.run's at the row's seed
    row = df.iloc[1]
    direct = greensim.run(exp(**{"workload.rate_rps": 9.0, "seed": int(row["seed"])}), write=False).summary["bands"]
    assert row["ttft_s_p90_high"] == direct["ttft_s_p90"]["high"]
    assert row["carbon_gco2_low"] == direct["carbon_gco2"]["low"]
    # from the cache: identical band columns
    again = sw.sweep(
        exp(), grid={"workload.rate_rps": [3.0, 9.0]}, backend="local", workers=1, cache_dir=tmp_path, progress=False
    )
    assert again["cached"].all()
    cols = [c for c in df.columns if c.endswith(("_low", "_high"))]
    assert again[cols].equals(df[cols])


def test_sweep_without_uncertainty_and_the_cache_key(tmp_path):
    grid = {"workload.rate_rps": [3.0]}
    sw.sweep(exp(), grid=grid, backend="local", workers=1, cache_dir=tmp_path, progress=False)
    off = sw.sweep(
        exp(**{"performance.uncertainty": "none"}),
        grid=grid,
        backend="local",
        workers=1,
        cache_dir=tmp_path,
        progress=False,
    )
    # a run without bands is not served the cached run with bands (nor the other way round)
    assert not off["cached"].any()
    assert (off["uncertainty"] == "none").all()
    assert not any(c.endswith(("_low", "_high")) for c in off.columns)
    k_on = sw.cache_key(parse_experiment(exp()))
    k_off = sw.cache_key(parse_experiment(exp(**{"performance.uncertainty": "none"})))
    assert k_on != k_off
