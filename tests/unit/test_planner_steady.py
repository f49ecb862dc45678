"""Planner, second pass: unbiased short-run scores, argmax attainment over the whole space, forecasts."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from paper import Scenario, load_paper_spec, scenario_overrides
from test_planner import BASE, problem

from greensim.base.errors import ConfigError
from greensim.experiment.load import load_yaml
from greensim.experiment.overrides import apply_overrides
from greensim.planning import load_plan_spec, plan
from greensim.planning.search import _shorten, _simulate


@pytest.fixture(scope="module")
def paper_case():
    """The reported screening miss: chat, SLO x2, FR grid, new GPUs at 3 years (scenarios.yaml)."""
    spec, base = load_paper_spec()
    path = base / spec.apps["chat"]
    ov = scenario_overrides(
        spec, Scenario(app="chat", slo_scale=2.0, grid="low", lifetime="new3_old_sunk"), load_yaml(path)
    )
    # the miss was reported under the roofline model; under the kernel model this scenario's DPD
    # saving is ~0.2%, too small to exercise the screening (the paper reproduction covers that model)
    ov = {**ov, "performance.model": "roofline"}
    return path, ov, plan(path, overrides=ov, prune=False)


def _concordant(xs, ys) -> float:
    n = len(xs)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    return sum((xs[i] - xs[j]) * (ys[i] - ys[j]) > 0 for i, j in pairs) / len(pairs)


def test_arrival_window_score_tracks_full_runs(paper_case):
    """Over every candidate, short (300-request) runs scored over the arrival window order the
    candidates more like their full (800-request) runs and with a narrower short/full spread
    than the plain short-run carbon per request, which charges the drain tail."""
    _, _, brute = paper_case
    full, plain, window = [], [], []
    for c in brute.candidates:
        if c.summary is None:
            continue
        s = _simulate(_shorten(c.experiment, 300))
        full.append(c.summary["carbon_gco2_per_request"])
        plain.append(s["carbon_gco2_per_request"])
        window.append(s["steady_carbon_gco2_per_request"])
        assert 0 < s["steady_work_requests"] <= s["n_requests"]
    full, plain, window = map(np.asarray, (full, plain, window))
    spread = lambda r: r.max() / r.min()  # noqa: E731
    assert spread(window / full) < spread(plain / full) - 0.05
    assert _concordant(window, full) > _concordant(plain, full)


def test_reported_case_planner_matches_brute_force(paper_case):
    """The pruned planner now picks brute force's winner (DPD) and a positive saving."""
    path, ov, brute = paper_case
    fast = plan(path, overrides=ov)
    assert brute.best.mode == "dpd"
    assert fast.best.name == brute.best.name
    assert fast.best.carbon_g_per_request == brute.best.carbon_g_per_request
    assert fast.saving_frac > 0.03
    assert fast.stats["n_full_simulations"] < brute.stats["n_full_simulations"]


def test_infeasible_search_returns_argmax_attainment_of_the_whole_space():
    """Nothing meets the target: the answer equals brute force's highest attainment, and the
    theory-pruned candidates that had to be simulated say so in the frontier."""
    up = {"slo.ttft_s": 0.02}  # no prefill of a chat prompt is that fast: everything pruned
    brute, fast = plan(problem(**up), prune=False), plan(problem(**up))
    assert not brute.feasible and not fast.feasible
    assert fast.best.name == brute.best.name
    assert fast.best.slo_attainment_frac == brute.best.slo_attainment_frac
    df = fast.frontier
    fallback = df[df["reason"].str.startswith("simulated as nothing met the target")]
    assert len(fallback) and fallback["stage"].isin(["short_sim", "full_sim"]).all()


SERIES = {"kind": "series", "region": "US-CAL-CISO", "start": "2023-07-02T00:00", "timezone": "America/Los_Angeles"}


def forecast_problem(**updates):
    d = problem(
        **{
            "search.modes": ["colocated"],
            "carbon.intensity": SERIES,
            "carbon.forecast": {"kind": "seasonal_naive", "lag_h": 24},
            "plan_start_h": 5,
            "plan_horizon_h": 6,
        }
    )
    return apply_overrides(d, updates)


