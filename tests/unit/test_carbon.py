import numpy as np
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.carbon import ConstantIntensitySource, embodied_gco2, operational_gco2
from greensim.experiment.load import parse_experiment


def test_operational_is_kwh_times_intensity_times_pue():
    g = operational_gco2(np.array([3.6e6, 7.2e6]), 10.0, ConstantIntensitySource(400.0), 1.5)
    assert g.tolist() == [600.0, 1200.0]


def test_embodied_linear_amortisation():
    """100 kgCO2e over 5 years: one GPU-year charges 20 kg = 20,000 g."""
    year = 365 * 24 * 3600.0
    assert embodied_gco2(100.0, 1, year, 5.0) == pytest.approx(20_000.0)
    assert embodied_gco2(100.0, 4, year / 2, 5.0) == pytest.approx(40_000.0)


def test_run_totals_match_hand_computation():
    """Embodied = sum over instances of kg x 1000 x tp x T / LT; operational = kWh x CI x PUE."""
    d = make_experiment(
        **{
            "carbon": {
                "intensity": {"kind": "constant", "gco2_per_kwh": 500.0},
                "pue": 1.2,
                "lifetime_years": 4.0,
                "gpu_embodied_kgco2e": {"A100-80GB": 150.0},
            }
        }
    )
    t = simulate(prepare(parse_experiment(d)))
    s = t.summary
    T = s["duration_s"]
    assert s["embodied_gco2"] == pytest.approx(2 * 150.0 * 1000 * T / (4 * 365 * 24 * 3600))
    assert s["operational_gco2"] == pytest.approx(s["energy_kwh"] * 500.0 * 1.2, rel=1e-9)
    idle = 2 * 63.0 * T - (t.instances.busy_s * 63.0).sum()
    assert t.instances.idle_energy_j.sum() == pytest.approx(idle, rel=1e-9)


def test_idle_instance_carbon_is_unattributed_but_counted():
    """Three instances, one request: two instances idle the whole run; their carbon stays in the total."""
    d = make_experiment(**{"workload.n_requests": 1, "cluster.instances": [{"gpu": "A100-80GB", "count": 3}]})
    t = simulate(prepare(parse_experiment(d)))
    s = t.summary
    assert s["unattributed_gco2"] > 0
    assert t.requests.carbon_gco2.sum() + s["unattributed_gco2"] == pytest.approx(s["carbon_gco2"])
    assert (t.instances.n_requests == [1, 0, 0]).all()


def test_zero_intensity_zero_operational():
    d = make_experiment(**{"carbon.intensity": {"kind": "constant", "gco2_per_kwh": 0}})
    s = simulate(prepare(parse_experiment(d))).summary
    assert s["operational_gco2"] == 0 and s["embodied_gco2"] > 0


def test_old_gpu_idles_at_its_own_power():
    """A V100 instance that never serves still draws its idle power for the whole run."""
    d = make_experiment(
        **{
            "workload.n_requests": 1,
            "cluster.router": "round_robin",
            "cluster.instances": [{"gpu": "A100-80GB"}, {"gpu": "V100-32GB"}],
        }
    )
    t = simulate(prepare(parse_experiment(d)))
    v = t.instances.iloc[1]
    assert v.busy_s == 0 and v.energy_j == pytest.approx(47.0 * t.summary["duration_s"])
