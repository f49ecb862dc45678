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


@main.command("check")
@click.option("--record", is_flag=True, help="Re-record the values (and seed-spread tolerances); commit them with the reason.")
@click.option("--dir", "folder", type=click.Path(file_okay=False), default=None,
              help="Folder of check experiments with recorded.json (default: the bundled experiments/check).")
def check_cmd(record, folder):
    """Regression check: re-run small experiments, compare with recorded values (exit 1 on a change)."""
    from .check import check_experiments, record_experiments
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


# ------------------------------------------------------------------ traces (issue 5)
@main.group("trace")
def trace_group():
    """Inspect, summarise and fit request traces."""


def _load_for_trace_cmd(source, fmt, data_dir, drop_invalid, column, time_unit):
    from .workloads.clean import clean_frame
    from .workloads.named import resolve_trace_source
    from .workloads.readers import ReadOptions, notes_of
    from .workloads.traces import read_trace_frame
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
    from .workloads.fitted import fitted_names
    from .workloads.named import TRACES, trace_dirs
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
    from .workloads.stats import format_stats, plot_trace, trace_stats
    try:
        if source.endswith((".yaml", ".yml")):
            import numpy as np
            import pandas as pd
            from .config import load_experiment
            from .workloads import build_workload
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
        from .workloads.stats import profile_stats, plot_profile
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
    from .workloads.fitted import fit_document
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


if __name__ == "__main__":  # pragma: no cover
    main()
