"""Command line: thin wrappers over the library."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from greensim.base.errors import GreensimError

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


def _add_sweep_command() -> None:
    """`greensim sweep` lives in cli_sweep.py (issue 9), registered here."""
    from greensim.cli.sweep import sweep_cmd
    main.add_command(sweep_cmd)


_add_sweep_command()


def _add_plan_command() -> None:
    """`greensim plan` lives in cli_plan.py (issue 8), registered here."""
    from greensim.cli.plan import plan_cmd
    main.add_command(plan_cmd)


_add_plan_command()


@main.command("run")
@click.argument("experiment", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field, e.g. --set workload.rate_rps=3 (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Parent folder for results (default: output.dir of the experiment).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
def run_cmd(experiment, overrides, out_dir, no_plots):
    """Run EXPERIMENT (a YAML file; default: the bundled quickstart) and write a results folder."""
    from greensim.api.run import run
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
    from greensim.api.validate import validate_experiment
    try:
        msg = validate_experiment(experiment)
    except GreensimError as exc:
        _fail(exc)
    click.echo(msg)


@main.command("check")
@click.option("--record", is_flag=True, help="Re-record the values (and seed-spread tolerances); commit them with the reason.")
@click.option("--dir", "folder", type=click.Path(file_okay=False), default=None,
              help="Folder of check experiments with recorded.json (default: the bundled experiments/check).")
def check_cmd(record, folder):
    """Regression check: re-run small experiments, compare with recorded values (exit 1 on a change)."""
    from greensim.api.check import check_experiments, record_experiments
    try:
        if record:
            out = record_experiments(folder)
            click.echo(f"recorded {len(out)} experiment(s)")
            return
        rows = check_experiments(folder)
    except GreensimError as exc:
        _fail(exc)
    bad = [r for r in rows if not r.ok]
    for r in rows:
        flag = "ok  " if r.ok else "FAIL"
        click.echo(f"{flag} {r.experiment:<28} {r.metric:<26} recorded {r.recorded:<12.6g} now {r.value:<12.6g} tol {r.tolerance:.3g}")
    click.echo(f"{len(rows) - len(bad)}/{len(rows)} metrics within tolerance")
    if bad:
        sys.exit(1)


@main.command("replan")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a field (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Parent folder for results (default: output.dir of the experiment).")
@click.option("--no-plots", is_flag=True, help="Skip plan.png.")
def replan_cmd(experiment, overrides, out_dir, no_plots):
    """Online scheduling per window: re-choose among EXPERIMENT's reconfigure.deployments at each
    window boundary (predicted carbon per request, SLO, hysteresis); compare with static deployments."""
    from greensim.planning.online import run_windows
    ov = list(overrides) + (["output.plots=false"] if no_plots else [])
    try:
        res = run_windows(experiment, overrides=ov, out_dir=out_dir, progress=True)
    except GreensimError as exc:
        _fail(exc)
    click.echo(res.comparison.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    pr = res.prediction
    extra = (f", {pr['n_simulations']} short simulations, {pr['n_cache_hits']} cache hits"
             if "n_simulations" in pr else "")
    click.echo(f"predictor {pr['predictor']}: {pr['wall_s']:.2f} s{extra}; total wall {res.wall_s:.1f} s")
    click.echo(f"results: {res.folder}")


@main.command("schema")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to a file instead of stdout.")
def schema_cmd(out):
    """Print the JSON Schema of the experiment format (for editors)."""
    from greensim.experiment.schema import json_schema
    text = json.dumps(json_schema(), indent=2)
    if out:
        Path(out).write_text(text + "\n")
    else:
        click.echo(text)


# ------------------------------------------------------------------ traces (issue 5)
@main.group("trace")
def trace_group():
    """Inspect, summarise and fit request traces."""


def _load_for_trace_cmd(source, fmt, data_dir, drop_invalid, column, time_unit):
    from greensim.workloads.clean import clean_frame
    from greensim.workloads.named import resolve_trace_source
    from greensim.workloads.readers import ReadOptions, notes_of
    from greensim.workloads.traces import read_trace_frame
    info, path = resolve_trace_source(source, data_dir, field="trace")
    if fmt == "auto" and info is not None:
        fmt = info.format
    cols = dict(c.split("=", 1) for c in column)
    if cols and fmt == "auto":
        fmt = "columns"
    df = read_trace_frame(path, fmt, where=str(path), opts=ReadOptions(columns=cols, time_unit=time_unit))
    notes = notes_of(df)
    if "window_start_s" in df.columns and "total_rate_rps" in df.columns:
        return info, path, df, notes, True
    df, dropped = clean_frame(df, str(path), drop_invalid=drop_invalid, need_arrival="arrival_time_s" in df.columns)
    if dropped:
        notes.append(f"drop_invalid: dropped {sum(dropped.values())} row(s): "
                     + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    return info, path, df, notes, False


_TRACE_OPTS = [
    click.option("--format", "fmt", default="auto", help="reader name (default: the named trace's, or by suffix)"),
    click.option("--data-dir", default=None, help="folder of named traces (default $GREENSIM_TRACE_DIR, ../shared/data/traces)"),
    click.option("--drop-invalid", is_flag=True, help="drop invalid rows (and report how many) instead of failing"),
    click.option("--column", multiple=True, metavar="OURS=THEIRS", help="column mapping for format 'columns'"),
    click.option("--time-unit", default="s", type=click.Choice(["s", "ms", "us", "ns", "datetime"])),
]


def _trace_opts(f):
    for o in reversed(_TRACE_OPTS):
        f = o(f)
    return f


@trace_group.command("list")
def trace_list_cmd():
    """List the named traces, their files and whether a fitted model ships."""
    from greensim.workloads.fitted import fitted_names
    from greensim.workloads.named import TRACES, trace_dirs
    fitted = set(fitted_names())
    for name in TRACES.names():
        t = TRACES.get(name)
        click.echo(f"{name:<40} {t.rows:>7,} rows  {'times   ' if t.has_arrivals else 'no times'}  "
                   f"{'fitted' if name in fitted else '      '}  {t.description}")
    click.echo(f"searched for files in: {', '.join(str(d) for d in trace_dirs())}")


@trace_group.command("stats")
@click.argument("source")
@_trace_opts
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="PNG to write (default: trace_stats_<name>.png in the current folder)")
@click.option("--no-plot", is_flag=True, help="skip the plot")
@click.option("--json", "as_json", is_flag=True, help="print the statistics as JSON")
def trace_stats_cmd(source, fmt, data_dir, drop_invalid, column, time_unit, plot_path, no_plot, as_json):
    """Rows, duration, mean rate, inter-arrival CV and length percentiles of SOURCE.

    SOURCE is a trace file, a trace name (greensim trace list), or an experiment YAML
    (the requests its workload section generates).
    """
    from greensim.workloads.stats import format_stats, plot_trace, trace_stats
    try:
        if source.endswith((".yaml", ".yml")):
            import numpy as np
            import pandas as pd
            from greensim.experiment.load import load_experiment
            from greensim.workloads import build_workload
            exp = load_experiment(source)
            tab = build_workload(exp.workload, np.random.SeedSequence(exp.seed).spawn(2)[0])   # as runner.prepare
            info, path, notes, is_profile = None, Path(source), [], False
            df = pd.DataFrame({"arrival_time_s": tab.arrival_s, "input_tokens": tab.n_input_tokens,
                               "output_tokens": tab.n_output_tokens})
        else:
            info, path, df, notes, is_profile = _load_for_trace_cmd(source, fmt, data_dir, drop_invalid, column,
                                                                    time_unit)
    except GreensimError as exc:
        _fail(exc)
    stem = info.name if info is not None else Path(path).stem
    if is_profile:
        from greensim.workloads.stats import profile_stats, plot_profile
        st = profile_stats(df)
        click.echo(json.dumps(st, indent=2) if as_json else st.to_string(index=False))
        if not no_plot:
            out = Path(plot_path or f"trace_stats_{stem}.png")
            plot_profile(out, df, stem)
            click.echo(f"plot: {out}")
        return
    arr = df["arrival_time_s"].to_numpy() if "arrival_time_s" in df.columns else None
    st = trace_stats(arr, df["input_tokens"].to_numpy(), df["output_tokens"].to_numpy())
    for n in notes:
        click.echo(f"note: {n}", err=True)
    click.echo(json.dumps(st, indent=2) if as_json else f"{stem} ({path})\n{format_stats(st)}")
    if not no_plot:
        out = Path(plot_path or f"trace_stats_{stem}.png")
        plot_trace(out, arr, df["input_tokens"].to_numpy(), df["output_tokens"].to_numpy(), f"{stem}: {len(df):,} requests")
        click.echo(f"plot: {out}")


@trace_group.command("fit")
@click.argument("source")
@_trace_opts
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="traces/fitted",
              help="folder for <name>.yaml (default traces/fitted)")
@click.option("--name", default=None, help="name of the fit (default: the trace name or file stem)")
def trace_fit_cmd(source, fmt, data_dir, drop_invalid, column, time_unit, out_dir, name):
    """Fit the joint length model (and arrival rate/CV) of SOURCE and write <out>/<name>.yaml."""
    import yaml
    from greensim.workloads.fitted import fit_document
    try:
        info, path, df, notes, is_profile = _load_for_trace_cmd(source, fmt, data_dir, drop_invalid, column, time_unit)
        if is_profile:
            raise GreensimError(f"{source}: a rate profile has no request lengths to fit; use it as "
                                f"arrivals: {{process: servegen}}.")
    except GreensimError as exc:
        _fail(exc)
    name = name or (info.name if info is not None else Path(path).stem)
    doc = fit_document(name, Path(path), df, source=info.source if info else str(path),
                       license=info.license if info else "",
                       command=f"greensim trace fit {source} --out {out_dir}" + (f" --name {name}" if name != source else ""))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = (f"# Fitted workload model of {name}; written by `{doc['provenance']['fitted_by']}`.\n"
            f"# Do not edit by hand: re-run the command. Method: greensim/workloads/fitted.py.\n")
    text += yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
    tmp = out / f".{name}.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(out / f"{name}.yaml")
    click.echo(f"wrote {out / (name + '.yaml')}")


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
    from greensim.api.aging import age_sweep
    from greensim.results.aging_plots import plot_age_sweep
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
    from greensim.carbon.theory import break_even_intensity, break_even_lifetime, build_modes, carbon_per_request
    from greensim.results.theory_plots import plot_savings_heatmap
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


@main.command("profile")
@click.argument("model")
@click.option("--gpu", "gpu", default="", help="Catalogue GPU name for the file (default: the device's name).")
@click.option("--out", "out_dir", default="profiles/measured", show_default=True, type=click.Path(file_okay=False),
              help="Output folder: OUT/<gpu>/<model>_tp<N>.csv plus .meta.json.")
@click.option("--tp", default=1, show_default=True, help="Tensor-parallel degree (one process per GPU, NCCL).")
@click.option("--device", default="cuda", show_default=True, help="cuda, cuda:N, or cpu (smoke test).")
@click.option("--dtype", default="bfloat16", show_default=True, help="bfloat16, float16 or float32.")
@click.option("--quick", is_flag=True, help="Tiny grid (smoke test).")
@click.option("--window-s", default=0.3, show_default=True, help="Timed window per grid cell [s].")
def profile_cmd(model, gpu, out_dir, tp, device, dtype, quick, window_s):
    """Measure MODEL (a catalogue name; random weights) on the local GPU: prefill, decode (CUDA
    graphs), mixed iterations and NVML board power. Needs the [profile] extra (torch)."""
    import tempfile

    from greensim.hardware.catalog import load_catalog
    from greensim.base.errors import ProfileError
    try:
        spec = load_catalog().model(model, "model")
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ProfileError("greensim profile needs torch: pip install 'greensim[profile]' "
                               "(simulating never does).") from None
    except GreensimError as exc:
        _fail(exc)
    from greensim.tools import profiler
    with tempfile.TemporaryDirectory() as tmp:
        shapes = Path(tmp) / "shapes.json"
        shapes.write_text(json.dumps({spec.name: spec.shape()}))
        argv = ["--shapes", str(shapes), "--models", spec.name, "--out", out_dir, "--tp", str(tp),
                "--device", device, "--dtype", dtype, "--window-s", str(window_s)]
        argv += ["--gpu", gpu] if gpu else []
        argv += ["--quick"] if quick else []
        profiler.main(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
