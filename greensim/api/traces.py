"""Request traces, as ``greensim trace list|stats|fit`` and notebooks see them.

A *source* is a trace file, the name of a public trace (:func:`named_traces`), or an
experiment YAML (the requests its workload generates)::

    from greensim.api import traces
    t = traces.load_source("azure_llm_2023_conv")
    print(traces.format_stats(traces.stats(t)))
    traces.write_fit(traces.fit(t), "traces/fitted")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

import pandas as pd

from greensim.assembly.prepare import experiment_workload
from greensim.base.errors import TraceError
from greensim.experiment.load import to_experiment
from greensim.workloads.clean import clean_frame
from greensim.workloads.fitted import fit_document, fitted_names
from greensim.workloads.named import TRACES, NamedTrace, resolve_trace_source, trace_dirs
from greensim.workloads.readers import ReadOptions, notes_of
from greensim.workloads.stats import format_stats, plot_profile, plot_trace, profile_stats, trace_stats
from greensim.workloads.traces import read_trace_frame

__all__ = [
    "TraceData",
    "load_trace",
    "experiment_requests",
    "load_source",
    "named_traces",
    "trace_dirs",
    "stats",
    "format_stats",
    "plot",
    "fit",
    "write_fit",
]


@dataclass
class TraceData:
    """A loaded trace.

    frame : one row per request (``arrival_time_s`` if the source has times, ``input_tokens``,
        ``output_tokens``), or for a rate profile one row per model and window.
    path : the file read (for an experiment: its YAML).
    name : the named trace's name, else the file stem.
    source : what was asked for (a path, a trace name or an experiment YAML).
    notes : what the reader and cleaning did (dropped rows, unit conversions).
    is_profile : a rate profile (``window_start_s``, ``total_rate_rps``), not per-request rows.
    info : the :class:`~greensim.workloads.named.NamedTrace` of a named trace, else None.
    """

    frame: pd.DataFrame
    path: Path
    name: str
    source: str
    notes: List[str] = field(default_factory=list)
    is_profile: bool = False
    info: Optional[NamedTrace] = None


def load_trace(
    source: str | Path,
    fmt: str = "auto",
    data_dir: Optional[str] = None,
    drop_invalid: bool = False,
    columns: Mapping[str, str] | Iterable[str] | None = None,
    time_unit: str = "s",
) -> TraceData:
    """Read a trace file or a named trace, checked (and cleaned if ``drop_invalid``).

    Parameters
    ----------
    source : a file path, or a trace name (searched in ``data_dir``, then ``traces/`` of the
        shared data: ``$GREENSIM_DATA_DIR`` or ``../shared/data``).
    fmt : reader name; ``"auto"``: the named trace's, else ``"columns"`` when ``columns`` is
        given, else by file suffix.
    columns : column mapping for format ``columns``: ``{ours: theirs}`` or ``["ours=theirs", ...]``.
    drop_invalid : drop invalid rows (noted in ``notes``) instead of raising.
    time_unit : unit of the arrival column (``s``, ``ms``, ``us``, ``ns`` or ``datetime``).

    Raises
    ------
    TraceError
        Unknown name, missing file, missing columns or invalid rows (without ``drop_invalid``).
    """
    info, path = resolve_trace_source(str(source), data_dir, field="trace")
    if fmt == "auto" and info is not None:
        fmt = info.format
    cols = _column_map(columns)
    if cols and fmt == "auto":
        fmt = "columns"
    df = read_trace_frame(path, fmt, where=str(path), opts=ReadOptions(columns=cols, time_unit=time_unit))
    notes = notes_of(df)
    name = info.name if info is not None else Path(path).stem
    if "window_start_s" in df.columns and "total_rate_rps" in df.columns:
        return TraceData(df, Path(path), name, str(source), notes, True, info)
    df, dropped = clean_frame(df, str(path), drop_invalid=drop_invalid, need_arrival="arrival_time_s" in df.columns)
    if dropped:
        notes.append(
            f"drop_invalid: dropped {sum(dropped.values())} row(s): "
            + ", ".join(f"{k} {v}" for k, v in dropped.items())
        )
    if len(df) == 0:
        why = (
            f"every row was invalid and dropped ({', '.join(f'{k} {v}' for k, v in dropped.items())})"
            if dropped
            else "it has no rows (a header only?)"
        )
        raise TraceError(f"{path}: no requests to summarise: {why}. Add valid rows to the file.")
    return TraceData(df, Path(path), name, str(source), notes, False, info)


def _column_map(columns: Mapping[str, str] | Iterable[str] | None) -> Dict[str, str]:
    if columns is None or isinstance(columns, Mapping):
        return dict(columns or {})
    out: Dict[str, str] = {}
    for c in columns:
        ours, eq, theirs = str(c).partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not eq or not ours or not theirs or "=" in theirs or "," in theirs:
            raise TraceError(
                f"--column {c!r}: expected OURS=THEIRS, one pair per --column, both non-empty, e.g. "
                f"--column input_tokens=prompt_len --column output_tokens=gen_len."
            )
        if ours in out:
            raise TraceError(f"--column {c!r}: column '{ours}' is already mapped to '{out[ours]}'. Map it once.")
        out[ours] = theirs
    return out


def experiment_requests(experiment: Any) -> TraceData:
    """The requests the workload of ``experiment`` (a YAML path, dict or Experiment) generates:
    the same arrivals and lengths a run of it simulates."""
    exp = to_experiment(experiment)
    tab = experiment_workload(exp)
    df = pd.DataFrame(
        {"arrival_time_s": tab.arrival_s, "input_tokens": tab.n_input_tokens, "output_tokens": tab.n_output_tokens}
    )
    is_file = isinstance(experiment, (str, Path))
    path = Path(experiment) if is_file else Path(f"{exp.name}.yaml")
    return TraceData(df, path, path.stem if is_file else exp.name, str(experiment) if is_file else exp.name)


def load_source(source: str | Path, **read_options: Any) -> TraceData:
    """:func:`experiment_requests` for an experiment YAML (``*.yaml``, ``*.yml``), else :func:`load_trace`
    (``read_options`` are its keyword arguments)."""
    if str(source).endswith((".yaml", ".yml")):
        return experiment_requests(source)
    return load_trace(source, **read_options)


def named_traces() -> List[Dict[str, Any]]:
    """One dict per public trace known by name: ``name``, ``rows``, ``has_arrivals``, ``fitted``
    (a fitted model ships), ``description``, ``file``, ``format``, ``license``, ``source``."""
    fitted = set(fitted_names())
    out = []
    for name in TRACES.names():
        t = TRACES.get(name)
        out.append(
            {
                "name": name,
                "rows": t.rows,
                "has_arrivals": t.has_arrivals,
                "fitted": name in fitted,
                "description": t.description,
                "file": t.file,
                "format": t.format,
                "license": t.license,
                "source": t.source,
            }
        )
    return out


def stats(data: TraceData) -> Any:
    """Summary statistics: a dict for per-request traces (rows, duration, mean rate,
    inter-arrival CV, length percentiles; see :func:`format_stats`), a DataFrame (one row
    per model) for a rate profile."""
    if data.is_profile:
        return profile_stats(data.frame)
    df = data.frame
    arr = df["arrival_time_s"].to_numpy() if "arrival_time_s" in df.columns else None
    return trace_stats(arr, df["input_tokens"].to_numpy(), df["output_tokens"].to_numpy())


def plot(data: TraceData, path: str | Path) -> Path:
    """Write the trace's PNG (arrivals and length distributions, or rates per model of a profile)."""
    out = Path(path)
    df = data.frame
    if data.is_profile:
        plot_profile(out, df, data.name)
    else:
        arr = df["arrival_time_s"].to_numpy() if "arrival_time_s" in df.columns else None
        plot_trace(
            out,
            arr,
            df["input_tokens"].to_numpy(),
            df["output_tokens"].to_numpy(),
            f"{data.name}: {len(df):,} requests",
        )
    return out


