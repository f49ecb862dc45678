"""Trace file formats: each reader turns one file format into greensim's columns.

A reader is registered in :data:`greensim.workloads.registry.TRACE_READERS` and called as
``reader(path, opts)``; it returns a :class:`pandas.DataFrame` with the columns
``arrival_time_s`` (seconds from the first request; absent for length-only files),
``input_tokens``, ``output_tokens`` and optional extras (``model``, ``session_id``,
``hash_ids``, ``log_type``...). Format quirks it handles (failed requests, zero-token
rows, timestamp formats) are listed in ``df.attrs["notes"]``, one sentence each, and
reported by the caller; no row is dropped without a note.

Values are *not* validated here: :func:`greensim.workloads.validate.clean_frame`
checks every column and names the file, row and column of the first bad value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, List, Mapping

import numpy as np

from greensim.base.errors import TraceError
from greensim.base.lazy import lazy_module
from greensim.workloads.registry import TRACE_READERS

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = ["ReadOptions", "TIME_UNITS_S", "notes_of"]

#: seconds per unit of a numeric time column
TIME_UNITS_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class ReadOptions:
    """Options a reader may use (from the experiment's ``workload`` section).

    columns : greensim column -> file column (format ``columns``).
    time_unit : unit of a numeric time column, or ``"datetime"`` (format ``columns``).
    include_failed : BurstGPT: keep failed requests (0 response tokens) as 1-token outputs.
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    time_unit: str = "s"
    include_failed: bool = False


def notes_of(df: pd.DataFrame) -> List[str]:
    """The reader's notes on what it did to the file (empty list if none)."""
    return list(df.attrs.get("notes", []))


def _with_notes(df: pd.DataFrame, notes: List[str]) -> pd.DataFrame:
    df.attrs["notes"] = list(notes)
    return df


def _need(df: pd.DataFrame, cols, path: Path, fmt: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise TraceError(
            f"{path.name}: format '{fmt}' needs column(s) {', '.join(map(repr, missing))} "
            f"(found: {', '.join(map(str, df.columns))}). Check workload.format or rename the columns."
        )


def _seconds_from_datetimes(col: pd.Series, path: Path, column: str) -> np.ndarray:
    """Parse ISO-8601 timestamps (any sub-second precision, optional UTC offset) -> s since the first."""
    ts = pd.to_datetime(col, format="ISO8601", utc=True, errors="coerce")
    bad = np.flatnonzero(ts.isna().to_numpy())
    if bad.size:
        raise TraceError(
            f"{path.name}: column '{column}' has an unparseable timestamp {col.iloc[bad[0]]!r} at "
            f"row {bad[0]} ({bad.size} rows). Expected ISO-8601, e.g. 2023-11-16 18:17:03.9799600."
        )
    ns = ts.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    # integer nanoseconds first: float seconds since the epoch would lose sub-microsecond detail
    return (ns - ns.min()).astype(np.float64) * 1e-9


# ------------------------------------------------------------------ greensim's own columns
@TRACE_READERS.register("csv")
def _read_csv(path: Path, opts: ReadOptions | None = None) -> pd.DataFrame:
    """CSV with greensim's columns (arrival_time_s, input_tokens, output_tokens, extras)."""
    return pd.read_csv(path)


@TRACE_READERS.register("parquet")
def _read_parquet(path: Path, opts: ReadOptions | None = None) -> pd.DataFrame:
    """Parquet with greensim's columns."""
    return pd.read_parquet(path)


@TRACE_READERS.register("jsonl")
def _read_jsonl(path: Path, opts: ReadOptions | None = None) -> pd.DataFrame:
    """JSON lines with greensim's columns."""
    return pd.read_json(path, lines=True)


# ------------------------------------------------------------------ generic column mapping
def _read_any(path: Path) -> pd.DataFrame:
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    if suffix.startswith(".parquet") or suffix == ".pq":
        return pd.read_parquet(path)
    if suffix.startswith(".jsonl") or suffix.startswith(".json"):
        return pd.read_json(path, lines=True)
    return pd.read_csv(path)


@TRACE_READERS.register("columns")
def _read_columns(path: Path, opts: ReadOptions | None = None) -> pd.DataFrame:
    """Any CSV/parquet/JSONL file, with ``workload.columns`` mapping greensim names to file columns.

    ``workload.time_unit`` gives the time column's unit (s, ms, us, ns) or ``datetime``
    (ISO-8601 strings); times become seconds since the first request.
    """
    opts = opts or ReadOptions()
    raw = _read_any(path)
    mapping = dict(opts.columns)
    if not mapping:
        raise TraceError(
            f"{path.name}: format 'columns' needs workload.columns, e.g. "
            f"{{arrival_time_s: ts, input_tokens: prompt_len, output_tokens: gen_len}} "
            f"(file columns: {', '.join(map(str, raw.columns))})."
        )
    _need(raw, list(mapping.values()), path, "columns")
    df = pd.DataFrame({ours: raw[theirs] for ours, theirs in mapping.items()})
    notes = []
    if "arrival_time_s" in df.columns:
        src = mapping["arrival_time_s"]
        if opts.time_unit == "datetime":
            df["arrival_time_s"] = _seconds_from_datetimes(df["arrival_time_s"], path, src)
            notes.append(f"parsed '{src}' as ISO-8601 timestamps; times are seconds since the first.")
        else:
            t = pd.to_numeric(df["arrival_time_s"], errors="coerce") * TIME_UNITS_S[opts.time_unit]
            df["arrival_time_s"] = t
            if opts.time_unit != "s":
                notes.append(f"converted '{src}' from {opts.time_unit} to seconds.")
    return _with_notes(df, notes)


# ------------------------------------------------------------------ Azure LLM inference (original form)
@TRACE_READERS.register("azure_llm")
def _read_azure(path: Path, opts: ReadOptions | None = None) -> pd.DataFrame:
    """Azure LLM inference traces as published (2023 one hour; 2024 one week).

    Columns ``TIMESTAMP`` (2023: ``2023-11-16 18:17:03.9799600``, 100 ns digits, no zone;
    2024: ``2024-05-10 00:00:00.009930+00:00``, some rows without a fraction),
    ``ContextTokens``, ``GeneratedTokens`` (Azure/AzurePublicDataset,
    AzureLLMInferenceDataset2023.md / 2024.md). Rows with 0 tokens are kept here and
    rejected (or, with ``drop_invalid``, dropped and counted) by validation.
    """
    raw = pd.read_csv(path)
    _need(raw, ["TIMESTAMP", "ContextTokens", "GeneratedTokens"], path, "azure_llm")
    t = _seconds_from_datetimes(raw["TIMESTAMP"].astype(str).str.strip(), path, "TIMESTAMP")
    df = pd.DataFrame(
        {"arrival_time_s": t, "input_tokens": raw["ContextTokens"], "output_tokens": raw["GeneratedTokens"]}
    )
    notes = [
        "parsed TIMESTAMP as ISO-8601 (naive times read as UTC); arrival_time_s = seconds since the earliest TIMESTAMP."
    ]
    return _with_notes(df, notes)


# ------------------------------------------------------------------ BurstGPT
BURSTGPT_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type")


@TRACE_READERS.register("burstgpt")
def _read_burstgpt(path: Path, opts: ReadOptions | None = None) -> pd.DataFrame:
    """BurstGPT request logs (HPMLL/BurstGPT, CC-BY-4.0).

    Columns ``Timestamp`` (seconds since the start of the log), ``Model`` (ChatGPT,
    GPT-4), ``Request tokens``, ``Response tokens``, ``Total tokens``, ``Log Type``
    (Conversation log, API log); BurstGPT_3 adds ``Session ID`` and ``Elapsed time``.
    A failed request has 0 response tokens (BurstGPT README): dropped and counted by
    default; ``include_failed: true`` keeps them as prompt-only requests with 1 output
    token (the engine needs >= 1), also counted. Times are shifted so the first is 0.
    """
    opts = opts or ReadOptions()
    raw = pd.read_csv(path)
    _need(raw, ["Timestamp", "Request tokens", "Response tokens"], path, "burstgpt")
    t = pd.to_numeric(raw["Timestamp"], errors="coerce")
    df = pd.DataFrame(
        {"arrival_time_s": t, "input_tokens": raw["Request tokens"], "output_tokens": raw["Response tokens"]}
    )
    for theirs, ours in (("Model", "model"), ("Log Type", "log_type"), ("Session ID", "session_id")):
        if theirs in raw.columns:
            df[ours] = raw[theirs]
    notes = []
    out = pd.to_numeric(df["output_tokens"], errors="coerce")
    failed = (out == 0).to_numpy()
    n_failed = int(failed.sum())
    if n_failed:
        if opts.include_failed:
            df.loc[failed, "output_tokens"] = 1
            notes.append(
                f"kept {n_failed} failed request(s) (Response tokens = 0) as 1-output-token requests (include_failed)."
            )
        else:
            df = df.loc[~failed]  # keep the file's row numbers for error messages
            notes.append(
                f"dropped {n_failed} failed request(s) (Response tokens = 0); set include_failed: true to keep them."
            )
    if len(df) and np.isfinite(df["arrival_time_s"].min()):
        first = float(df["arrival_time_s"].min())
        if first != 0.0:
            df["arrival_time_s"] = df["arrival_time_s"] - first
            notes.append(f"shifted Timestamp by -{first:g} s so the first request arrives at 0.")
    return _with_notes(df, notes)


# ------------------------------------------------------------------ Mooncake (original JSONL)
@TRACE_READERS.register("mooncake")
def _read_mooncake(path: Path, opts: ReadOptions | None = None) -> pd.DataFrame:
    """Mooncake FAST'25 traces: JSONL ``timestamp`` [ms], ``input_length``, ``output_length``,
    ``hash_ids`` (list of 512-token prefix-block ids) (kvcache-ai/Mooncake FAST25-release).

    A CSV already in greensim's columns (as in ``../shared/data/traces``) is read as is;
    ``hash_ids`` becomes one space-separated string per request in both cases.
    """
    if path.suffix.lower() == ".csv":
        df = pd.read_csv(path, dtype={"hash_ids": str})
        return df
    raw = pd.read_json(path, lines=True)
    _need(raw, ["timestamp", "input_length", "output_length"], path, "mooncake")
    t = pd.to_numeric(raw["timestamp"], errors="coerce") * 1e-3
    df = pd.DataFrame(
        {"arrival_time_s": t - t.min(), "input_tokens": raw["input_length"], "output_tokens": raw["output_length"]}
    )
    if "hash_ids" in raw.columns:
        df["hash_ids"] = [" ".join(map(str, h)) if isinstance(h, list) else "" for h in raw["hash_ids"]]
    return _with_notes(df, ["converted timestamp from ms to s since the first request."])


# ------------------------------------------------------------------ length tables (vidur / sarathi-serve)
@TRACE_READERS.register("lengths")
def _read_lengths(path: Path, opts: ReadOptions | None = None) -> pd.DataFrame:
    """Length-only tables: ``input_tokens, output_tokens``, or the vidur / sarathi-serve
    originals ``num_prefill_tokens, num_decode_tokens`` (no arrival times: pair with
    ``workload.arrivals``)."""
    raw = _read_any(path)
    if {"num_prefill_tokens", "num_decode_tokens"} <= set(raw.columns):
        return pd.DataFrame({"input_tokens": raw["num_prefill_tokens"], "output_tokens": raw["num_decode_tokens"]})
    _need(raw, ["input_tokens", "output_tokens"], path, "lengths")
    return raw[["input_tokens", "output_tokens"]]


# ------------------------------------------------------------------ ServeGen rate profile
SERVEGEN_COLUMNS = ("model", "window_start_s", "total_rate_rps", "window_len_s")


@TRACE_READERS.register("servegen")
def _read_servegen(path: Path, opts: ReadOptions | None = None) -> pd.DataFrame:
    """The aggregated ServeGen rate profile (one row per model and 10-minute window).

    Not a per-request trace: use it through ``arrivals: {process: servegen}``.
    """
    df = pd.read_csv(path)
    _need(df, list(SERVEGEN_COLUMNS), path, "servegen")
    return df
