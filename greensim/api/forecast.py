"""Carbon-intensity forecasts: rolling-origin backtests of the forecasters on a region's series.

As ``greensim forecast backtest`` runs them, and for notebooks::

    from greensim.api.forecast import backtest_region, write_backtest
    bt = backtest_region("ZA", "persistence,seasonal_naive:24", days=30)
    bt.mape                      # MAPE [%] per horizon (rows) and forecaster (columns)
    write_backtest(bt, "results/forecast")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import pandas as pd

from greensim.base.errors import GreensimError
from greensim.carbon.forecast import Forecaster, backtest, make_forecaster, mape_by_horizon, plot_mape, summary_rows
from greensim.carbon.series import IntensitySeries, load_region_series

__all__ = ["DEFAULT_FORECASTERS", "Backtest", "backtest_region", "write_backtest", "make_forecaster"]

#: The forecasters ``greensim forecast backtest`` compares by default.
DEFAULT_FORECASTERS = "persistence,seasonal_naive:24,seasonal_naive:168,ets"


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
