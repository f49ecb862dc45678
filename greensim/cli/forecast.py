"""Command group `greensim forecast`: backtests of the carbon-intensity forecasters (:mod:`greensim.api.forecast`)."""

from __future__ import annotations

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import fail


@click.group("forecast")
def forecast_group():
    """Carbon-intensity forecasts: backtests of the forecasters on the shared series."""


@forecast_group.command("backtest")
@click.argument("region")
@click.option(
    "--forecasters",
    default="persistence,seasonal_naive:24,seasonal_naive:168,ets",
    show_default=True,
    help="Comma-separated forecaster names (seasonal_naive:LAG_H sets the lag).",
)
@click.option("--horizon", default=48, show_default=True, help="Forecast horizon [h].")
@click.option("--every", default=24, show_default=True, help="Hours between forecast origins.")
@click.option("--days", default=None, type=int, help="Only the first N days of origins (default: the whole series).")
@click.option(
    "--start", default=None, help="First origin (ISO timestamp, UTC); default: as early as the history allows."
)
@click.option("--path", default=None, type=click.Path(dir_okay=False), help="Series CSV (default: the shared files).")
@click.option("--basis", default="lifecycle", type=click.Choice(["lifecycle", "direct"]), show_default=True)
@click.option("--gap-fill", default="error", type=click.Choice(["error", "linear", "ffill"]), show_default=True)
@click.option(
    "--out",
    "out_dir",
    default="results/forecast",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for mape_<REGION>.csv and mape_<REGION>.png.",
)
def forecast_backtest_cmd(region, forecasters, horizon, every, days, start, path, basis, gap_fill, out_dir):
    """Rolling-origin backtest of forecasters on REGION's series: MAPE per horizon (table and plot)."""
    from greensim.api.forecast import backtest_region, write_backtest

    try:
        bt = backtest_region(
            region,
            forecasters,
            horizon=horizon,
            every=every,
            days=days,
            start=start,
            path=path,
            basis=basis,
            gap_fill=gap_fill,
        )
    except GreensimError as exc:
        fail(exc)
    csv, png = write_backtest(bt, out_dir)
    rows = bt.summary()
    cols = list(next(iter(rows.values())))
    click.echo(
        f"{region}: {bt.n_origins} origins from {bt.first_origin:%Y-%m-%d %H:%M} UTC every {every} h, "
        f"horizon {horizon} h; MAPE [%]"
    )
    w = max(len(k) for k in rows)
    click.echo(f"  {'forecaster':<{w}}  " + "  ".join(f"{c:>6}" for c in cols))
    for k, r in rows.items():
        click.echo(f"  {k:<{w}}  " + "  ".join(f"{r[c]:6.1f}" for c in cols))
    click.echo(f"table: {csv}  plot: {png}")
