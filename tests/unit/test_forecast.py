"""Forecasters read history only; exact values of the naive forecasters; the backtest CLI."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.base.errors import ConfigError
from greensim.carbon.forecast import (
    ForecastView,
    HoltWintersETS,
    Persistence,
    SeasonalNaive,
    backtest,
    make_forecaster,
    mape_by_horizon,
)
from greensim.carbon.series import IntensitySeries, SeriesIntensitySource
from greensim.cli import main
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


@pytest.mark.parametrize("fc", [Persistence(), SeasonalNaive(24), SeasonalNaive(168), HoltWintersETS(window_h=72)])
def test_forecast_never_reads_the_future(fc):
    """Perturbing every value from the interval in progress onwards leaves the forecast unchanged."""
    rng = np.random.default_rng(3)
    t = np.arange(24 * 30)
    vals = 200 + 80 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 10, t.size)
    src = _source(vals)
    now_s = 7200.0  # 07:30 on Jan 20: hours up to 06:00 are observed
    i = int(src._offset + now_s / 3600)
    before = ForecastView(src, fc).at(now_s, 24)
    vals2 = vals.copy()
    vals2[i:] = rng.uniform(0, 1000, vals.size - i)
    after = ForecastView(_source(vals2), fc).at(now_s, 24)
    np.testing.assert_array_equal(before, after)
    # the oracle does see the change: the check above could fail
    assert not np.array_equal(
        ForecastView(src, fc, oracle=True).at(now_s, 24), ForecastView(_source(vals2), fc, oracle=True).at(now_s, 24)
    )


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
