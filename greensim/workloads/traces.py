"""Trace readers: files with columns arrival_time_s, input_tokens, output_tokens.

An optional ``slo_class`` column names each request's SLO class (``slo.classes``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.requests import RequestTable
from ..errors import TraceError
from . import TRACE_READERS

__all__ = ["read_trace_frame", "table_from_frame", "REQUIRED_COLUMNS"]

REQUIRED_COLUMNS = ("arrival_time_s", "input_tokens", "output_tokens")


@TRACE_READERS.register("csv")
def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


@TRACE_READERS.register("parquet")
def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def read_trace_frame(path: str | Path, fmt: str = "auto", where: str = "workload.path") -> pd.DataFrame:
    """Read a trace file with the named reader (or by suffix)."""
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"{where}: trace file '{path}' not found. Check the path "
                         f"(relative paths resolve against the experiment file's folder).")
    if fmt == "auto":
        fmt = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(p.suffix.lower())
        if fmt is None:
            raise TraceError(f"{where}: cannot tell the format of '{p.name}' from its suffix; "
                             f"set workload.format to one of: {', '.join(TRACE_READERS.names())}.")
    reader = TRACE_READERS.get(fmt, field="workload.format")
    try:
        return reader(p)
    except TraceError:
        raise
    except Exception as exc:  # a reader library's parse error, reported at the boundary
        raise TraceError(f"{where}: could not read '{p.name}' as {fmt}: {exc}") from None


def table_from_frame(df: pd.DataFrame, where: str, max_requests: int | None = None,
                     time_scale: float = 1.0) -> RequestTable:
    """Validate columns and values and build a RequestTable."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TraceError(f"{where}: missing column(s) {', '.join(missing)} (found: "
                         f"{', '.join(map(str, df.columns))}). A trace needs "
                         f"{', '.join(REQUIRED_COLUMNS)}; rename the columns.")
    if max_requests is not None:
        df = df.iloc[:max_requests]
    if len(df) == 0:
        raise TraceError(f"{where}: the trace has no rows.")
    cols = {}
    for c in REQUIRED_COLUMNS:
        x = pd.to_numeric(df[c], errors="coerce")
        bad = np.flatnonzero(x.isna().to_numpy() & df[c].notna().to_numpy())
        if bad.size:
            raise TraceError(f"{where}: column '{c}' has a non-numeric value {df[c].iloc[bad[0]]!r} "
                             f"at row {bad[0]}.")
        cols[c] = x.to_numpy(dtype=float)
    arrival = cols["arrival_time_s"]
    sc = df["slo_class"].to_numpy() if "slo_class" in df.columns else None
    table = RequestTable.from_arrays(arrival, cols["input_tokens"], cols["output_tokens"], sc, where=where)
    if time_scale != 1.0:
        return RequestTable(table.arrival_s * time_scale, table.n_input_tokens, table.n_output_tokens,
                            table.slo_class)
    return table
