"""Trace replay: read a file with a registered reader, validate, and build a RequestTable.

The normalised columns are ``arrival_time_s, input_tokens, output_tokens``; an optional
``slo_class`` column names each request's SLO class (``slo.classes``). Readers for file
formats live in :mod:`greensim.workloads.readers`; validation in
:mod:`greensim.workloads.clean`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from greensim.base.errors import TraceError
from greensim.core.requests import RequestTable
from greensim.workloads.clean import clean_frame
from greensim.workloads.readers import ReadOptions
from greensim.workloads.registry import TRACE_READERS

__all__ = ["read_trace_frame", "table_from_frame", "REQUIRED_COLUMNS", "format_from_suffix"]

REQUIRED_COLUMNS = ("arrival_time_s", "input_tokens", "output_tokens")
_SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}


def format_from_suffix(p: Path, where: str) -> str:
    fmt = _SUFFIX_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise TraceError(
            f"{where}: cannot tell the format of '{p.name}' from its suffix; "
            f"set workload.format to one of: {', '.join(TRACE_READERS.names())}."
        )
    return fmt


def read_trace_frame(
    path: str | Path, fmt: str = "auto", where: str = "workload.path", opts: ReadOptions | None = None
) -> pd.DataFrame:
    """Read a trace file with the named reader (or by suffix) into greensim's columns.

    The reader's notes on what it did are in ``df.attrs["notes"]``
    (:func:`greensim.workloads.readers.notes_of`).
    """
    p = Path(path)
    if p.is_dir():
        raise TraceError(f"{where}: '{path}' is a folder, not a trace file. Give the path of the trace file in it.")
    if not p.is_file():
        raise TraceError(
            f"{where}: trace file '{path}' not found. Check the path "
            f"(relative paths resolve against the experiment file's folder)."
        )
    if fmt == "auto":
        fmt = format_from_suffix(p, where)
    reader = TRACE_READERS.get(fmt, field="workload.format")
    try:
        return reader(p, opts or ReadOptions())
    except TraceError:
        raise
    except Exception as exc:  # a reader library's parse error, reported at the boundary
        raise TraceError(f"{where}: could not read '{p.name}' as {fmt}: {exc}") from None


def table_from_frame(
    df: pd.DataFrame, where: str, max_requests: int | None = None, time_scale: float = 1.0, drop_invalid: bool = False
) -> RequestTable:
    """Validate columns and values (see :func:`~greensim.workloads.clean.clean_frame`) and build a RequestTable."""
    if max_requests is not None:
        df = df.iloc[:max_requests]
    if len(df) == 0:
        raise TraceError(f"{where}: the trace has no rows.")
    df, _ = clean_frame(df, where, drop_invalid=drop_invalid)
    return frame_to_table(df, where, time_scale)


def frame_to_table(df: pd.DataFrame, where: str, time_scale: float = 1.0) -> RequestTable:
    """A RequestTable from a cleaned frame (times multiplied by ``time_scale``)."""
    if len(df) == 0:
        raise TraceError(f"{where}: no requests left (after windows and filters).")
    arrival = df["arrival_time_s"].to_numpy(dtype=float)
    if time_scale != 1.0:
        arrival = arrival * time_scale
    sc = df["slo_class"].to_numpy() if "slo_class" in df.columns else None
    return RequestTable.from_arrays(
        arrival, df["input_tokens"].to_numpy(), df["output_tokens"].to_numpy(), sc, where=where
    )
