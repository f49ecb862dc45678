"""Planner with uncertainty (issue 15, item 5): bands of the chosen plans, and confidence: pessimistic,
under which a candidate must meet the attainment target at the pessimistic band corner too."""

from __future__ import annotations

import json

import pytest
from test_planner import problem

import greensim
from greensim.base.errors import ConfigError
from greensim.planning import plan
from greensim.planning.report import write_plan

# Colocated A100s only at 7 req/s: one A100 meets the 0.9 target at nominal performance
# (test_planner's "rate8" case), far from it when GPUs are as slow as the pessimistic band says.
RATE8 = {"workload.rate_rps": 7.0, "search.modes": ["colocated"]}

_CACHE: dict = {}


def solved(confidence: str, prune: bool = True, **updates):
    key = (confidence, prune, tuple(sorted(updates.items())))
    if key not in _CACHE:
        _CACHE[key] = plan(problem(**{**RATE8, **updates}), prune=prune, confidence=confidence)
    return _CACHE[key]


@pytest.mark.parametrize("prune", [True, False])
def test_pessimistic_confidence_needs_more_gpus(prune):
    nominal, pessimistic = solved("nominal", prune), solved("pessimistic", prune)
    assert nominal.feasible and pessimistic.feasible
    assert nominal.best.name == "colocated_A100-80GBx1_b256"
    assert pessimistic.best.name == "colocated_A100-80GBx2_b256"
    assert pessimistic.best.n_gpus > nominal.best.n_gpus
    # why: nominal's pick misses the target at the pessimistic corner, pessimistic's pick meets it there
    assert nominal.best.bands["slo_attainment_frac"]["pessimistic"] < 0.9 <= nominal.best.slo_attainment_frac
    assert pessimistic.best.decision_attainment_frac >= 0.9
    assert pessimistic.stats["confidence"] == "pessimistic" and nominal.stats["confidence"] == "nominal"
    assert pessimistic.stats["n_pessimistic_simulations"] > 0 == nominal.stats["n_pessimistic_simulations"]


def test_pessimistic_twin_is_a_run_at_the_pessimistic_band():
    best = solved("pessimistic", False).best
    exp = best.experiment.model_dump(mode="json")
    direct = greensim.run(exp, overrides={"performance.band": "pessimistic"}, write=False, progress=False).summary
    assert best.summary_pessimistic["slo_attainment_frac"] == direct["slo_attainment_frac"]
    assert best.summary_pessimistic["carbon_gco2_per_request"] == direct["carbon_gco2_per_request"]
    assert best.bands["slo_attainment_frac"]["pessimistic"] == direct["slo_attainment_frac"]
    df = solved("pessimistic", False).frontier
    one = df[df["candidate"] == "colocated_A100-80GBx1_b256"].iloc[0]
    assert one["slo_attainment_frac"] >= 0.9 > one["slo_attainment_frac_pessimistic"] and not one["feasible"]


def test_winner_and_baseline_get_ordered_bands(tmp_path):
    res = solved("nominal", True, **{"workload.rate_rps": 12.0})  # needs 2 A100s; baseline = winner here
    for c in (res.best, res.baseline):
        for m in ("carbon_gco2_per_request", "energy_kwh", "slo_attainment_frac", "ttft_s_p90", "tpot_s_p90"):
            b = c.bands[m]
            assert b["low"] <= b["point"] <= b["high"], m
            assert b["point"] == c.summary[m]
        assert c.bands["carbon_gco2_per_request"]["low"] < c.bands["carbon_gco2_per_request"]["high"]
    assert res.stats["n_band_simulations"] == 2 * len({res.best.name, res.baseline.name})
    assert res.stats["uncertainty"]["method"] == "corners"
    assert res.stats["uncertainty"]["fractions"]["A100-80GB"]["latency_frac"] > 0
    sb = res.stats["saving_frac_band"]
    assert sb["low"] <= sb["point"] <= sb["high"]
    folder = write_plan(res, tmp_path, plots=True)
    decision = json.loads((folder / "plan.json").read_text())
    assert decision["winner"]["bands"]["carbon_gco2_per_request"]["high"] == pytest.approx(
        res.best.bands["carbon_gco2_per_request"]["high"]
    )
    assert decision["saving_frac_band"] and decision["uncertainty"]["method"] == "corners"


def test_no_bands_without_uncertainty():
    res = plan(problem(**{**RATE8, "performance.uncertainty": "none"}))
    assert res.best.bands is None and res.stats["n_band_simulations"] == 0
    assert res.stats["uncertainty"]["method"] == "none" and "saving_frac_band" not in res.stats
    # the search itself does not depend on the bands
    assert res.best.name == solved("nominal").best.name
    assert res.best.summary["carbon_gco2_per_request"] == solved("nominal").best.summary["carbon_gco2_per_request"]


def test_confidence_pessimistic_needs_the_nominal_band():
    with pytest.raises(ConfigError, match="confidence: pessimistic"):
        plan(problem(**{**RATE8, "performance.band": "optimistic"}), confidence="pessimistic")
    with pytest.raises(ConfigError, match="confidence"):
        plan(problem(**RATE8), confidence="very")
