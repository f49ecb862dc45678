"""GPU aging: Weibull failures with re-queueing, degradation, determinism (issue 7)."""

import math

import numpy as np
import pandas as pd
import pytest
from conftest import make_experiment

from greensim.api.aging import age_sweep
from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.experiment.load import parse_experiment
from greensim.hardware.aging import WeibullFailureModel

YEAR = 365 * 24 * 3600.0


def _model(k, lam_years, age_years, n=1, seed=0, repair_model="minimal"):
    p = {
        "shape_k": k,
        "scale_years": lam_years,
        "age_years": age_years,
        "repair_s": 1.0,
        "repair_dist": "constant",
        "repair_model": repair_model,
    }
    return WeibullFailureModel([p] * n, seed)


def test_weibull_time_to_failure_distribution():
    """k = 2 from age 0: mean = lambda Gamma(1.5); k = 1 is memoryless; k > 1 ages."""
    m = _model(2.0, 1.0, 0.0)
    x = np.array([m.time_to_failure_s(0, 0.0) for _ in range(20000)]) / YEAR
    assert x.mean() == pytest.approx(math.gamma(1.5), rel=0.02)
    e_new = (
        np.mean(
            [_model(1.0, 1.0, 0.0).time_to_failure_s(0, 0.0) for _ in range(1)]
            + [_model(1.0, 1.0, 0.0, seed=s).time_to_failure_s(0, 0.0) for s in range(1, 4000)]
        )
        / YEAR
    )
    e_old = np.mean([_model(1.0, 1.0, 5.0, seed=s).time_to_failure_s(0, 0.0) for s in range(4000)]) / YEAR
    assert e_new == pytest.approx(1.0, rel=0.06) and e_old == pytest.approx(1.0, rel=0.06)
    young = np.mean([_model(3.0, 1.0, 0.1, seed=s).time_to_failure_s(0, 0.0) for s in range(2000)])
    old = np.mean([_model(3.0, 1.0, 2.0, seed=s).time_to_failure_s(0, 0.0) for s in range(2000)])
    assert old < 0.2 * young


def _failing(**kw):
    upd = {
        "workload.n_requests": 1200,
        "workload.rate_rps": 8,
        "cluster.instances.0.count": 3,
        "cluster.router": "join_shortest_queue",
        "cluster.instances.0.aging": {
            "failures": {"shape_k": 1.5, "scale_years": 3e-6, "repair_s": 20.0, "repair_dist": "exponential"}
        },
    }
    upd.update(kw)
    return make_experiment(**upd)


@pytest.mark.parametrize("chunked", [False, True])
def test_failures_requeue_and_every_request_completes(chunked):
    t = simulate(prepare(parse_experiment(_failing(**{"cluster.instances.0.chunked_prefill": chunked}))))
    s, r, inst = t.summary, t.requests, t.instances
    assert s["n_failures"] >= 2 and s["n_requeues"] > 0
    assert s["n_completed"] == 1200 and (r["n_generated_tokens"] == r["n_output_tokens"]).all()
    assert s["n_requeues"] == int(r["n_requeues"].sum())
    assert inst["n_failures"].sum() == s["n_failures"] and (inst["down_s"] > 0).sum() >= 1
    # busy time never overlaps downtime: busy + down <= horizon on every instance
    assert (inst["busy_s"] + inst["down_s"] <= s["duration_s"] + 1e-6).all()
    # re-queued requests waited: their median E2E exceeds that of untouched ones
    assert r.loc[r.n_requeues > 0, "e2e_s"].median() > r.loc[r.n_requeues == 0, "e2e_s"].median()


def test_aging_is_deterministic_and_leaves_arrivals_alone():
    a = simulate(prepare(parse_experiment(_failing())))
    b = simulate(prepare(parse_experiment(_failing())))
    pd.testing.assert_frame_equal(a.requests, b.requests)
    base = simulate(prepare(parse_experiment(_failing(**{"cluster.instances.0.aging": None}))))
    np.testing.assert_array_equal(a.requests["arrival_s"], base.requests["arrival_s"])
    assert not np.array_equal(a.requests["e2e_s"], base.requests["e2e_s"])
    c = simulate(prepare(parse_experiment(_failing(seed=2))))
    assert c.summary["n_failures"] != a.summary["n_failures"] or not c.requests["e2e_s"].equals(a.requests["e2e_s"])


