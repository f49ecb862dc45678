"""Command group `greensim trace`: list, summarise and fit request traces (:mod:`greensim.api.traces`)."""

from __future__ import annotations

import json

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import fail


@click.group("trace")
def trace_group():
    """Inspect, summarise and fit request traces."""


_TRACE_OPTS = [
    click.option("--format", "fmt", default="auto", help="reader name (default: the named trace's, or by suffix)"),
    click.option(
        "--data-dir",
        default=None,
        help="folder of named traces (default: traces/ of the shared data, $GREENSIM_DATA_DIR or ../shared/data)",
    ),
    click.option("--drop-invalid", is_flag=True, help="drop invalid rows (and report how many) instead of failing"),
    click.option("--column", multiple=True, metavar="OURS=THEIRS", help="column mapping for format 'columns'"),
    click.option("--time-unit", default="s", type=click.Choice(["s", "ms", "us", "ns", "datetime"])),
]


def _json(obj) -> str:
    """JSON text of a statistics dict; an undefined value (NaN or inf, e.g. the correlation of
    one request) is written as null, since JSON has no NaN."""
    import math

    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x

    return json.dumps(clean(obj), indent=2, allow_nan=False)


def _trace_opts(f):
    for o in reversed(_TRACE_OPTS):
        f = o(f)
    return f


def _read_options(fmt, data_dir, drop_invalid, column, time_unit):
    return {
        "fmt": fmt,
        "data_dir": data_dir,
        "drop_invalid": drop_invalid,
        "columns": list(column),
        "time_unit": time_unit,
    }


@trace_group.command("list")
def trace_list_cmd():
    """List the named traces, their files and whether a fitted model ships."""
    from greensim.api.traces import named_traces, trace_dirs

    for t in named_traces():
        click.echo(
            f"{t['name']:<40} {t['rows']:>7,} rows  {'times   ' if t['has_arrivals'] else 'no times'}  "
            f"{'fitted' if t['fitted'] else '      '}  {t['description']}"
        )
    click.echo(f"searched for files in: {', '.join(str(d) for d in trace_dirs())}")


@trace_group.command("stats")
@click.argument("source")
@_trace_opts
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="PNG to write (default: trace_stats_<name>.png in the current folder)",
)
@click.option("--no-plot", is_flag=True, help="skip the plot")
@click.option("--json", "as_json", is_flag=True, help="print the statistics as JSON")
def trace_stats_cmd(source, fmt, data_dir, drop_invalid, column, time_unit, plot_path, no_plot, as_json):
    """Rows, duration, mean rate, inter-arrival CV and length percentiles of SOURCE.

    SOURCE is a trace file, a trace name (greensim trace list), or an experiment YAML
    (the requests its workload section generates).
    """
    from greensim.api.traces import format_stats, load_source, plot, stats

    try:
        data = load_source(source, **_read_options(fmt, data_dir, drop_invalid, column, time_unit))
    except GreensimError as exc:
        fail(exc)
    st = stats(data)
    if data.is_profile:
        click.echo(_json(st.to_dict(orient="records")) if as_json else st.to_string(index=False))
    else:
        for n in data.notes:
            click.echo(f"note: {n}", err=True)
        click.echo(_json(st) if as_json else f"{data.name} ({data.path})\n{format_stats(st)}")
    if not no_plot:
        out = plot(data, plot_path or f"trace_stats_{data.name}.png")
        click.echo(f"plot: {out}")


@trace_group.command("fit")
@click.argument("source")
@_trace_opts
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="traces/fitted",
    help="folder for <name>.yaml (default traces/fitted)",
)
@click.option("--name", default=None, help="name of the fit (default: the trace name or file stem)")
def trace_fit_cmd(source, fmt, data_dir, drop_invalid, column, time_unit, out_dir, name):
    """Fit the joint length model (and arrival rate/CV) of SOURCE and write <out>/<name>.yaml."""
    from greensim.api.traces import fit, load_trace, write_fit

    try:
        data = load_trace(source, **_read_options(fmt, data_dir, drop_invalid, column, time_unit))
        name = name or data.name
        doc = fit(
            data,
            name,
            command=f"greensim trace fit {source} --out {out_dir}" + (f" --name {name}" if name != source else ""),
        )
    except GreensimError as exc:
        fail(exc)
    click.echo(f"wrote {write_fit(doc, out_dir)}")
