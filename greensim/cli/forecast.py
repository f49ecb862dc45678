"""Command group `greensim forecast`: backtests of the carbon-intensity forecasters."""
from __future__ import annotations

from pathlib import Path

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import fail


@click.group("forecast")
def forecast_group():
    """Carbon-intensity forecasts: backtests of the forecasters on the shared series."""


@forecast_group.command("backtest")
@click.argument("region")
@click.option("--forecasters", default="persistence,seasonal_naive:24,seasonal_naive:168,ets", show_default=True,
              help="Comma-separated forecaster names (seasonal_naive:LAG_H sets the lag).")
@click.option("--horizon", default=48, show_default=True, help="Forecast horizon [h].")
@click.option("--every", default=24, show_default=True, help="Hours between forecast origins.")
@click.option("--days", default=None, type=int, help="Only the first N days of origins (default: the whole series).")
@click.option("--start", default=None, help="First origin (ISO timestamp, UTC); default: as early as the history allows.")
@click.option("--path", default=None, type=click.Path(dir_okay=False), help="Series CSV (default: the shared files).")
@click.option("--basis", default="lifecycle", type=click.Choice(["lifecycle", "direct"]), show_default=True)
@click.option("--gap-fill", default="error", type=click.Choice(["error", "linear", "ffill"]), show_default=True)
@click.option("--out", "out_dir", default="results/forecast", show_default=True, type=click.Path(file_okay=False),
              help="Folder for mape_<REGION>.csv and mape_<REGION>.png.")
def forecast_backtest_cmd(region, forecasters, horizon, every, days, start, path, basis, gap_fill, out_dir):
    """Rolling-origin backtest of forecasters on REGION's series: MAPE per horizon (table and plot)."""
    from greensim.carbon.forecast import backtest, make_forecaster, mape_by_horizon, plot_mape, summary_rows
    from greensim.carbon.series import load_region_series
    try:
        s = load_region_series(region, path, basis, gap_fill, where="forecast backtest")
        fs = [make_forecaster(x.strip()) for x in forecasters.split(",") if x.strip()]
        first = None
        if start:
            import pandas as pd
            first = int(round(s.index_of(pd.Timestamp(start, tz="UTC"))))
            if first < max(f.min_history for f in fs):
                raise GreensimError(f"--start {start}: the forecasters need "
                                    f"{max(f.min_history for f in fs)} h of history before it. Start later.")
        n = None if days is None else max(1, days * 24 // every)
        bt = backtest(s, fs, horizon=horizon, every=every, first_origin=first, n_origins=n)
    except GreensimError as exc:
        fail(exc)
    mape = mape_by_horizon(bt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mape.to_csv(out / f"mape_{region}.csv", float_format="%.3f")
    n_orig = bt["origin"].nunique()
    plot_mape(mape, out / f"mape_{region}.png",
              f"{region} ({s.basis}): MAPE per horizon, {n_orig} origins every {every} h")
    rows = summary_rows(mape)
    cols = list(next(iter(rows.values())))
    click.echo(f"{region}: {n_orig} origins from {bt['origin'].min():%Y-%m-%d %H:%M} UTC every {every} h, "
               f"horizon {horizon} h; MAPE [%]")
    w = max(len(k) for k in rows)
    click.echo(f"  {'forecaster':<{w}}  " + "  ".join(f"{c:>6}" for c in cols))
    for k, r in rows.items():
        click.echo(f"  {k:<{w}}  " + "  ".join(f"{r[c]:6.1f}" for c in cols))
    click.echo(f"table: {out / f'mape_{region}.csv'}  plot: {out / f'mape_{region}.png'}")