def fit(data: TraceData, name: Optional[str] = None, command: str = "") -> Dict[str, Any]:
    """The fitted workload model of ``data`` (joint lengths, and arrival rate/CV if it has
    times) as a YAML-able document with provenance; ``command`` is recorded as ``fitted_by``.

    Raises
    ------
    TraceError
        ``data`` is a rate profile (it has no request lengths).
    """
    if data.is_profile:
        raise TraceError(
            f"{data.source}: a rate profile has no request lengths to fit; use it as arrivals: {{process: servegen}}."
        )
    info = data.info
    return fit_document(
        name or data.name,
        data.path,
        data.frame,
        source=info.source if info else str(data.path),
        license=info.license if info else "",
        command=command,
    )


def write_fit(doc: Dict[str, Any], out_dir: str | Path = "traces/fitted") -> Path:
    """Write a :func:`fit` document to ``<out_dir>/<name>.yaml`` (atomically); return the path."""
    import yaml

    name = doc["name"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = (
        f"# Fitted workload model of {name}; written by `{doc['provenance']['fitted_by']}`.\n"
        f"# Do not edit by hand: re-run the command. Method: greensim/workloads/fitted.py.\n"
    )
    text += yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
    tmp = out / f".{name}.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(out / f"{name}.yaml")
    return out / f"{name}.yaml"
