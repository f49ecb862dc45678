"""Arrival processes: Poisson, Gamma (CV), diurnal, rate series and the ServeGen profile."""

import numpy as np
import pytest
from conftest import make_experiment

from greensim.base.errors import ConfigError
from greensim.experiment.load import parse_experiment
from greensim.experiment.workload import (
    DiurnalArrivals,
    GammaArrivals,
    PoissonArrivals,
    RateSeriesArrivals,
    ServeGenArrivals,
)
from greensim.workloads import arrival_times, build_workload
from greensim.workloads.arrivals import PiecewiseRate, diurnal_rate, servegen_rates


def rng(seed=3):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("cv", [0.5, 1.0, 3.0])
def test_gamma_rate_and_cv(cv):
    t = arrival_times(GammaArrivals(process="gamma", rate_rps=4.0, cv=cv), rng(), n=400_000)
    g = np.diff(t)
    assert 1 / g.mean() == pytest.approx(4.0, rel=0.01)
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.03)


def test_duration_stops_and_n_caps():
    t = arrival_times(PoissonArrivals(process="poisson", rate_rps=10.0), rng(), duration_s=1000.0)
    assert t[-1] < 1000.0 and len(t) == pytest.approx(10_000, rel=0.05)
    t2 = arrival_times(PoissonArrivals(process="poisson", rate_rps=10.0), rng(), n=50, duration_s=1000.0)
    assert len(t2) == 50


def test_piecewise_rate_inverse_is_inverse_and_skips_zero_bins():
    r = PiecewiseRate(np.array([0.0, 2.0, 0.0, 0.0, 1.0, 0.0]), 10.0, "x")
    t = np.array([10.0, 12.5, 19.9, 40.0, 45.0, 49.0, 60.0 + 15.0])
    s = r.cumulative(t)
    back = r.inverse(s)
    assert np.allclose(r.cumulative(back), s)
    assert not ((back > 20) & (back < 40)).any() and not ((back % 60) < 10).any()


def test_rate_series_counts_follow_the_rates():
    cfg = RateSeriesArrivals(process="rate_series", rates_rps=[1.0, 4.0, 0.0, 2.0], bin_s=1000.0)
    t = arrival_times(cfg, rng(), duration_s=8000.0)
    counts = np.bincount((t // 1000).astype(int), minlength=8)
    assert counts[2] == 0 and counts[6] == 0
    expect = np.array([1, 4, 0, 2, 1, 4, 0, 2]) * 1000
    assert np.all(np.abs(counts - expect) <= 5 * np.sqrt(expect) + 1)


def test_rate_series_rescale_to_mean_and_bad_rates():
    cfg = RateSeriesArrivals(process="rate_series", rates_rps=[1.0, 3.0], bin_s=100.0, mean_rate_rps=10.0)
    t = arrival_times(cfg, rng(), duration_s=20_000.0)
    assert len(t) / 20_000 == pytest.approx(10.0, rel=0.02)
    with pytest.raises(ConfigError, match="every rate is 0"):
        arrival_times(RateSeriesArrivals(process="rate_series", rates_rps=[0.0], bin_s=1.0), rng(), n=3)


def test_diurnal_mean_peak_and_trough():
    cfg = DiurnalArrivals(process="diurnal", mean_rate_rps=5.0, peak_to_trough=3.0, peak_s=14 * 3600)
    r = diurnal_rate(cfg)
    assert r.mean_rate_rps == pytest.approx(5.0)
    assert r.rates_rps.max() / r.rates_rps.min() == pytest.approx(3.0, rel=0.01)
    t = arrival_times(cfg, rng(), duration_s=4 * 86400.0)
    hour = ((t % 86400) // 3600).astype(int)
    per_hour = np.bincount(hour, minlength=24)
    assert per_hour.argmax() in (13, 14) and per_hour.argmin() in (1, 2)
    assert len(t) / (4 * 86400) == pytest.approx(5.0, rel=0.02)


def test_servegen_profile_drives_rate(shared_data):
    path = str(shared_data / "traces/servegen_rate_profile_10min.csv")
    cfg = ServeGenArrivals(process="servegen", path=path, model="deepseek-r1", mean_rate_rps=2.0)
    rates, bin_s = servegen_rates(cfg)
    assert bin_s == 600 and rates.size == 144
    t = arrival_times(cfg, rng(), duration_s=86400.0)
    counts = np.bincount((t // 600).astype(int), minlength=144)[:144]
    expect = rates / rates.mean() * 2.0 * 600
    assert np.corrcoef(counts, expect)[0, 1] > 0.95
    assert len(t) / 86400 == pytest.approx(2.0, rel=0.03)
    with pytest.raises(ConfigError, match=r"'m-huge' is not in .*m-large"):
        arrival_times(ServeGenArrivals(process="servegen", path=path, model="m-huge"), rng(), n=5)


def test_synthetic_workload_needs_a_stop():
    with pytest.raises(ConfigError, match="set n_requests or duration_s"):
        parse_experiment(
            make_experiment(
                workload={
                    "kind": "synthetic",
                    "arrivals": {"process": "poisson", "rate_rps": 1},
                    "lengths": {"kind": "fitted", "trace": "azure_llm_2023_conv"},
                }
            )
        )


def test_synthetic_fitted_like_azure_conv_at_5rps():
    """'Azure-conversation-like, 5 req/s': Gamma arrivals with the fitted CV, rate overridden."""
    e = parse_experiment(
        make_experiment(
            workload={
                "kind": "synthetic",
                "n_requests": 200_000,
                "arrivals": {"process": "fitted", "trace": "azure_llm_2023_conv", "rate_rps": 5.0},
                "lengths": {"kind": "fitted", "trace": "azure_llm_2023_conv"},
            }
        )
    )
    t = build_workload(e.workload, np.random.SeedSequence(7))
    g = np.diff(t.arrival_s)
    assert 1 / g.mean() == pytest.approx(5.0, rel=0.01)
    assert g.std() / g.mean() == pytest.approx(1.094, rel=0.05)  # traces/fitted/azure_llm_2023_conv.yaml
    with pytest.raises(ConfigError, match=r"no fitted model 'azure_conv'"):
        build_workload(
            parse_experiment(
                make_experiment(
                    workload={
                        "kind": "synthetic",
                        "n_requests": 5,
                        "arrivals": {"process": "poisson", "rate_rps": 1.0},
                        "lengths": {"kind": "fitted", "trace": "azure_conv"},
                    }
                )
            ).workload,
            np.random.SeedSequence(1),
        )
