"""Trace replay: read a file with a registered reader, validate, and build a RequestTable.

The normalised columns are ``arrival_time_s, input_tokens, output_tokens``; an optional
``slo_class`` column names each request's SLO class (``slo.classes``). Readers for file
formats live in :mod:`greensim.workloads.readers`; validation in
:mod:`greensim.workloads.clean`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from greensim.base.errors import TraceError
from greensim.base.lazy import lazy_module
from greensim.core.requests import RequestTable
from greensim.workloads.clean import clean_frame
from greensim.workloads.readers import ReadOptions
from greensim.workloads.registry import TRACE_READERS

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = [
    "read_trace_frame",
    "table_from_frame",
    "REQUIRED_COLUMNS",
    "format_from_suffix",
    "resolve_format",
    "sniff_format",
]

REQUIRED_COLUMNS = ("arrival_time_s", "input_tokens", "output_tokens")
#: tokens per ``hash_ids`` entry: Mooncake's traces hash prompts in 512-token blocks, ceil(input / 512)
#: ids per request (kvcache-ai/Mooncake FAST25-release/README.md; checked on the shared copies in
#: tests/unit/test_trace_loaders.py)
HASH_BLOCK_TOKENS = 512
_SUFFIX_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}


def format_from_suffix(p: Path, where: str) -> str:
    fmt = _SUFFIX_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise TraceError(
            f"{where}: cannot tell the format of '{p.name}' from its suffix; "
            f"set workload.format to one of: {', '.join(TRACE_READERS.names())}."
        )
    return fmt


def resolve_format(p: Path, where: str) -> str:
    """The reader ``format: auto`` picks for ``p``: by suffix, and for a CSV file by its header
    (:func:`sniff_format`: the Azure LLM inference and BurstGPT traces as published)."""
    fmt = format_from_suffix(p, where)
    return sniff_format(p) if fmt == "csv" else fmt


def read_trace_frame(
    path: str | Path,
    fmt: str = "auto",
    where: str = "workload.path",
    opts: ReadOptions | None = None,
    recognise: bool = True,
) -> pd.DataFrame:
    """Read a trace file with the named reader (or, ``fmt="auto"``, :func:`resolve_format`'s) into
    greensim's columns.

    With ``fmt="auto"`` a file read as greensim's own columns must have ``input_tokens`` and
    ``output_tokens`` (else the error names the formats); ``recognise=False`` picks by suffix only
    and checks no column (a table read for one column, e.g. an empirical length distribution).
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
    auto = fmt == "auto" and recognise
    if fmt == "auto":
        fmt = resolve_format(p, where) if recognise else format_from_suffix(p, where)
    reader = TRACE_READERS.get(fmt, field="workload.format")
    try:
        df = reader(p, opts or ReadOptions())
    except TraceError:
        raise
    except Exception as exc:  # a reader library's parse error, reported at the boundary
        raise TraceError(f"{where}: could not read '{p.name}' as {fmt}: {exc}") from None
    if auto and fmt in _SUFFIX_FORMATS.values():
        _check_own_columns(df, p, where)
    elif auto:
        df.attrs["notes"] = [
            f"format auto: recognised the {_HEADER_FORMATS[fmt][0]} header; read as format {fmt}."
        ] + list(df.attrs.get("notes", []))
    return df


#: format -> (trace, header columns that identify it) for ``format: auto`` on a CSV file: the
#: published files' headers (Azure/AzurePublicDataset AzureLLMInferenceDataset2023.md; HPMLL/BurstGPT
#: README), see :mod:`greensim.workloads.readers`
_HEADER_FORMATS = {
    "azure_llm": ("Azure LLM inference", ("TIMESTAMP", "ContextTokens", "GeneratedTokens")),
    "burstgpt": ("BurstGPT", ("Timestamp", "Request tokens", "Response tokens")),
}


def sniff_format(p: Path) -> str:
    """The format of a CSV file from its header: ``azure_llm`` or ``burstgpt`` when it has those
    traces' columns, else ``csv`` (greensim's own columns)."""
    try:
        header = {str(c).strip().lstrip("\ufeff") for c in pd.read_csv(p, nrows=0).columns}
    except Exception:  # noqa: BLE001 - unreadable: the csv reader reports it
        return "csv"
    for fmt, (_, cols) in _HEADER_FORMATS.items():
        if set(cols) <= header:
            return fmt
    return "csv"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_own_columns(df: pd.DataFrame, p: Path, where: str) -> None:
    """With ``format: auto`` a file read as greensim's own columns must have the token columns;
    if not, say which formats exist instead of only that columns are missing."""
    missing = [c for c in ("input_tokens", "output_tokens") if c not in df.columns]
    if not missing:
        return
    cols = [str(c) for c in df.columns]
    if any(sep in c for c in cols for sep in ";\t|") or all(_is_number(c) for c in cols):
        return  # not a header of other columns but a missing header or another separator: the caller says so
    known = "; ".join(f"{name}: {', '.join(cols)}" for name, cols in _HEADER_FORMATS.values())
    at = "" if p.name in where else f" in '{p.name}'"
    raise TraceError(
        f"{where}: missing column(s) {', '.join(missing)}{at} "
        f"(found: {', '.join(map(str, df.columns)) or 'none'}). With format auto a file is read by its suffix as "
        f"greensim's columns (arrival_time_s, input_tokens, output_tokens), or recognised by its header ({known}). "
        f"Set the format: workload.format in the experiment (--format on the command line) to one of: "
        f"{', '.join(TRACE_READERS.names())}; format 'columns' maps any columns (workload.columns, --column)."
    )


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
    table = RequestTable.from_arrays(
        arrival, df["input_tokens"].to_numpy(), df["output_tokens"].to_numpy(), sc, where=where
    )
    if "hash_ids" in df.columns:  # prefix identity (Mooncake): drives prefix caching
        ids = [_hash_ids(v, where) for v in df["hash_ids"].to_numpy()]
        table = dataclasses.replace(table, prefix_ids=ids, prefix_block_tokens=HASH_BLOCK_TOKENS)
    return table


def _hash_ids(v, where: str):
    """A ``hash_ids`` cell (space-separated ints) as a tuple of ints; None where empty."""
    if not isinstance(v, str):
        return None  # NaN: a row without ids
    try:
        ids = tuple(int(x) for x in v.split())
    except ValueError:
        raise TraceError(
            f"{where}: column 'hash_ids' has a non-integer entry in {v[:40]!r}; it must hold "
            f"space-separated integer block ids (Mooncake's hash_ids)."
        ) from None
    return ids or None
