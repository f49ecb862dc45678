"""Validation of a trace's values: every problem names the file, the row and the column.

Without ``drop_invalid`` the first bad value raises :class:`~greensim.base.errors.TraceError`;
with it, bad rows are dropped and counted by reason (the caller reports the counts).
Rows are numbered as in the file from 0, header not counted (row r is line r + 2 of a CSV).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Tuple

import numpy as np

from greensim.base.errors import TraceError
from greensim.base.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = ["clean_frame", "REQUIRED_LENGTH_COLUMNS"]

REQUIRED_LENGTH_COLUMNS = ("input_tokens", "output_tokens")
_FIX = "Fix the file, or set workload.drop_invalid: true to drop such rows (their number is reported)."


def _rows(df: pd.DataFrame) -> np.ndarray:
    """The file's row numbers (a reader may already have dropped rows, e.g. BurstGPT failures)."""
    idx = df.index
    return idx.to_numpy() if pd.api.types.is_integer_dtype(idx) else np.arange(len(df))


MAX_ARRIVAL_S = 1e9  # about 32 years: a later arrival is a unit or data error
MAX_TOKENS = 1e8  # longer than any model's context window


def clean_frame(
    df: pd.DataFrame, where: str, drop_invalid: bool = False, need_arrival: bool = True
) -> Tuple[pd.DataFrame, Dict[str, int]]:
    """Check the columns and values of a normalised trace frame.

    Parameters
    ----------
    df : frame with ``input_tokens``, ``output_tokens`` and (if ``need_arrival``) ``arrival_time_s`` [s].
    where : prefix of error messages; names the file.
    drop_invalid : drop bad rows instead of raising.
    need_arrival : whether ``arrival_time_s`` is required (False for length-only traces).

    Returns
    -------
    (frame, dropped) : the frame with numeric columns (token counts int64, times float64)
        and ``{reason: number of rows dropped}`` (empty when nothing was dropped).

    Raises
    ------
    TraceError
        A required column is missing (always), or, without ``drop_invalid``, a value is
        non-numeric, missing, infinite, negative, fractional (token counts), zero (token
        counts) or arrives before the row above it.
    """
    required = (("arrival_time_s",) if need_arrival else ()) + REQUIRED_LENGTH_COLUMNS
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise TraceError(
            f"{where}: missing column(s) {', '.join(missing)} (found: "
            f"{', '.join(map(str, df.columns))}). A trace needs {', '.join(required)}; rename the "
            f"columns, or use format 'columns' with workload.columns to map them."
        )
    rows = _rows(df)
    n = len(df)
    bad_any = np.zeros(n, dtype=bool)
    dropped: Dict[str, int] = {}
    numeric: Dict[str, np.ndarray] = {}
    cols = [c for c in ("arrival_time_s",) + REQUIRED_LENGTH_COLUMNS if c in df.columns]
    for c in cols:
        raw = df[c]
        x = (
            pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
            if raw.dtype == object or not pd.api.types.is_numeric_dtype(raw)
            else raw.to_numpy(dtype=float)
        )
        checks: List[Tuple[str, np.ndarray, str]] = []
        nonnum = np.isnan(x) & raw.notna().to_numpy()
        checks.append(("non-numeric", nonnum, "has a non-numeric value {v!r} at row {r}"))
        checks.append(("NaN/inf", ~np.isfinite(x) & ~nonnum, "has NaN/inf at row {r}"))
        fin = np.isfinite(x)
        checks.append(("negative", fin & (x < 0), "is negative at row {r} (value {v})"))
        if c == "arrival_time_s":
            checks.append(
                ("too large", fin & (x > MAX_ARRIVAL_S), "is above 1e9 s (about 32 years) at row {r} (value {v})")
            )
        else:
            checks.append(
                (
                    "too large",
                    fin & (x > MAX_TOKENS),
                    "is above 1e8 tokens (longer than any model's context) at row {r} (value {v})",
                )
            )
            checks.append(
                ("non-integer", fin & (x >= 0) & (x != np.floor(x)), "has a non-integer value {v} at row {r}")
            )
            checks.append(("zero tokens", fin & (x == 0), "is 0 at row {r}"))
        for reason, mask, text in checks:
            if not mask.any():
                continue
            k = np.flatnonzero(mask)
            if not drop_invalid:
                i = k[0]
                msg = text.format(v=raw.iloc[i], r=rows[i])
                extra = (
                    " Every request needs >= 1 input and >= 1 output token."
                    if reason == "zero tokens"
                    else " Token counts must be whole numbers."
                    if reason == "non-integer"
                    else " Times and token counts must be >= 0."
                    if reason == "negative"
                    else (" Check the units (workload.time_unit)." if c == "arrival_time_s" else " Check the row.")
                    if reason == "too large"
                    else ""
                )
                raise TraceError(
                    f"{where}: column '{c}' {msg} ({k.size} row{'s' if k.size > 1 else ''}).{extra} {_FIX}"
                )
            new = mask & ~bad_any
            if new.any():
                dropped[f"{c}: {reason}"] = int(new.sum())
            bad_any |= mask
        numeric[c] = x
    if need_arrival and n > 1:
        t = np.where(bad_any, -np.inf, numeric["arrival_time_s"])
        prev_max = np.maximum.accumulate(t)
        late = np.zeros(n, dtype=bool)
        late[1:] = (t[1:] < prev_max[:-1]) & ~bad_any[1:]
        if late.any():
            i = int(np.flatnonzero(late)[0])
            if not drop_invalid:
                j = int(np.flatnonzero(t[:i] == prev_max[i - 1])[-1])
                raise TraceError(
                    f"{where}: column 'arrival_time_s' is not sorted (row {rows[i]} arrives before "
                    f"row {rows[j]}): {t[i]} s < {t[j]} s ({int(late.sum())} such rows). Sort the trace "
                    f"by arrival time. {_FIX}"
                )
            dropped["arrival_time_s: out of order"] = int(late.sum())
            bad_any |= late
    keep = ~bad_any
    out = df.loc[keep] if bad_any.any() else df
    out = out.copy() if bad_any.any() else out.copy(deep=False)
    for c in cols:
        v = numeric[c][keep]
        out[c] = v if c == "arrival_time_s" else v.astype(np.int64)
    return out, dropped
