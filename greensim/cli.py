"""Command line: thin wrappers over the library."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import GreensimError

SUMMARY_ROWS = [
    ("requests (completed / rejected)", lambda s: f"{s['n_completed']} / {s['n_rejected']}"),
    ("simulated duration", lambda s: f"{s['duration_s']:.1f} s"),
    ("throughput", lambda s: f"{s['throughput_rps']:.2f} req/s, {s['output_tokens_per_s']:.0f} tok/s"),
    ("SLO attainment (TTFT and TPOT)", lambda s: f"{s['slo_attainment_frac']:.1%}"),
    ("TTFT p50 / p90 / p99", lambda s: f"{s['ttft_s_p50']:.3f} / {s['ttft_s_p90']:.3f} / {s['ttft_s_p99']:.3f} s"),
    ("TPOT p50 / p90 / p99", lambda s: f"{1e3 * s['tpot_s_p50']:.1f} / {1e3 * s['tpot_s_p90']:.1f} / {1e3 * s['tpot_s_p99']:.1f} ms"),
    ("preemptions", lambda s: f"{s['n_preemptions']}"),
    ("energy", lambda s: f"{s['energy_kwh']:.4f} kWh"),
    ("carbon operational / embodied", lambda s: f"{s['operational_gco2']:.1f} / {s['embodied_gco2']:.1f} gCO2e"),
    ("carbon per request", lambda s: f"{s['carbon_gco2_per_request']:.4f} gCO2e"),
    ("carbon per 1k output tokens", lambda s: f"{s['carbon_gco2_per_1k_output_tokens']:.4f} gCO2e"),
]


def _fail(exc: GreensimError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group()
@click.version_option(package_name="greensim")
def main() -> None:
    """greensim: simulate carbon-aware LLM serving on heterogeneous GPUs."""


@main.command("run")
@click.argument("experiment", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field, e.g. --set workload.rate_rps=3 (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Parent folder for results (default: output.dir of the experiment).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
def run_cmd(experiment, overrides, out_dir, no_plots):
    """Run EXPERIMENT (a YAML file; default: the bundled quickstart) and write a results folder."""
    from .runner import run
    ov = list(overrides) + (["output.plots=false"] if no_plots else [])
    try:
        res = run(experiment, overrides=ov, out_dir=out_dir)
    except GreensimError as exc:
        _fail(exc)
    s = res.summary
    click.echo(f"greensim: {res.experiment.name} (model {res.experiment.model}, seed {res.experiment.seed})")
    w = max(len(k) for k, _ in SUMMARY_ROWS)
    for k, f in SUMMARY_ROWS:
        click.echo(f"  {k:<{w}}  {f(s)}")
    click.echo(f"  {'wall time':<{w}}  {res.wall_s:.2f} s")
    click.echo(f"results: {res.folder}")


@main.command("validate")
@click.argument("experiment", type=click.Path(dir_okay=False))
def validate_cmd(experiment):
    """Check EXPERIMENT without running it: schema, names of GPUs/models/plug-ins, paths."""
    from .validate import validate_experiment
    try:
        msg = validate_experiment(experiment)
    except GreensimError as exc:
        _fail(exc)
    click.echo(msg)


@main.command("schema")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to a file instead of stdout.")
def schema_cmd(out):
    """Print the JSON Schema of the experiment format (for editors)."""
    from .config import json_schema
    text = json.dumps(json_schema(), indent=2)
    if out:
        Path(out).write_text(text + "\n")
    else:
        click.echo(text)


@main.group("forecast")
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
    from .carbon.forecast import backtest, make_forecaster, mape_by_horizon, plot_mape, summary_rows
    from .carbon.series import load_region_series
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
        _fail(exc)
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


@main.group("aging")
def aging_group():
    """GPU aging: how SLO attainment and carbon per request move as a GPU group ages."""


@aging_group.command("sweep")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--group", default=0, show_default=True, help="Index of the aged group in cluster.instances.")
@click.option("--ages", default="0,1,2,3,4,5,6,7,8", show_default=True, help="Comma-separated ages [years].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a field (repeatable).")
@click.option("--out", "out_dir", default="results/aging", show_default=True, type=click.Path(file_okay=False))
def aging_sweep_cmd(experiment, group, ages, overrides, out_dir):
    """Run EXPERIMENT once per age of one GPU group; write age_sweep.csv and age_sweep.png."""
    from .aging import age_sweep, plot_age_sweep
    try:
        ages_l = [float(a) for a in ages.split(",") if a.strip()]
    except ValueError:
        _fail(GreensimError(f"--ages {ages!r}: expected comma-separated numbers of years, e.g. 0,2,4."))
    try:
        df = age_sweep(experiment, group, ages_l, overrides=list(overrides))
    except GreensimError as exc:
        _fail(exc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "age_sweep.csv", index=False, float_format="%.6g")
    plot_age_sweep(df, out / "age_sweep.png", f"{Path(experiment).stem}: group {group} aging")
    click.echo(df.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    click.echo(f"table: {out / 'age_sweep.csv'}  plot: {out / 'age_sweep.png'}")


@main.group("theory")
def theory_group():
    """Closed-form carbon per request: colocated-new vs DPD vs DSD, break-even points, heatmaps."""


@theory_group.command("heatmap")
@click.option("--model", default="Llama-2-7B", show_default=True)
@click.option("--new", "new_gpu", default="A100-80GB", show_default=True)
@click.option("--old", "old_gpu", default="V100-32GB", show_default=True)
@click.option("--draft-model", default=None, help="Draft model for DSD (omit: no DSD).")
@click.option("--mode", default="DPD", type=click.Choice(["DPD", "DSD"]), show_default=True)
@click.option("--gamma", default=None, type=int, help="DSD: draft tokens per iteration (required for DSD).")
@click.option("--alpha", default=None, type=float, help="DSD: per-token acceptance rate in [0, 1) (required for DSD).")
@click.option("--in-tokens", default=512, show_default=True)
@click.option("--out-tokens", default=128, show_default=True)
@click.option("--rate", default=1.0, show_default=True, help="Arrival rate per instance [req/s].")
@click.option("--old-embodied", default="sunk", type=click.Choice(["sunk", "linear"]), show_default=True)
@click.option("--lifetime-old", default=5.0, show_default=True, help="Old GPU lifetime [years] (linear only).")
@click.option("--pue", default=1.1, show_default=True)
@click.option("--old-per-new", default=None, type=int, help="DPD: old decode instances per new prefill instance "
              "(default: as many as keep the new GPU no busier than colocated).")
@click.option("--out", "out_dir", default="results/theory", show_default=True, type=click.Path(file_okay=False))
def theory_heatmap_cmd(model, new_gpu, old_gpu, draft_model, mode, gamma, alpha, in_tokens, out_tokens, rate, old_embodied,
                       lifetime_old, pue, old_per_new, out_dir):
    """Saving of MODE over colocated-new across (intensity x new-GPU lifetime), with break-even points."""
    import numpy as np
    from .theory import break_even_intensity, break_even_lifetime, build_modes, carbon_per_request, plot_savings_heatmap
    if mode == "DSD" and not draft_model:
        _fail(GreensimError("--mode DSD needs --draft-model (the small model run on the old GPU)."))
    try:
        modes = build_modes(model, new_gpu, old_gpu, in_tokens, out_tokens, rate, 5.0, lifetime_old,
                            old_embodied, draft_model if mode == "DSD" else None, gamma, alpha,
                            old_per_new=old_per_new)
    except GreensimError as exc:
        _fail(exc)
    base, alt = modes["colocated"], modes[mode]
    ci = np.linspace(0, 800, 81)
    lt = np.linspace(1, 10, 46)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"savings_{mode}_{new_gpu}_{old_gpu}.png"
    plot_savings_heatmap(base, alt, ci, lt, "new", path, pue,
                         f"{mode} ({new_gpu} + {old_gpu}, old embodied {old_embodied}) vs {new_gpu} only, "
                         f"{model}, {rate:g} req/s")
    for m in (base, alt):
        click.echo(f"{m.name:>10}: " + ", ".join(
            f"{u.role} busy {u.busy_s:.3f} s / {u.busy_j:.0f} J / util {u.utilization_frac:.2f}" for u in m.uses)
            + f"; at 300 g/kWh, LT 5 y: {float(carbon_per_request(m, 300.0, pue)):.4f} gCO2e/request")
    click.echo(f"break-even intensity (LT_new 5 y): {break_even_intensity(base, alt, pue):.0f} gCO2e/kWh")
    for c in (100.0, 300.0, 600.0):
        click.echo(f"break-even new-GPU lifetime at {c:g} g/kWh: {break_even_lifetime(base, alt, 'new', c, pue):.2f} years")
    click.echo(f"plot: {path}")


if __name__ == "__main__":  # pragma: no cover
    main()
