"""Command group `greensim trace`: list, summarise and fit request traces."""
from __future__ import annotations

import json
from pathlib import Path

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import fail


@click.group("trace")
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
        fail(exc)
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
        fail(exc)
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

