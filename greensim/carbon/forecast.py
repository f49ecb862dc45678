"""Carbon-intensity forecasters (history only) and a rolling-origin backtest.

A forecaster is a function of the *past*: :meth:`Forecaster.forecast` receives the values
observed before the forecast origin and nothing else, so it cannot read the future by
construction. :class:`ForecastView` is what policies hold: at simulated time ``t`` it
passes the series up to the last *completed* interval before ``t`` to the forecaster
(or, only with ``oracle=True``, returns the actual future values for comparison).

Forecasters: ``persistence`` (last value), ``seasonal_naive`` (same hour ``lag_h`` ago:
24 h = yesterday, 168 h = last week; the standard baseline in research/carbon.md sec. 4),
``ets`` (Holt-Winters additive-seasonal exponential smoothing, statsmodels, fitted
on a trailing window at each origin) and ``ridge`` (:class:`LaggedRidge`, the default
:data:`DEFAULT_FORECASTER`: direct multi-horizon ridge regression on lagged values, after
CarbonCast's lagged-value features, refitted on a trailing window at each origin).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

from greensim.base.errors import ConfigError
from greensim.base.lazy import lazy_module
from greensim.base.registry import Registry
from greensim.carbon.series import IntensitySeries, SeriesIntensitySource

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = [
    "FORECASTERS",
    "Forecaster",
    "Persistence",
    "SeasonalNaive",
    "HoltWintersETS",
    "LaggedRidge",
    "DEFAULT_FORECASTER",
    "ForecastView",
    "make_forecaster",
    "backtest",
    "mape_by_horizon",
]

FORECASTERS: Registry = Registry("carbon-intensity forecaster", entry_point_group="greensim.forecasters")

#: the forecaster of ``carbon.forecast`` without a ``kind``: :class:`LaggedRidge` beats the
#: 24 h seasonal naive by >= 10 % mean MAPE (horizons 1-24 h and 1-48 h) on each of the 14 shared series
#: (rolling origin, whole series; README "Forecasting", ``greensim forecast backtest --all``)
DEFAULT_FORECASTER = "ridge"


class Forecaster(ABC):
    """Forecasts the next ``horizon`` values of an evenly spaced series from its history."""

    name = "forecaster"
    #: history the forecaster needs [steps]
    min_history: int = 1

    @abstractmethod
    def forecast(self, history: np.ndarray, horizon: int) -> np.ndarray:
        """Forecast values ``history.size .. history.size + horizon - 1`` [gCO2e/kWh].

        Parameters
        ----------
        history : observed values up to (excluding) the origin, oldest first [gCO2e/kWh].
        horizon : number of steps to forecast.
        """


@FORECASTERS.register("persistence")
class Persistence(Forecaster):
    """Every future value equals the last observed one."""

    name = "persistence"

    def forecast(self, history, horizon):
        return np.full(horizon, float(history[-1]))


@FORECASTERS.register("seasonal_naive")
class SeasonalNaive(Forecaster):
    """Value ``lag_h`` steps earlier (repeating the last season beyond one lag).

    Parameters
    ----------
    lag_h : season length [steps = hours for hourly data]; 24 = same hour yesterday,
        168 = same hour last week.
    """

    def __init__(self, lag_h: int = 24):
        if lag_h < 1:
            raise ConfigError(f"seasonal_naive: lag_h {lag_h} must be >= 1.")
        self.lag = int(lag_h)
        self.min_history = self.lag
        self.name = f"seasonal_naive_{self.lag}h"

    def forecast(self, history, horizon):
        last = np.asarray(history[-self.lag :], dtype=float)
        return last[np.arange(horizon) % self.lag]


@FORECASTERS.register("ets")
class HoltWintersETS(Forecaster):
    """Additive-seasonal exponential smoothing (Holt-Winters, no trend) on a trailing window.

    Parameters
    ----------
    season_h : seasonal period [steps]; 24 for a daily cycle in hourly data.
    window_h : trailing history used for each fit [steps] (default 14 days).
    """

    def __init__(self, season_h: int = 24, window_h: int = 14 * 24):
        self.season = int(season_h)
        self.window = int(window_h)
        self.min_history = max(2 * self.season + 1, 1)
        self.name = "ets"

    def forecast(self, history, horizon):
        import warnings

        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        y = np.asarray(history[-self.window :], dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = ExponentialSmoothing(
                y, trend=None, seasonal="add", seasonal_periods=self.season, initialization_method="estimated"
            ).fit()
            f = np.asarray(fit.forecast(horizon), dtype=float)
        if not np.isfinite(f).all():  # degenerate fit: fall back to the seasonal naive
            return SeasonalNaive(self.season).forecast(history, horizon)
        return np.maximum(f, 0.0)  # an intensity is never negative


@FORECASTERS.register("ridge")
class LaggedRidge(Forecaster):
    """Direct multi-horizon ridge regression on lagged values, refitted at every origin.

    The regression CarbonCast's first tier and its baselines use (Maji et al., "CarbonCast:
    multi-day forecasting of grid carbon intensity", ACM BuildSys 2022: lagged carbon
    intensity plus calendar features), without the weather forecasts we do not have. For each
    step ``h`` of the horizon one linear model predicts ``log y[t+h-1]`` from what is known at
    origin ``t``: the last three values, the same hour on the latest day and the latest week
    available (``y[t+h-1-24k]``, ``y[t+h-1-168m]``), the mean of the last 24 h and of the 24 h
    before, the value 25 h ago, and the last 24 h's minimum and maximum.

    The ridge penalty grows with the step, ``ridge * sqrt(h)``: what the lags say about the
    target fades with ``h`` (the last hours say little about tomorrow afternoon) while the
    estimation noise of their coefficients (the same ~112 weighted rows at every step) does not,
    so longer steps shrink harder toward the intercept, the trailing same-hour mean (the
    seasonal profile). The square root is the growth of the error standard deviation of a
    random walk with the step, a parameter-free choice rather than a fitted rate. With a
    constant penalty of 1, 1-48 h forecasts missed the 10 % margin over the seasonal naive on
    US-CAL-CISO (0.904); with ``sqrt(h)`` all 14 series reach it at 1-24 h and 1-48 h, and
    linear ramps from 1 at step 1 to 5-21 at step 48 gave 0.895-0.896 there (``sqrt``: 0.896),
    so the result does not hinge on the exact shape. Extra same-hour features (two days back, the
    7-day same-hour mean) and a longer window or half-life did worse: with ~40 effective
    same-hour rows per fit, added coefficients cost more variance than they remove bias.

    The model is fitted on the trailing ``window_h`` of history only, on past origins at the
    same hour of day as ``t`` (so the intercept is the hour-of-day effect: a per-phase model
    rather than hour one-hots), with weights halving every ``half_life_h`` (the grid mix drifts
    with the season), ridge penalty ``ridge`` on standardised features. Logs make errors
    relative (MAPE is the score); the point forecast is ``exp(mean - var)``, the minimiser of
    the expected absolute percentage error under log-normal residuals (Gneiting, "Making and
    evaluating point forecasts", JASA 2011: the MAPE-optimal point is the median of the density
    proportional to ``f(y)/y``). Step ``h`` does not depend on the horizon asked for, so
    ``forecast(x, 48)[:24] == forecast(x, 24)``.

    The defaults were chosen on the rolling-origin backtest of the 14 shared series (README,
    "Forecasting"): 112-day window, 28-day half-life, penalty 1 (times ``sqrt(h)``). A window with a value <= 0
    (no logarithm) falls back to the 24 h seasonal naive.

    Parameters
    ----------
    window_h : trailing history used for each fit [steps] (default 112 days).
    half_life_h : age at which a training origin weighs half [steps] (default 28 days).
    ridge : L2 penalty on the standardised coefficients at step 1 (the intercept is free);
        step ``h`` uses ``ridge * sqrt(h)`` [-].
    season_h, week_h : daily and weekly period [steps] (hourly data: 24 and 168).
    """

    #: days of same-hour training origins the first fit has beyond one week of lags: 21, about
    #: twice the 11 coefficients of each per-step model (our choice, not a cited value)
    MIN_FIT_DAYS = 21

    def __init__(
        self,
        window_h: int = 112 * 24,
        half_life_h: float = 28 * 24,
        ridge: float = 1.0,
        season_h: int = 24,
        week_h: int = 168,
    ):
        for field, v in (("window_h", window_h), ("half_life_h", half_life_h), ("season_h", season_h)):
            if not v > 0:
                raise ConfigError(f"ridge: {field} {v} must be > 0.")
        if ridge < 0:
            raise ConfigError(f"ridge: ridge penalty {ridge} must be >= 0 (0 = least squares).")
        if week_h < season_h:
            raise ConfigError(f"ridge: week_h {week_h} must be >= season_h {season_h}.")
        if window_h < week_h:
            raise ConfigError(f"ridge: window_h {window_h} must be >= week_h {week_h} (7 fits per hour of day).")
        self.window, self.half_life, self.ridge = int(window_h), float(half_life_h), float(ridge)
        self.season, self.week = int(season_h), int(week_h)
        self.min_history = self.week + self.MIN_FIT_DAYS * self.season
        self.name = "ridge"

    def _features(self, y: np.ndarray, cs: np.ndarray, s: np.ndarray, h: int) -> np.ndarray:
        """Feature rows for origins ``s`` (arrays of indices) and step ``h`` (1-based)."""
        d, w = self.season, self.week
        j = s + h - 1
        lag_d = d * ((h + d - 1) // d)  # latest same-hour day before the origin
        lag_w = w * ((h + w - 1) // w)
        win = np.lib.stride_tricks.sliding_window_view(y, d)
        last = win[s - d]  # y[s-d : s]
        return np.column_stack(
            [
                y[s - 1],
                y[s - 2],
                y[s - 3],
                y[j - lag_d],
                y[j - lag_w],
                (cs[s] - cs[s - d]) / d,
                (cs[s - d] - cs[s - 2 * d]) / d,
                y[s - d - 1],
                last.min(axis=1),
                last.max(axis=1),
            ]
        )

    def forecast(self, history, horizon):
        x = np.asarray(history, dtype=float)
        n = x.size
        if n < self.min_history:
            raise ConfigError(f"ridge: needs {self.min_history} past values, got {n}.")
        # oldest value any training row reads: window + horizon back, plus a week and two days of lags
        lo_all = max(n - (self.window + horizon + self.week + 2 * self.season), 0)
        seg = x[lo_all:]
        if not (np.isfinite(seg).all() and (seg > 0).all()):
            return SeasonalNaive(self.season).forecast(history, horizon)
        y = np.full(n, np.nan)
        y[lo_all:] = np.log(seg)
        cs = np.concatenate([[0.0], np.nancumsum(y)])
        out = np.empty(horizon)
        for h in range(1, horizon + 1):
            lag_w = self.week * ((h + self.week - 1) // self.week)
            first = max(n - h + 1 - self.window, lo_all + max(lag_w - h + 1, 2 * self.season + 1))
            last = n - h  # the target s + h - 1 must be observed
            s = np.arange(last - (last - n) % self.season, first - 1, -self.season)[::-1]  # s = n mod season
            X = self._features(y, cs, s, h)
            t = y[s + h - 1]
            x0 = self._features(y, cs, np.array([n]), h)[0]
            mu, sd = X.mean(axis=0), X.std(axis=0)
            sd[sd == 0] = 1.0
            Z = np.column_stack([np.ones(s.size), (X - mu) / sd])
            wt = 0.5 ** ((n - s) / self.half_life)
            # horizon-dependent shrinkage toward the hour-of-day intercept: the lags' signal fades
            # with the step while their coefficients' estimation noise does not (class docstring)
            pen = np.full(Z.shape[1], self.ridge * np.sqrt(h))
            pen[0] = 0.0
            Zw = Z * wt[:, None]
            b = np.linalg.solve(Zw.T @ Z + np.diag(pen), Zw.T @ t)
            r = t - Z @ b
            var = float(np.sum(wt * r * r) / np.sum(wt))
            out[h - 1] = np.concatenate([[1.0], (x0 - mu) / sd]) @ b - var
        return np.exp(out)


def make_forecaster(spec: str | Forecaster, **kw) -> Forecaster:
    """A forecaster from a name (``persistence``, ``ets``, ``seasonal_naive`` or ``seasonal_naive:168``)."""
    if isinstance(spec, Forecaster):
        return spec
    name, _, arg = str(spec).partition(":")
    cls = FORECASTERS.get(name, field="forecaster")
    if arg:
        if name != "seasonal_naive":
            raise ConfigError(f"forecaster '{spec}': only seasonal_naive takes a ':LAG_H' argument.")
        kw["lag_h"] = int(arg)
    return cls(**kw)


class ForecastView:
    """Forecasts that a policy may read during a run.

    Parameters
    ----------
    source : the run's :class:`SeriesIntensitySource`.
    forecaster : a :class:`Forecaster` (history only).
    oracle : return the actual future values instead (comparison only).
    """

    def __init__(self, source: SeriesIntensitySource, forecaster: Forecaster, oracle: bool = False):
        self.source, self.forecaster, self.oracle = source, forecaster, oracle
        self._last: Optional[tuple] = None  # (history length, horizon, forecast): policies ask per event

    @property
    def step_s(self) -> float:
        """Length of one forecast interval [s] (the series' step: 3600 for hourly data)."""
        return float(self.source.series.step_s)

    def interval_start_s(self, t_s: float) -> float:
        """Simulated start of the interval containing ``t_s`` [s]: the origin of :meth:`at`'s
        first value (negative for an interval that began before simulated t = 0)."""
        s = self.source.series
        i = int(np.floor(self.source._offset + t_s / s.step_s))
        return (i - self.source._offset) * s.step_s

    def at(self, t_s: float, horizon: int) -> np.ndarray:
        """Forecast of the ``horizon`` intervals starting with the one containing ``t_s`` [gCO2e/kWh]."""
        s = self.source.series
        i = int(np.floor(self.source._offset + t_s / s.step_s))  # interval in progress: not yet observed
        if self.oracle:
            out = s.values[i : i + horizon]
            if out.size < horizon:
                raise ConfigError(f"oracle forecast at t = {t_s:g} s runs past the end of the series of '{s.region}'.")
            return out.copy()
        hist = s.values[:i]
        if hist.size < self.forecaster.min_history:
            raise ConfigError(
                f"forecast at t = {t_s:g} s: {self.forecaster.name} needs {self.forecaster.min_history} "
                f"past values of '{s.region}', only {hist.size} exist. Start later in the series "
                f"or set carbon.forecast.kind to one that needs less (seasonal_naive: lag_h)."
            )
        if self._last is not None and self._last[0] == i and self._last[1] == horizon:
            return self._last[2].copy()
        out = np.asarray(self.forecaster.forecast(hist, horizon), dtype=float)
        self._last = (i, horizon, out)
        return out.copy()


def backtest(
    series: IntensitySeries,
    forecasters: Sequence[Forecaster],
    horizon: int = 48,
    every: int = 24,
    first_origin: Optional[int] = None,
    n_origins: Optional[int] = None,
) -> pd.DataFrame:
    """Rolling-origin backtest: forecast from each origin using only earlier values.

    Parameters
    ----------
    series : the actual values.
    forecasters : compared on the same origins.
    horizon : steps forecast from each origin.
    every : steps between origins.
    first_origin : index of the first origin (default: the longest history any forecaster needs).
    n_origins : number of origins (default: as many as fit).

    Returns
    -------
    DataFrame with one row per (forecaster, origin, horizon step): ``forecaster``,
    ``origin`` (timestamp), ``horizon_h`` (1-based), ``actual``, ``forecast``, ``ape_frac``.
    """
    v = series.values
    start = first_origin if first_origin is not None else max(f.min_history for f in forecasters)
    origins = list(range(start, len(v) - horizon + 1, every))
    if n_origins is not None:
        origins = origins[:n_origins]
    if not origins:
        raise ConfigError(
            f"backtest: series of '{series.region}' ({len(v)} values) is too short for origin "
            f"{start} and horizon {horizon}."
        )
    ts = series.timestamps()
    frames: List[pd.DataFrame] = []
    h = np.arange(1, horizon + 1)
    for f in forecasters:
        for o in origins:
            fc = f.forecast(v[:o], horizon)
            act = v[o : o + horizon]
            with np.errstate(divide="ignore", invalid="ignore"):
                ape = np.where(act > 0, np.abs(fc - act) / act, np.nan)
            frames.append(
                pd.DataFrame(
                    {
                        "forecaster": f.name,
                        "origin": ts[o],
                        "horizon_h": h,
                        "actual": act,
                        "forecast": fc,
                        "ape_frac": ape,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def mape_by_horizon(bt: pd.DataFrame) -> pd.DataFrame:
    """MAPE [%] per forecaster (columns) and horizon step (rows) of a :func:`backtest` table."""
    return bt.groupby(["horizon_h", "forecaster"])["ape_frac"].mean().unstack("forecaster") * 100.0


def plot_mape(mape: pd.DataFrame, path, title: str) -> None:
    """PNG of MAPE against horizon, one line per forecaster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for c in mape.columns:
        ax.plot(mape.index, mape[c], marker=".", label=c)
    ax.set_xlabel("forecast horizon [h]")
    ax.set_ylabel("MAPE [%]")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_rows(mape: pd.DataFrame, horizons=(1, 6, 12, 24, 48)) -> Dict[str, Dict[str, float]]:
    """MAPE at selected horizons and the mean over all horizons, per forecaster [%]."""
    out = {}
    for c in mape.columns:
        row = {f"h{h}": float(mape[c].loc[h]) for h in horizons if h in mape.index}
        row["mean"] = float(mape[c].mean())
        out[c] = row
    return out
