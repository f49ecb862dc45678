"""Forecasters read history only; exact values of the naive forecasters; the backtest CLI."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.base.errors import ConfigError
from greensim.carbon.forecast import (
    DEFAULT_FORECASTER,
    ForecastView,
    HoltWintersETS,
    LaggedRidge,
    Persistence,
    SeasonalNaive,
    backtest,
    make_forecaster,
    mape_by_horizon,
)
from greensim.carbon.series import IntensitySeries, SeriesIntensitySource, load_region_series
from greensim.cli import main
from greensim.experiment.carbon import ForecastOpts
from greensim.experiment.load import parse_experiment


def _series(values):
    return IntensitySeries("X", pd.Timestamp("2023-01-01", tz="UTC"), 3600.0, np.asarray(values, dtype=float))


def _source(values, start="2023-01-20T05:30"):
    return SeriesIntensitySource(start=start, series=_series(values))


def test_naive_forecasts():
    h = np.arange(48.0)
    assert Persistence().forecast(h, 3).tolist() == [47.0] * 3
    assert SeasonalNaive(24).forecast(h, 26).tolist() == list(range(24, 48)) + [24.0, 25.0]
    assert make_forecaster("seasonal_naive:168").lag == 168
    with pytest.raises(ConfigError, match="unknown carbon-intensity forecaster 'arima'"):
        make_forecaster("arima")


@pytest.mark.parametrize(
    "fc", [Persistence(), SeasonalNaive(24), SeasonalNaive(168), HoltWintersETS(window_h=72), LaggedRidge()]
)
def test_forecast_never_reads_the_future(fc):
    """Perturbing every value from the interval in progress onwards leaves the forecast unchanged."""
    rng = np.random.default_rng(3)
    t = np.arange(24 * 60)
    vals = 200 + 80 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 10, t.size)
    src = _source(vals, start="2023-02-14T05:30")  # 1,085 h of history: more than ridge's 672
    now_s = 7200.0  # 07:30 on Jan 20: hours up to 06:00 are observed
    i = int(src._offset + now_s / 3600)
    before = ForecastView(src, fc).at(now_s, 24)
    vals2 = vals.copy()
    vals2[i:] = rng.uniform(0, 1000, vals.size - i)
    after = ForecastView(_source(vals2, start="2023-02-14T05:30"), fc).at(now_s, 24)
    np.testing.assert_array_equal(before, after)
    # the oracle does see the change: the check above could fail
    src2 = _source(vals2, start="2023-02-14T05:30")
    assert not np.array_equal(
        ForecastView(src, fc, oracle=True).at(now_s, 24), ForecastView(src2, fc, oracle=True).at(now_s, 24)
    )


def _weekly_ar_series(n_days=70, seed=5):
    """Daily and weekly cycles times a persistent AR(1) factor: what the lags can learn."""
    rng = np.random.default_rng(seed)
    t = np.arange(24 * n_days)
    ar = np.zeros(t.size)
    for k in range(1, t.size):
        ar[k] = 0.95 * ar[k - 1] + rng.normal(0, 0.03)
    return 300 * (1 + 0.3 * np.sin(2 * np.pi * t / 24) + 0.1 * (t // 24 % 7 >= 5)) * np.exp(ar)


def test_ridge_is_deterministic_shaped_and_horizon_consistent():
    v = _weekly_ar_series()
    f = LaggedRidge()
    a, b = f.forecast(v[:1000], 48), LaggedRidge().forecast(v[:1000].copy(), 48)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (48,) and np.isfinite(a).all() and (a > 0).all()
    np.testing.assert_allclose(f.forecast(v[:1000], 24), a[:24], rtol=1e-12)  # step h ignores the horizon
    assert f.forecast(v[:1000], 168).shape == (168,)
    assert f.min_history == 168 + 21 * 24
    f.forecast(v[: f.min_history], 24)
    with pytest.raises(ConfigError, match="ridge: needs 672 past values"):
        f.forecast(v[: f.min_history - 1], 24)
    w = v[:1000].copy()
    w[990] = 0.0  # no logarithm: the 24 h seasonal naive
    np.testing.assert_array_equal(f.forecast(w, 30), SeasonalNaive(24).forecast(w, 30))
    with pytest.raises(ConfigError, match="half_life_h"):
        LaggedRidge(half_life_h=0)
    with pytest.raises(ConfigError, match="window_h 100 must be >= week_h"):
        LaggedRidge(window_h=100)
    short = LaggedRidge(window_h=168)  # the shortest window still gives finite forecasts
    assert np.isfinite(short.forecast(v[:1000], 48)).all()


def test_ridge_reads_only_the_history_it_is_given():
    """Values after the origin never reach the forecast; values before it do (the test can fail)."""
    v = _weekly_ar_series()
    f = LaggedRidge()
    base = f.forecast(v[:1200], 24)
    w = v.copy()
    w[1200:] *= 3.0
    np.testing.assert_array_equal(f.forecast(w[:1200], 24), base)
    bt = backtest(_series(w), [f], horizon=24, every=24, first_origin=1200, n_origins=1)
    np.testing.assert_array_equal(bt["forecast"].to_numpy(), base)
    w[1199] *= 1.5
    assert not np.array_equal(f.forecast(w[:1200], 24), base)


def test_ridge_beats_the_seasonal_naive_on_a_persistent_series():
    bt = backtest(_series(_weekly_ar_series()), [SeasonalNaive(24), LaggedRidge()], horizon=24, every=24)
    m = mape_by_horizon(bt).mean()
    assert m["ridge"] < 0.9 * m["seasonal_naive_24h"]


def test_default_forecaster_is_ridge():
    assert ForecastOpts().kind == DEFAULT_FORECASTER == "ridge"
    assert isinstance(make_forecaster(ForecastOpts().kind), LaggedRidge)


@pytest.mark.parametrize("region", ["GB", "IN-WE"])
def test_default_beats_seasonal_naive_by_10_percent(shared_data, region):
    """The first 60 daily origins of two shared series (wind-driven GB; flat, modelled IN-WE)."""
    s = load_region_series(region)
    fs = [SeasonalNaive(24), make_forecaster(DEFAULT_FORECASTER)]
    m = mape_by_horizon(backtest(s, fs, horizon=24, every=24, n_origins=60)).mean()
    assert m["ridge"] <= 0.9 * m["seasonal_naive_24h"], m.to_dict()


def test_ets_beats_persistence_on_a_clean_daily_cycle():
    t = np.arange(24 * 21)
    vals = 300 + 100 * np.sin(2 * np.pi * t / 24)
    bt = backtest(
        _series(vals), [Persistence(), HoltWintersETS()], horizon=24, every=24, n_origins=3, first_origin=24 * 14
    )
    m = mape_by_horizon(bt).mean()
    assert m["ets"] < 1.0 < m["persistence"]


def test_backtest_mape_is_the_mean_absolute_percentage_error():
    vals = np.array([100.0, 200.0, 100.0, 200.0, 100.0, 200.0])
    bt = backtest(_series(vals), [Persistence()], horizon=2, every=2, first_origin=2)
    # origins 2 and 4: last value 200, actuals (100, 200): APE 1.0 and 0.0
    np.testing.assert_allclose(mape_by_horizon(bt)["persistence"].to_numpy(), [100.0, 0.0])


def test_experiment_forecast_view(shared_data):
    d = make_experiment(
        **{
            "carbon.intensity": {
                "kind": "series",
                "region": "US-CAL-CISO",
                "start": "2023-06-10T08:00",
                "timezone": "America/Los_Angeles",
            },
            "carbon.forecast": {"kind": "seasonal_naive", "lag_h": 24, "horizon_h": 24},
        }
    )
    p = prepare(parse_experiment(d))
    v = p.intensity.series.values
    i = int(p.intensity._offset)
    np.testing.assert_array_equal(p.forecast.at(0.0, 24), v[i - 24 : i])
    d["carbon"]["intensity"] = {"kind": "constant", "gco2_per_kwh": 100}
    with pytest.raises(ConfigError, match="carbon.forecast.*series"):
        prepare(parse_experiment(d))


def test_experiment_default_forecast_is_ridge_on_history(shared_data):
    d = make_experiment(
        **{
            "carbon.intensity": {"kind": "series", "region": "GB", "start": "2023-06-10T08:00"},
            "carbon.forecast": {},
        }
    )
    p = prepare(parse_experiment(d))
    v = p.intensity.series.values
    i = int(p.intensity._offset)
    assert isinstance(p.forecast.forecaster, LaggedRidge)
    np.testing.assert_array_equal(p.forecast.at(0.0, 24), LaggedRidge().forecast(v[:i], 24))
    np.testing.assert_array_equal(p.forecast.at(1800.0, 1), LaggedRidge().forecast(v[:i], 1))  # same hour
    d["carbon"]["intensity"]["start"] = "2023-01-20T08:00"  # 464 h of history: too few
    with pytest.raises(ConfigError, match="ridge needs 672 past values.*seasonal_naive"):
        prepare(parse_experiment(d)).forecast.at(0.0, 24)


def test_cli_backtest(shared_data, tmp_path):
    r = CliRunner().invoke(
        main,
        [
            "forecast",
            "backtest",
            "ZA",
            "--forecasters",
            "persistence,seasonal_naive:24",
            "--days",
            "5",
            "--horizon",
            "24",
            "--out",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 0, r.output
    m = pd.read_csv(tmp_path / "mape_ZA.csv", index_col=0)
    assert list(m.index) == list(range(1, 25))
    assert f"{m['seasonal_naive_24h'].mean():6.1f}" in r.output
    assert (tmp_path / "mape_ZA.png").stat().st_size > 5000
    r = CliRunner().invoke(main, ["forecast", "backtest", "ATLANTIS", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown region 'ATLANTIS'" in r.output


def test_cli_backtest_all(shared_data, tmp_path):
    """--all: one row per shared series, the default's ratio to the seasonal naive over 1..24 h."""
    r = CliRunner().invoke(
        main, ["forecast", "backtest", "--all", "--days", "2", "--horizon", "24", "--out", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    t = pd.read_csv(tmp_path / "backtest_all.csv")
    assert len(t) == 14 and set(t["n_origins"]) == {2}
    np.testing.assert_allclose(t["ratio_ridge_h24"], t["mape_ridge_h24"] / t["mape_seasonal_naive_24h_h24"], rtol=1e-3)
    assert "| GB | 2 |" in r.output and "worst ratio: ratio_ridge_h24" in r.output
    r = CliRunner().invoke(main, ["forecast", "backtest", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "give a REGION" in r.output
    r = CliRunner().invoke(main, ["forecast", "backtest", "GB", "--all", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--all: drop REGION" in r.output


def test_backtest_all_mean_mape_is_over_steps_up_to_k(shared_data):
    from greensim.api.forecast import backtest_all, backtest_region

    t = backtest_all(["ZA"], "persistence,seasonal_naive:24", horizon=48, days=3, means=(12, 48))
    bt = backtest_region("ZA", "persistence,seasonal_naive:24", horizon=48, days=3, gap_fill="linear")
    sub = bt.forecasts[bt.forecasts["horizon_h"] <= 12]
    want = sub.groupby("forecaster")["ape_frac"].mean() * 100
    assert t.loc[0, "mape_persistence_h12"] == pytest.approx(want["persistence"])
    assert t.loc[0, "ratio_seasonal_naive_24h_h12"] == pytest.approx(want["seasonal_naive_24h"] / want["persistence"])
    with pytest.raises(ConfigError, match="means"):
        backtest_all(["ZA"], "persistence", horizon=24, means=(48,))