def test_aging_off_changes_nothing():
    """aging with no failures and zero rates gives the same numbers as no aging section."""
    on = simulate(
        prepare(
            parse_experiment(make_experiment(**{"cluster.instances.0.age_years": 4.0, "cluster.instances.0.aging": {}}))
        )
    )
    off = simulate(prepare(parse_experiment(make_experiment())))
    pd.testing.assert_frame_equal(on.requests, off.requests)


def test_single_instance_failure_holds_work_until_repair():
    """With one instance, a failure parks everything until the repair ends."""
    d = make_experiment(
        **{
            "cluster.instances.0.count": 1,
            "workload.n_requests": 400,
            "cluster.instances.0.aging": {"failures": {"shape_k": 1.0, "scale_years": 1e-6, "repair_s": 30.0}},
        }
    )
    t = simulate(prepare(parse_experiment(d)))
    s, r = t.summary, t.requests
    assert s["n_failures"] >= 1 and s["n_completed"] == 400
    assert r.loc[r.n_requeues > 0, "e2e_s"].min() > 0 and r["e2e_s"].max() > 30.0
    assert (
        t.instances["down_s"].iloc[0] == pytest.approx(30.0 * s["n_failures"], rel=1e-9)
        or t.instances["down_s"].iloc[0] < 30.0 * s["n_failures"]
    )


def test_degradation_scales_time_and_power():
    """Throughput loss r_t=0.1/yr and power rise r_p=0.05/yr at age 5: times x2, power x1.25."""
    low = {
        "workload.rate_rps": 0.002,
        "workload.n_requests": 20,
        "workload.input_tokens": {"dist": "constant", "value": 256},
        "workload.output_tokens": {"dist": "constant", "value": 64},
        "cluster.instances.0.count": 1,
    }
    new = simulate(prepare(parse_experiment(make_experiment(**low)))).instances
    old = simulate(
        prepare(
            parse_experiment(
                make_experiment(
                    **low,
                    **{
                        "cluster.instances.0.age_years": 5.0,
                        "cluster.instances.0.aging": {
                            "throughput_loss_frac_per_year": 0.1,
                            "power_increase_frac_per_year": 0.05,
                        },
                    },
                )
            )
        )
    ).instances
    assert old["busy_s"].iloc[0] == pytest.approx(2 * new["busy_s"].iloc[0], rel=1e-9)
    assert old["busy_energy_j"].iloc[0] == pytest.approx(2 * 1.25 * new["busy_energy_j"].iloc[0], rel=1e-9)


def test_bad_aging_input():
    d = make_experiment(**{"cluster.instances.0.aging": {"failures": {"scale_years": 5, "repair_s": 60}}})
    with pytest.raises(ConfigError, match="cluster.instances.0.aging.failures.shape_k: required"):
        parse_experiment(d)
    d = make_experiment(
        **{"cluster.instances.0.age_years": 20, "cluster.instances.0.aging": {"throughput_loss_frac_per_year": 0.1}}
    )
    with pytest.raises(ConfigError, match="throughput_loss_frac_per_year.*no throughput"):
        prepare(parse_experiment(d))


def test_age_sweep_carbon_rises_with_degradation():
    d = make_experiment(
        **{
            "workload.n_requests": 150,
            "cluster.instances.0.aging": {"throughput_loss_frac_per_year": 0.05, "power_increase_frac_per_year": 0.02},
        }
    )
    df = age_sweep(d, 0, [0.0, 4.0, 8.0])
    assert df["age_years"].tolist() == [0.0, 4.0, 8.0]
    assert df["operational_gco2_per_request"].is_monotonic_increasing
    assert df["operational_gco2_per_request"].iloc[-1] > df["operational_gco2_per_request"].iloc[0]
    with pytest.raises(ConfigError, match="group 3 does not exist"):
        age_sweep(d, 3, [0.0])
