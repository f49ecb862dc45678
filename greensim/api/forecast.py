"""Carbon-intensity forecasts: rolling-origin backtests of the forecasters on a region's series.

As ``greensim forecast backtest`` runs them, and for notebooks::

    from greensim.api.forecast import backtest_region, write_backtest
    bt = backtest_region("ZA", "persistence,seasonal_naive:24", days=30)
    bt.mape                      # MAPE [%] per horizon (rows) and forecaster (columns)
    write_backtest(bt, "results/forecast")
    table = backtest_all()       # every shared series: the default against the 24 h seasonal naive
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import pandas as pd

from greensim.base.errors import ConfigError, GreensimError
from greensim.carbon.forecast import (
    DEFAULT_FORECASTER,
    Forecaster,
    backtest,
    make_forecaster,
    mape_by_horizon,
    plot_mape,
    summary_rows,
)
from greensim.carbon.series import IntensitySeries, list_regions, load_region_series

__all__ = [
    "DEFAULT_FORECASTERS",
    "ALL_FORECASTERS",
    "Backtest",
    "backtest_region",
    "backtest_all",
    "write_backtest",
    "make_forecaster",
]

#: The forecasters ``greensim forecast backtest REGION`` compares by default.
DEFAULT_FORECASTERS = f"persistence,seasonal_naive:24,seasonal_naive:168,ets,{DEFAULT_FORECASTER}"
#: What ``greensim forecast backtest --all`` compares: the baseline (24 h seasonal naive) first.
ALL_FORECASTERS = f"seasonal_naive:24,{DEFAULT_FORECASTER}"


@dataclass
class Backtest:
    """A backtest of one region: the series, every forecast and the MAPE per horizon.

    forecasts : one row per (forecaster, origin, horizon step), see
        :func:`greensim.carbon.forecast.backtest`.
    mape : MAPE [%], one row per horizon step [h], one column per forecaster.
    """

    region: str
    series: IntensitySeries
    forecasts: pd.DataFrame
    mape: pd.DataFrame
    horizon: int
    every: int

    @property
    def n_origins(self) -> int:
        return int(self.forecasts["origin"].nunique())

    @property
    def first_origin(self) -> pd.Timestamp:
        return self.forecasts["origin"].min()

    def summary(self, horizons: Sequence[int] = (1, 6, 12, 24, 48)) -> Dict[str, Dict[str, float]]:
        """MAPE [%] at selected horizons (``h1``, ``h6``, ...) and the mean, per forecaster."""
        return summary_rows(self.mape, tuple(horizons))


def backtest_region(
    region: str,
    forecasters: str | Sequence[str | Forecaster] = DEFAULT_FORECASTERS,
    horizon: int = 48,
    every: int = 24,
    days: Optional[int] = None,
    start: Optional[str] = None,
    path: Optional[str | Path] = None,
    basis: str = "lifecycle",
    gap_fill: str = "error",
) -> Backtest:
    """Rolling-origin backtest of ``forecasters`` on ``region``'s hourly series.

    Parameters
    ----------
    region : zone code, e.g. ``"GB"``, ``"US-CAL-CISO"``.
    forecasters : comma-separated names (``seasonal_naive:LAG_H`` sets the lag), or a list
        of names or :class:`~greensim.carbon.forecast.Forecaster` objects.
    horizon : forecast horizon [h]; every : hours between origins.
    days : only the first ``days`` days of origins (default: the whole series).
    start : first origin (ISO timestamp, UTC); default as early as the history allows.
    path : series CSV (default: the shared files); basis : ``lifecycle`` or ``direct``;
    gap_fill : ``error``, ``linear`` or ``ffill``.

    Raises
    ------
    ConfigError
        Unknown region, forecaster or basis, gaps (with ``gap_fill="error"``), or a
        ``start`` with less history before it than a forecaster needs.
    """
    s = load_region_series(region, path, basis, gap_fill, where="forecast backtest")
    names = forecasters.split(",") if isinstance(forecasters, str) else list(forecasters)
    fs = [make_forecaster(x.strip() if isinstance(x, str) else x) for x in names if not isinstance(x, str) or x.strip()]
    first = None
    if start:
        first = int(round(s.index_of(pd.Timestamp(start, tz="UTC"))))
        if first < max(f.min_history for f in fs):
            raise GreensimError(
                f"--start {start}: the forecasters need "
                f"{max(f.min_history for f in fs)} h of history before it. Start later."
            )
    n = None if days is None else max(1, days * 24 // every)
    bt = backtest(s, fs, horizon=horizon, every=every, first_origin=first, n_origins=n)
    return Backtest(region, s, bt, mape_by_horizon(bt), horizon, every)


def backtest_all(
    regions: Optional[Sequence[str]] = None,
    forecasters: str | Sequence[str | Forecaster] = ALL_FORECASTERS,
    horizon: int = 48,
    every: int = 24,
    days: Optional[int] = None,
    basis: str = "lifecycle",
    gap_fill: str = "linear",
    means: Sequence[int] = (24, 48),
) -> pd.DataFrame:
    """Rolling-origin backtest of every region: mean MAPE per forecaster and its ratio to the first.

    Mean MAPE over ``1..k`` h is the mean absolute percentage error over every origin (from
    the first the forecasters' history allows, every ``every`` h to the end of the series,
    or ``days`` days of them) and every horizon step ``1..k``, for each ``k`` in ``means``
    (at most ``horizon``). All forecasters are scored on the same origins.

    Parameters
    ----------
    regions : zone codes (default: every region of the shared files, 14).
    forecasters : as :func:`backtest_region`; the first is the baseline of the ratios.
    gap_fill : ``linear`` by default: the EIA series have 29 missing hours (PROVENANCE.md).

    Returns
    -------
    DataFrame, one row per region: ``region``, ``n_origins``, ``seconds`` (wall time of
    the backtest), ``mape_<forecaster>_h<k>`` [%] and ``ratio_<forecaster>_h<k>`` (to the
    baseline; <= 0.9 means at least 10 % better).
    """
    if any(not 1 <= k <= horizon for k in means):
        raise ConfigError(f"backtest_all: means {list(means)} must lie in 1..horizon ({horizon}). Raise --horizon.")
    regions = sorted(list_regions()) if regions is None else list(regions)
    rows = []
    for r in regions:
        t0 = time.perf_counter()
        bt = backtest_region(r, forecasters, horizon=horizon, every=every, days=days, basis=basis, gap_fill=gap_fill)
        row: Dict[str, object] = {"region": r, "n_origins": bt.n_origins, "seconds": time.perf_counter() - t0}
        names = list(bt.mape.columns)
        base = bt.forecasts["forecaster"].iloc[0]
        for k in means:
            m = bt.mape.loc[bt.mape.index <= k].mean()
            for c in [base] + [c for c in names if c != base]:
                row[f"mape_{c}_h{k}"] = float(m[c])
            for c in names:
                if c != base:
                    row[f"ratio_{c}_h{k}"] = float(m[c] / m[base])
        rows.append(row)
    return pd.DataFrame(rows)


def write_backtest(bt: Backtest, out_dir: str | Path = "results/forecast") -> Tuple[Path, Path]:
    """Write ``mape_<REGION>.csv`` and ``mape_<REGION>.png`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, png = out / f"mape_{bt.region}.csv", out / f"mape_{bt.region}.png"
    bt.mape.to_csv(csv, float_format="%.3f")
    plot_mape(
        bt.mape, png, f"{bt.region} ({bt.series.basis}): MAPE per horizon, {bt.n_origins} origins every {bt.every} h"
    )
    return csv, png