def test_forecast_plan_scores_at_the_mean_forecast():
    """Seasonal naive (lag 24 h) over hours 5-11 = yesterday's hours 5-11 of the series; every
    candidate's carbon equals its run at that constant intensity (not the actuals)."""
    from greensim.carbon.registry import INTENSITY_SOURCES

    src = INTENSITY_SOURCES.get("series")(**{k: v for k, v in SERIES.items() if k != "kind"})
    i0 = int(np.floor(src._offset)) + 5
    expect = float(np.mean(src.series.values[i0 - 24 : i0 - 24 + 6]))
    actual = float(np.mean(src.series.values[i0 : i0 + 6]))
    assert abs(expect - actual) > 1.0  # the test can tell the forecast from the actuals
    res = plan(forecast_problem(), prune=False)
    assert res.stats["planning_intensity_gco2_per_kwh"] == pytest.approx(expect, rel=1e-12)
    const = problem(**{"search.modes": ["colocated"], "carbon.intensity": {"kind": "constant", "gco2_per_kwh": expect}})
    ref = plan(const, prune=False)
    for a, b in zip(res.candidates, ref.candidates):
        assert a.name == b.name
        assert a.carbon_g_per_request == pytest.approx(b.carbon_g_per_request, rel=1e-12)
    oracle = plan(forecast_problem(**{"carbon.forecast.oracle": True}), prune=False)
    assert oracle.stats["planning_intensity_gco2_per_kwh"] == pytest.approx(actual, rel=1e-12)


@pytest.mark.parametrize(
    "updates,needle",
    [
        ({"carbon.forecast": {"kind": "seasonal_naive"}}, "carbon.forecast"),  # constant intensity: no history
        ({"plan_horizon_h": 4}, "plan_start_h / plan_horizon_h"),
    ],
)
def test_forecast_plan_errors_name_the_field(updates, needle):
    with pytest.raises(ConfigError) as ei:
        load_plan_spec(apply_overrides(copy.deepcopy(BASE), updates))
    assert needle in str(ei.value), str(ei.value)


def test_forecast_without_enough_history_is_a_config_error():
    d = forecast_problem(**{"carbon.intensity.start": "2023-01-01T00:00"})
    with pytest.raises(ConfigError) as ei:
        plan(d)
    assert "plan_start_h" in str(ei.value), str(ei.value)


def test_backlog_growth_separates_stable_from_overloaded_runs():
    """steady_state's stability measure: ~0 for a stable queue, ~1 - capacity/load when overloaded."""
    from conftest import make_experiment

    from greensim.assembly import prepare, simulate
    from greensim.experiment.load import parse_experiment
    from greensim.planning.search import steady_state

    def growth(rate, count):
        d = make_experiment(
            **{
                "workload.rate_rps": rate,
                "workload.n_requests": 800,
                "cluster.instances": [{"gpu": "A100-80GB", "count": count}],
            }
        )
        return steady_state(simulate(prepare(parse_experiment(d))))["backlog_growth_frac"]

    assert abs(growth(4.0, 2)) < 0.05
    assert growth(30.0, 1) > 0.3


def test_a_finite_run_of_an_overloaded_candidate_does_not_pass():
    """Summarisation at 4x SLO (60 s TTFT): one A100 meets 99.6 % of the SLOs in its 800-request run
    only because the run ends before the queue explodes (research/paper_claims.md 3.2). Brute
    force must not pick it: it is unstable, and two A100s win."""
    spec, base = load_paper_spec()
    path = base / spec.apps["summarisation"]
    res = plan(
        path,
        overrides={"slo.ttft_s": 60.0, "slo.tpot_s": 0.6, "search.modes": ["colocated"]},
        prune=False,
    )
    one = next(c for c in res.candidates if c.mode == "colocated" and c.n_new == 1)
    assert one.slo_attainment_frac > 0.9  # what a finite run says
    assert one.stable is False and one.decision_attainment_frac == 0.0 and "unstable" in one.reason
    assert res.best.n_new == 2 and res.best.stable
    row = res.frontier.set_index("candidate").loc[one.name]
    assert not row["feasible"] and row["backlog_growth_frac"] > 0.1
