"""Deferrable requests and carbon-aware time shifting (issue 16, part 6): closed-form cases."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import make_router, prepare, router_extras
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError, SimulationInvariantError
from greensim.base.units import J_PER_KWH
from greensim.core.simulation import Simulation
from greensim.experiment.load import parse_experiment

H = 3600.0
#: hourly intensity [gCO2e/kWh]: hour 2 is the cleanest of the first four, then flat and dirty
CI = [400.0, 300.0, 100.0, 200.0] + [500.0] * 44
CLASSES = {
    "b4h": {"deferrable": True, "deadline_s": 4 * H},
    "b2h": {"deferrable": True, "deadline_s": 2 * H},
    "b30m": {"deferrable": True, "deadline_s": 1800.0},
    "tight": {"deferrable": True, "deadline_s": 0.5},
}
MARGIN_S = 600.0
PUE = 1.1


def _series(tmp_path, values=CI, name="ci.csv"):
    ts = pd.date_range("2023-01-01T00:00", periods=len(values), freq="h", tz="UTC")
    path = tmp_path / name
    pd.DataFrame({"timestamp_utc": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": "TEST", "gco2_per_kwh": values}).to_csv(
        path, index=False
    )
    return str(path)


def _trace(tmp_path, rows):
    path = tmp_path / "trace.csv"
    pd.DataFrame(rows, columns=["arrival_time_s", "input_tokens", "output_tokens", "slo_class"]).to_csv(
        path, index=False
    )
    return str(path)


def _exp(tmp_path, rows, policy="carbon_aware", options=None, values=CI, start="2023-01-01T00:00", forecast=None):
    d = make_experiment(
        **{
            "workload": {"kind": "trace", "path": _trace(tmp_path, rows)},
            "cluster.instances": [{"gpu": "A100-80GB", "count": 1}],
            "slo.classes": CLASSES,
            "carbon.intensity": {"kind": "series", "region": "TEST", "path": _series(tmp_path, values), "start": start},
            "carbon.forecast": forecast or {"oracle": True},
            "carbon.pue": PUE,
            "defer": {
                "policy": policy,
                "options": {"margin_s": MARGIN_S, **(options or {})} if policy != "none" else {},
            },
            "performance.uncertainty": "none",
            "simulation.timeline_bin_s": 60.0,
        }
    )
    return d


def _run(d):
    return simulate(prepare(parse_experiment(d)))


# the closed-form workload: four deferrable requests with deadlines 4 h, 2 h, 30 min and 0.5 s,
# two interactive ones (the last, at 5 h, fixes the run's horizon)
ROWS = [
    (0.0, 500, 200, "b4h"),
    (10.0, 500, 200, "b2h"),
    (20.0, 500, 200, "b30m"),
    (30.0, 500, 500, "tight"),
    (40.0, 500, 200, ""),
    (5 * H, 500, 200, ""),
]


def test_release_is_the_cleanest_feasible_hour(tmp_path):
    """Release = start of the hour of lowest intensity among those starting before the latest
    start (arrival + deadline - service estimate - margin): 4 h -> hour 2 (100 g), 2 h -> hour 1
    (300 g), 30 min -> only the current hour (at once); a 0.5 s deadline cannot be met: released
    at once and reported missed. Interactive requests are released at arrival."""
    t = _run(_exp(tmp_path, ROWS))
    r = t.requests
    assert list(r["released_s"]) == [2 * H, 1 * H, 20.0, 30.0, 40.0, 5 * H]
    assert list(r["defer_s"]) == [2 * H, 1 * H - 10.0, 0.0, 0.0, 0.0, 0.0]
    assert list(r["deadline_met"]) == [True, True, True, False, True, True]
    assert list(r["slo_met"])[:4] == [True, True, True, False]  # deferrable: judged by deadline alone
    np.testing.assert_array_equal(r["deadline_s"].to_numpy()[:4], [4 * H, 2 * H, 1800.0, 0.5])
    assert r["deadline_s"].isna().tolist()[4:] == [True, True]
    s = t.summary
    assert s["n_deferrable"] == 4 and s["n_deferred"] == 2
    assert s["deadline_miss_frac"] == pytest.approx(0.25)
    assert s["defer_s_mean"] == pytest.approx((2 * H + H - 10.0) / 4)
    assert s["interactive_slo_attainment_frac"] == 1.0
    assert s["slo_attainment_frac"] == pytest.approx(5 / 6)
    # routers see a deferrable request's deadline as its TTFT SLO, and no TPOT bound
    assert r["ttft_slo_s"].iloc[0] == 4 * H and np.isinf(r["tpot_slo_s"].iloc[0])


def test_ties_go_to_the_earliest_hour(tmp_path):
    """Hours 1 and 3 tie at the lowest forecast: the request is released at hour 1."""
    t = _run(_exp(tmp_path, [ROWS[0], ROWS[-1]], values=[400.0, 100.0, 300.0, 100.0] + [500.0] * 44))
    assert t.requests["released_s"].iloc[0] == H


def test_operational_carbon_matches_the_hand_computation(tmp_path):
    """One GPU, one deferrable request moved from hour 0 (400 g) to hour 2 (100 g), an
    interactive request at 5 h in both runs (same horizon): the run's operational carbon
    falls by (busy energy - idle power x busy time) x (400 - 100) x PUE / 3.6e6, the request's
    busy energy and time being those of the request served alone (a run of it alone)."""
    rows = [ROWS[0], ROWS[-1]]
    shifted, base = _run(_exp(tmp_path, rows)), _run(_exp(tmp_path, rows, policy="none"))
    assert shifted.requests["released_s"].iloc[0] == 2 * H
    p_alone = prepare(parse_experiment(_exp(tmp_path, [ROWS[0]], policy="none")))
    alone = simulate(p_alone).instances.iloc[0]
    idle_w = p_alone.instances[0][1].idle_power_w
    delta_j = alone["busy_energy_j"] - idle_w * alone["busy_s"]
    assert shifted.summary["duration_s"] == base.summary["duration_s"]
    expected = delta_j * (CI[0] - CI[2]) * PUE / J_PER_KWH
    assert base.summary["operational_gco2"] - shifted.summary["operational_gco2"] == pytest.approx(expected, rel=1e-9)
    # the per-request intensity-shift estimate: its energy x PUE x the hour's intensity
    r = shifted.requests.iloc[0]
    assert r["operational_gco2_est"] == pytest.approx(r["energy_j"] * CI[2] * PUE / J_PER_KWH)
    assert r["operational_gco2_undeferred_est"] == pytest.approx(r["energy_j"] * CI[0] * PUE / J_PER_KWH)
    assert shifted.summary["deferral_carbon_saved_est_frac"] == pytest.approx(1 - CI[2] / CI[0])


def test_forecast_reads_only_the_past(tmp_path):
    """Seasonal-naive forecast (same hour yesterday): yesterday hour 1 was the cleanest, today
    hour 2 is. The policy, run from today 00:00, picks hour 1; with oracle: true, hour 2."""
    day1 = [400.0, 100.0, 300.0, 300.0] + [500.0] * 20
    day2 = [400.0, 300.0, 100.0, 300.0] + [500.0] * 20
    vals = day1 + day2 + [500.0] * 24
    kw = dict(values=vals, start="2023-01-02T00:00")
    fc = _run(_exp(tmp_path, [ROWS[0], ROWS[-1]], forecast={"kind": "seasonal_naive", "lag_h": 24}, **kw))
    oracle = _run(_exp(tmp_path, [ROWS[0], ROWS[-1]], **kw))
    assert fc.requests["released_s"].iloc[0] == H
    assert oracle.requests["released_s"].iloc[0] == 2 * H


def test_herding_options(tmp_path):
    """Three requests all preferring hour 2: max_requests_per_hour 1 sends them to hours 2, 3
    and 1 (the next cleanest in turn); spread uniform releases them at distinct times inside
    hour 2 (the first at its start)."""
    rows = [(0.0, 500, 200, "b4h"), (1.0, 500, 200, "b4h"), (2.0, 500, 200, "b4h"), ROWS[-1]]
    capped = _run(_exp(tmp_path, rows, options={"max_requests_per_hour": 1})).requests["released_s"]
    assert list(capped)[:3] == [2 * H, 3 * H, 1 * H]
    spread = _run(_exp(tmp_path, rows, options={"spread": "uniform"})).requests["released_s"].to_numpy()[:3]
    assert spread[0] == 2 * H and len(set(spread)) == 3
    assert ((spread >= 2 * H) & (spread < 3 * H)).all()


def test_no_deferral_gives_identical_results():
    """defer absent == defer.policy none (tables identical); deferrable classes without a
    policy change only how requests are judged, not what is simulated."""
    d = make_experiment(**{"performance.uncertainty": "none"})
    a, b = _run(d), _run(make_experiment(**{"performance.uncertainty": "none", "defer": {"policy": "none"}}))
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.timeline, b.timeline)
    assert a.summary == b.summary
    assert "released_s" not in a.requests.columns
    judged = _run(
        make_experiment(
            **{
                "performance.uncertainty": "none",
                "workload.slo_class_frac": {"batch": 0.4},
                "slo.classes": {"batch": {"deferrable": True, "deadline_s": 600.0}},
            }
        )
    )
    for col in ("arrival_s", "ttft_s", "e2e_s", "energy_j", "operational_gco2"):
        pd.testing.assert_series_equal(judged.requests[col], a.requests[col])
    assert (judged.requests["defer_s"] == 0).all()
    assert 0.3 < judged.summary["n_deferrable"] / len(a.requests) < 0.5


def test_release_at_once_is_the_plain_engine():
    """A release policy that always answers 'now' leaves every result as without one."""

    class Now:
        def release_s(self, request_id, n_input_tokens, now_s):
            return now_s

    p = prepare(parse_experiment(make_experiment()))

    def sim(release):
        router = make_router(p.router_factory, p.policy_seeds)
        return Simulation(p.table, p.instances, router, p.bin_s, router_extras=router_extras(p), release=release).run()

    a, b = sim(None), sim(Now())
    for col in ("first_token_s", "done_s", "energy_j", "instance"):
        np.testing.assert_array_equal(getattr(a.record, col), getattr(b.record, col))
    np.testing.assert_array_equal(b.record.extra["released_s"], p.table.arrival_s)

    class Past:
        def release_s(self, request_id, n_input_tokens, now_s):
            return now_s - 1.0

    with pytest.raises(SimulationInvariantError, match="release policy returned"):
        sim(Past())


def test_same_seed_same_numbers(tmp_path):
    """Deferral with spread and a cap is deterministic."""
    d = _exp(tmp_path, ROWS, options={"spread": "uniform", "max_requests_per_hour": 2})
    a, b = _run(d), _run(d)
    pd.testing.assert_frame_equal(a.requests, b.requests)


@pytest.mark.parametrize(
    "update, match",
    [
        ({"slo.classes": {"b": {"deferrable": True, "deadline_s": -5.0}}}, r"slo\.classes\.b\.deadline_s"),
        ({"slo.classes": {"b": {"deferrable": True}}}, r"slo\.classes\.b.*needs deadline_s"),
        ({"slo.classes": {"b": {"deferrable": True, "deadline_s": 9, "ttft_s": 1}}}, r"drop ttft_s"),
        ({"slo.classes": {"b": {"ttft_s": 1.0}}}, r"needs ttft_s and tpot_s"),
        ({"slo.classes": {"b": {"ttft_s": 1.0, "tpot_s": 0.1, "deadline_s": 9}}}, r"set deferrable: true"),
        ({"workload.slo_class_frac": {"b": 0.7, "c": 0.6}}, r"slo_class_frac.*sum"),
        ({"workload.slo_class_frac": {"b": 1.5}}, r"slo_class_frac\.b"),
        ({"defer": {"policy": "carbon_awar"}}, r"defer\.policy.*carbon_aware"),
        ({"defer": {"policy": "none", "options": {"margin_s": 1}}}, r"defer\.options.*policy is 'none'"),
        ({"defer": {"policy": "carbon_aware"}}, r"carbon\.intensity\.kind.*series"),
    ],
)
def test_bad_inputs_name_the_field(update, match):
    """Bad deadlines, class shares and policies raise ConfigError naming the field and fix."""
    with pytest.raises(ConfigError, match=match):
        prepare(parse_experiment(make_experiment(**update)))


def test_bad_policy_setup_names_the_field(tmp_path):
    """carbon_aware needs carbon.forecast; options are checked by name and value; a workload
    naming an undefined class is reported."""
    d = _exp(tmp_path, ROWS)
    del d["carbon"]["forecast"]
    with pytest.raises(ConfigError, match=r"carbon\.forecast"):
        prepare(parse_experiment(d))
    with pytest.raises(ConfigError, match=r"defer\.options\.margin: .*Did you mean 'margin_s'"):
        prepare(parse_experiment(_exp(tmp_path, ROWS, options={"margin": 1})))
    with pytest.raises(ConfigError, match=r"defer\.options\.spread"):
        prepare(parse_experiment(_exp(tmp_path, ROWS, options={"spread": "evenly"})))
    with pytest.raises(ConfigError, match=r"defer\.options\.margin_s"):
        prepare(parse_experiment(_exp(tmp_path, ROWS, options={"margin_s": -1})))
    with pytest.raises(ConfigError, match=r"slo\.classes: the workload names SLO class 'nope'"):
        prepare(parse_experiment(_exp(tmp_path, [(0.0, 10, 10, "nope")])))


def test_compare_deferral_runs_the_counterfactual(tmp_path):
    """compare_deferral: carbon saved = operational carbon without deferral - with it, on the same
    requests (the closed-form case: positive, with one missed deadline in both runs)."""
    from greensim.api.defer import compare_deferral

    d = _exp(tmp_path, ROWS)
    c = compare_deferral(d)
    base = _run(_exp(tmp_path, ROWS, policy="none")).summary["operational_gco2"]
    assert c["table"].loc["none", "operational_gco2"] == pytest.approx(base)
    assert c["carbon_saved_gco2"] == pytest.approx(base - _run(d).summary["operational_gco2"])
    assert c["carbon_saved_gco2"] > 0
    assert c["deadline_miss_frac"] == pytest.approx(0.25) == c["table"].loc["none", "deadline_miss_frac"]
    with pytest.raises(ConfigError, match="defer.policy"):
        compare_deferral(_exp(tmp_path, ROWS, policy="none"))


def test_compare_deferral_charges_the_idle_tail(tmp_path):
    """A lone deferrable request held to hour 2: the run without deferral ends at once, so over
    the common window it is charged the GPU's idle power until the deferred run ends, at the
    hours' intensities: 400 g until 1 h, 300 g until 2 h, 100 g after."""
    from greensim.api.defer import compare_deferral

    d = _exp(tmp_path, [ROWS[0]])
    t = compare_deferral(d)["table"]
    hn, hd = t.loc["none", "duration_s"], t.loc["deferred", "duration_s"]
    assert hn < 60 and 2 * H < hd < 2 * H + 60
    idle_w = prepare(parse_experiment(d)).instances[0][1].idle_power_w
    ci_j = CI[0] * (H - hn) + CI[1] * H + CI[2] * (hd - 2 * H)  # intensity x time over the tail
    tail = idle_w * ci_j * PUE / J_PER_KWH
    assert t.loc["none", "operational_gco2_window"] - t.loc["none", "operational_gco2"] == pytest.approx(tail)
    assert t.loc["deferred", "operational_gco2_window"] == t.loc["deferred", "operational_gco2"]
