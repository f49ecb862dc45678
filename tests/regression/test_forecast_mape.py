"""Backtest MAPE per region, checked against a recorded golden.

Regenerate (and review the diff) with ``GREENSIM_UPDATE_GOLDENS=1 pytest tests/regression/test_forecast_mape.py``.
Span: 28 daily origins from 2023-03-01 (EM) / 2022-03-01 (EIA), 24 h horizon; ETS on
7 origins of three regions (it is slower); ridge (the default) on all 28. The naive
forecasters are exact arithmetic; ridge is least squares (BLAS rounding: 1e-3 % points);
ETS depends on statsmodels' optimiser, hence its looser tolerance.
"""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from greensim.carbon.forecast import (
    HoltWintersETS,
    LaggedRidge,
    Persistence,
    SeasonalNaive,
    backtest,
    mape_by_horizon,
)
from greensim.carbon.series import list_regions, load_region_series

GOLDEN = Path(__file__).parent / "goldens" / "forecast_mape.json"
TOL = {
    "persistence": 1e-6,
    "seasonal_naive_24h": 1e-6,
    "seasonal_naive_168h": 1e-6,
    "ets": 0.5,
    "ridge": 1e-3,
}  # abs, % points
ETS_REGIONS = ("US-CAL-CISO", "GB", "ERCO")


def _compute():
    out = {}
    for region in sorted(list_regions()):
        s = load_region_series(region, gap_fill="linear")
        first = int(s.index_of(pd.Timestamp("2023-03-01" if s.t0.year == 2023 else "2022-03-01", tz="UTC")))
        fs = [Persistence(), SeasonalNaive(24), SeasonalNaive(168), LaggedRidge()]
        m = mape_by_horizon(backtest(s, fs, horizon=24, every=24, first_origin=first, n_origins=28)).mean()
        row = {k: round(float(v), 4) for k, v in m.items()}
        if region in ETS_REGIONS:
            me = mape_by_horizon(
                backtest(s, [HoltWintersETS()], horizon=24, every=24, first_origin=first, n_origins=7)
            ).mean()
            row["ets"] = round(float(me["ets"]), 4)
        out[region] = row
    return out


def test_backtest_mape_per_region_matches_golden(shared_data):
    got = _compute()
    if os.environ.get("GREENSIM_UPDATE_GOLDENS"):
        GOLDEN.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert sorted(got) == sorted(want)
    for region, row in want.items():
        for k, v in row.items():
            assert got[region][k] == pytest.approx(v, abs=TOL[k]), (region, k)
