"""Command group `greensim forecast`: backtests of the carbon-intensity forecasters (:mod:`greensim.api.forecast`)."""

from __future__ import annotations

import click

from greensim.base.errors import ConfigError, GreensimError
from greensim.cli.common import fail


@click.group("forecast")
def forecast_group():
    """Carbon-intensity forecasts: backtests of the forecasters on the shared series."""


@forecast_group.command("backtest")
@click.argument("region", required=False)
@click.option(
    "--all",
    "all_regions",
    is_flag=True,
    help="Every shared region (14): mean MAPE over 1-24 h and 1-48 h of each forecaster and its ratio to "
    "the first (default: the 24 h seasonal naive and the default forecaster) -> backtest_all.csv.",
)
@click.option(
    "--forecasters",
    default=None,
    help="Comma-separated forecaster names (seasonal_naive:LAG_H sets the lag). Default: "
    "persistence,seasonal_naive:24,seasonal_naive:168,ets,ridge; with --all seasonal_naive:24,ridge.",
)
@click.option("--horizon", default=48, show_default=True, help="Forecast horizon [h].")
@click.option("--every", default=24, show_default=True, help="Hours between forecast origins.")
@click.option("--days", default=None, type=int, help="Only the first N days of origins (default: the whole series).")
@click.option(
    "--start", default=None, help="First origin (ISO timestamp, UTC); default: as early as the history allows."
)
@click.option("--path", default=None, type=click.Path(dir_okay=False), help="Series CSV (default: the shared files).")
@click.option("--basis", default="lifecycle", type=click.Choice(["lifecycle", "direct"]), show_default=True)
@click.option(
    "--gap-fill",
    default=None,
    type=click.Choice(["error", "linear", "ffill"]),
    help="Missing hours: error (default for one region) or fill; --all fills linearly by default "
    "(the EIA series have 29 missing hours).",
)
@click.option(
    "--out",
    "out_dir",
    default="results/forecast",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for mape_<REGION>.csv and mape_<REGION>.png (backtest_all.csv with --all).",
)
def forecast_backtest_cmd(
    region, all_regions, forecasters, horizon, every, days, start, path, basis, gap_fill, out_dir
):
    """Rolling-origin backtest of forecasters on REGION's series (or --all): MAPE per horizon (table and plot)."""
    from greensim.api.forecast import ALL_FORECASTERS, DEFAULT_FORECASTERS, backtest_region, write_backtest

    if all_regions:
        if region or start or path:
            fail(ConfigError("--all: drop REGION, --start and --path (it backtests every shared series)."))
        _backtest_all(forecasters or ALL_FORECASTERS, horizon, every, days, basis, gap_fill or "linear", out_dir)
        return
    if not region:
        fail(ConfigError("forecast backtest: give a REGION (e.g. GB) or --all."))
    try:
        bt = backtest_region(
            region,
            forecasters or DEFAULT_FORECASTERS,
            horizon=horizon,
            every=every,
            days=days,
            start=start,
            path=path,
            basis=basis,
            gap_fill=gap_fill or "error",
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


def _backtest_all(forecasters, horizon, every, days, basis, gap_fill, out_dir):
    """`--all`: the mean-MAPE table of every shared region, printed as markdown and written as CSV."""
    from pathlib import Path

    from greensim.api.forecast import backtest_all

    means = tuple(k for k in (24, 48) if k <= horizon) or (horizon,)
    try:
        tab = backtest_all(
            forecasters=forecasters,
            horizon=horizon,
            every=every,
            days=days,
            basis=basis,
            gap_fill=gap_fill,
            means=means,
        )
    except GreensimError as exc:
        fail(exc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "backtest_all.csv"
    tab.to_csv(csv, index=False, float_format="%.4f")
    mape_cols = [c for c in tab.columns if c.startswith(("mape_", "ratio_"))]
    click.echo(
        f"rolling origin every {every} h, horizon {horizon} h, {basis}; mean MAPE [%] over steps 1..k "
        f"(h<k>) and ratio to the first forecaster"
    )
    click.echo("| region | origins | " + " | ".join(mape_cols) + " |")
    click.echo("| --- | ---: | " + " | ".join("---:" for _ in mape_cols) + " |")
    for _, r in tab.iterrows():
        vals = [f"{r[c]:.3f}" if c.startswith("ratio_") else f"{r[c]:.2f}" for c in mape_cols]
        click.echo(f"| {r['region']} | {r['n_origins']} | " + " | ".join(vals) + " |")
    worst = {c: float(tab[c].max()) for c in tab.columns if c.startswith("ratio_")}
    click.echo("worst ratio: " + ", ".join(f"{c} {v:.3f}" for c, v in worst.items()))
    click.echo(f"table: {csv}  ({tab['seconds'].sum():.0f} s)")
