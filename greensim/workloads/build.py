"""Turn the experiment's workload section into a RequestTable.

Trace replay applies the experiment options in this order (all vectorised):

1. read the file (named trace or path) with its reader; ``select`` keeps matching rows;
2. validate (``drop_invalid`` drops bad rows and reports how many, else the first bad
   value raises naming file, row and column);
3. length filters (``min/max_input_tokens``, ``min/max_output_tokens``, ``max_total_tokens``);
4. ``arrivals``: new arrival times for the remaining rows (needed for length-only traces);
5. window ``[window_start_s, window_end_s)`` in the trace's own time; times are shifted so
   the window starts at 0;
6. ``rate_scale`` k divides times by k (``time_scale`` multiplies them);
7. ``repeat_until_s``: the result is tiled with period = window length (if a window end is
   set) or last arrival + mean gap, until that simulated time;
8. ``max_requests`` keeps the first N.

Every row dropped or changed is reported through the ``greensim.workloads`` logger
(WARNING) and in :func:`load_trace`'s notes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

import numpy as np

from greensim.base.errors import ConfigError, TraceError
from greensim.base.lazy import lazy_module
from greensim.core.requests import RequestTable
from greensim.experiment.workload import (
    MAX_REQUESTS,
    FittedLengths,
    IndependentLengths,
    PoissonWorkload,
    SyntheticWorkload,
    TraceWorkload,
)
from greensim.workloads.arrivals import arrival_times
from greensim.workloads.clean import MAX_ARRIVAL_S, clean_frame
from greensim.workloads.named import find_named_trace
from greensim.workloads.readers import ReadOptions, notes_of
from greensim.workloads.registry import WORKLOADS
from greensim.workloads.synthetic import poisson_table, sample_lengths
from greensim.workloads.traces import frame_to_table, read_trace_frame, resolve_format

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = ["build_workload", "load_trace", "tag_slo_classes"]

log = logging.getLogger("greensim.workloads")


@WORKLOADS.register("poisson")
def _poisson(cfg: PoissonWorkload, seeds: np.random.SeedSequence) -> RequestTable:
    s_arr, s_len = seeds.spawn(2)
    return poisson_table(
        cfg.rate_rps,
        cfg.n_requests,
        cfg.input_tokens,
        cfg.output_tokens,
        np.random.default_rng(s_arr),
        np.random.default_rng(s_len),
    )


def _source(cfg: TraceWorkload) -> Tuple[str, str, str]:
    """(path, format, label) of the trace file."""
    if cfg.name is not None:
        info, path = find_named_trace(cfg.name, cfg.data_dir, "workload.name")
        if info.format == "servegen":
            raise TraceError(
                f"workload.name: '{cfg.name}' is a rate profile, not a per-request trace. Use it as "
                f"an arrival process: workload.arrivals: {{process: servegen, model: m-large}} with a "
                f"length-only trace, or kind: synthetic."
            )
        return str(path), (info.format if cfg.format == "auto" else cfg.format), f"{cfg.name} ({path.name})"
    return str(cfg.path), cfg.format, str(cfg.path)


def _tile(t: np.ndarray, period_s: float, until_s: float) -> np.ndarray:
    """Indices and times of ``t`` repeated every ``period_s`` up to ``until_s`` (exclusive)."""
    k = max(1, int(math.ceil(until_s / period_s)))
    times = (t[None, :] + period_s * np.arange(k)[:, None]).ravel()
    idx = np.tile(np.arange(t.size), k)
    keep = times < until_s
    return idx[keep], times[keep]


def load_trace(cfg: TraceWorkload, seeds: Optional[np.random.SeedSequence] = None) -> Tuple[pd.DataFrame, List[str]]:
    """The trace as a cleaned frame after every experiment option, and notes on what was done."""
    path, fmt, label = _source(cfg)
    where = f"workload ({label})"
    if cfg.columns and fmt == "auto":
        fmt = "columns"
    if fmt != "columns" and (cfg.columns or cfg.time_unit != "s"):
        raise ConfigError(
            f"workload.columns / workload.time_unit apply to format 'columns' only (format is "
            f"'{fmt}'). Set workload.format: columns, or remove them."
        )
    resolved = fmt
    if fmt == "auto" and Path(path).is_file():  # a missing file: the reader says so
        resolved = resolve_format(Path(path), where)  # a BurstGPT header is recognised
    if cfg.include_failed and resolved not in ("burstgpt", "auto"):
        how = f"'{resolved}'" + (" (format auto, by the file's suffix and header)" if fmt == "auto" else "")
        raise ConfigError(f"workload.include_failed applies to format 'burstgpt' only (format is {how}).")
    opts = ReadOptions(columns=cfg.columns, time_unit=cfg.time_unit, include_failed=cfg.include_failed)
    df = read_trace_frame(path, fmt, where=where, opts=opts)
    notes = notes_of(df)
    if fmt == "servegen":
        raise TraceError(
            f"{where}: a ServeGen rate profile is not a per-request trace; use arrivals: {{process: servegen}}."
        )
    for col, value in cfg.select.items():
        if col not in df.columns:
            raise TraceError(
                f"workload.select: '{col}' is not a column of {label} (columns: {', '.join(map(str, df.columns))})."
            )
        keep = df[col].astype(str).to_numpy() == str(value)
        notes.append(f"select {col} == {value!r}: kept {int(keep.sum())} of {len(df)} rows.")
        df = df.loc[keep]
    if len(df) == 0 and not cfg.select:
        raise TraceError(f"{where}: the trace has no rows (a header only?). Add requests to the file.")
    has_times = "arrival_time_s" in df.columns
    if not has_times and not {"input_tokens", "output_tokens"} & set(map(str, df.columns)):
        cols = [str(c) for c in df.columns][:6]
        sep = any(";" in c or "\t" in c or "|" in c for c in cols)
        raise TraceError(
            f"{where}: none of the expected columns arrival_time_s, input_tokens, output_tokens found (the "
            f"first row gives columns {cols})"
            + ("; the values look separated by ';', tab or '|', not ','." if sep else "; is the header row missing?")
            + " Write a comma-separated file whose first row is the header "
            "arrival_time_s,input_tokens,output_tokens, or set workload.format / workload.columns."
        )
    if not has_times and cfg.arrivals is None:
        timeish = [str(c) for c in df.columns if any(k in str(c).lower() for k in ("arriv", "time", "stamp"))]
        hint = (
            f" It has column(s) {timeish}: if one holds the arrival times, map it with workload.columns, "
            f"e.g. {{arrival_time_s: {timeish[0]}}} (workload.time_unit for ms/us)."
            if timeish
            else ""
        )
        raise TraceError(
            f"{where}: this trace has no arrival_time_s column (lengths only).{hint} Otherwise set "
            f"workload.arrivals, e.g. {{process: poisson, rate_rps: 5}} or {{process: servegen, model: "
            f"m-large, mean_rate_rps: 5}}."
        )
    df, dropped = clean_frame(df, where, drop_invalid=cfg.drop_invalid, need_arrival=cfg.arrivals is None)
    if dropped:
        notes.append(
            f"drop_invalid: dropped {sum(dropped.values())} row(s): "
            + ", ".join(f"{k} {v}" for k, v in dropped.items())
            + "."
        )
    inp = df["input_tokens"].to_numpy()
    out = df["output_tokens"].to_numpy()
    keep = np.ones(len(df), dtype=bool)
    for lim, arr, op, text in (
        (cfg.min_input_tokens, inp, np.greater_equal, "input_tokens >="),
        (cfg.max_input_tokens, inp, np.less_equal, "input_tokens <="),
        (cfg.min_output_tokens, out, np.greater_equal, "output_tokens >="),
        (cfg.max_output_tokens, out, np.less_equal, "output_tokens <="),
        (cfg.max_total_tokens, inp + out, np.less_equal, "input+output tokens <="),
    ):
        if lim is not None:
            ok = op(arr, lim)
            notes.append(f"length filter {text} {lim}: dropped {int((keep & ~ok).sum())} row(s).")
            keep &= ok
    if not keep.all():
        df = df.loc[keep]
    if cfg.arrivals is not None:
        rng = np.random.default_rng(seeds if seeds is not None else np.random.SeedSequence(0))
        t = arrival_times(cfg.arrivals, rng, n=len(df), where="workload.arrivals", data_dir=cfg.data_dir)
        df = df.iloc[: t.size].copy()
        df["arrival_time_s"] = t
        notes.append(f"arrival times generated by process {cfg.arrivals.process} for {len(df)} request(s).")
    t = df["arrival_time_s"].to_numpy(dtype=float)
    lo, hi = cfg.window_start_s, cfg.window_end_s
    if lo is not None or hi is not None:
        lo_ = 0.0 if lo is None else lo
        m = (t >= lo_) & (t < (np.inf if hi is None else hi))
        notes.append(
            f"window [{lo_:g}, {'end' if hi is None else f'{hi:g}'}) s: kept {int(m.sum())} of {t.size} "
            f"requests; times shifted by -{lo_:g} s."
        )
        df = df.loc[m]
        t = t[m] - lo_
    scale = cfg.time_scale / cfg.rate_scale
    if scale != 1.0:
        with np.errstate(over="ignore"):  # inf: stopped by check_arrival_horizon with the fields to fix
            t = t * scale
    if cfg.repeat_until_s is not None and t.size:
        if hi is not None:
            period = (hi - (lo or 0.0)) * scale
        elif t.size > 1 and t[-1] > t[0]:
            period = t[-1] + (t[-1] - t[0]) / (t.size - 1)
        else:
            raise TraceError(
                f"{where}: repeat_until_s needs at least two distinct arrival times (or a window_end_s "
                f"to set the period)."
            )
        copies = math.ceil(cfg.repeat_until_s / period) if period > 0 else math.inf
        if cfg.repeat_until_s > MAX_ARRIVAL_S or copies * t.size > MAX_REQUESTS:
            raise ConfigError(
                f"workload.repeat_until_s: {cfg.repeat_until_s:g} s tiles the trace ({t.size} request(s) every "
                f"{period:g} s) into about {copies * t.size:.3g} requests up to {cfg.repeat_until_s:.3g} s; at most "
                f"{MAX_REQUESTS:.0e} requests and {MAX_ARRIVAL_S:.0e} s (about 32 years) are simulated. Lower it."
            )
        idx, t = _tile(t, period, cfg.repeat_until_s)
        notes.append(
            f"repeated every {period:g} s until {cfg.repeat_until_s:g} s: {t.size} requests "
            f"({t.size / max(len(df), 1):.2f} copies)."
        )
        df = df.iloc[idx]
    df = df.copy()
    df["arrival_time_s"] = t
    if cfg.max_requests is not None and len(df) > cfg.max_requests:
        notes.append(f"max_requests: kept the first {cfg.max_requests} of {len(df)} requests.")
        df = df.iloc[: cfg.max_requests]
    if len(df) == 0:
        used = [
            f"workload.{k}"
            for k in (
                "select",
                "window_start_s",
                "window_end_s",
                "min_input_tokens",
                "max_input_tokens",
                "min_output_tokens",
                "max_output_tokens",
                "max_total_tokens",
            )
            if getattr(cfg, k)
        ]
        raise TraceError(
            f"{where}: no requests left after "
            + (f"the options {', '.join(used)}. Loosen them." if used else "reading and cleaning it. Check the rows.")
        )
    return df.reset_index(drop=True), notes


@WORKLOADS.register("trace")
def _trace(cfg: TraceWorkload, seeds: np.random.SeedSequence) -> RequestTable:
    df, notes = load_trace(cfg, seeds)
    label = cfg.name or cfg.path
    for n in notes:
        log.warning("workload (%s): %s", label, n)
    return dataclasses.replace(frame_to_table(df, where=f"workload ({label})"), notes=tuple(notes))


def _lengths(cfg, n: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    if isinstance(cfg, FittedLengths):
        from greensim.workloads.fitted import load_length_model

        return load_length_model(cfg.trace, "workload.lengths.trace").sample(n, rng)
    assert isinstance(cfg, IndependentLengths)
    return (
        sample_lengths(cfg.input_tokens, n, rng, "workload.lengths.input_tokens"),
        sample_lengths(cfg.output_tokens, n, rng, "workload.lengths.output_tokens"),
    )


@WORKLOADS.register("synthetic")
def _synthetic(cfg: SyntheticWorkload, seeds: np.random.SeedSequence) -> RequestTable:
    s_arr, s_len = seeds.spawn(2)
    if cfg.prefix is not None or cfg.sessions is not None:
        from greensim.workloads.prefixes import synthetic_with_prefixes

        # the system-prompt picks: a stream of their own (a fixed child key, as tag_slo_classes)
        pick = np.random.SeedSequence(seeds.entropy, spawn_key=tuple(seeds.spawn_key) + (1 << 21,))
        return synthetic_with_prefixes(
            cfg,
            np.random.default_rng(s_arr),
            np.random.default_rng(s_len),
            np.random.default_rng(pick),
            _lengths,
        )
    t = arrival_times(cfg.arrivals, np.random.default_rng(s_arr), n=cfg.n_requests, duration_s=cfg.duration_s)
    if t.size == 0:
        raise TraceError(
            "workload: the arrival process produced no request before duration_s; raise the rate or the duration."
        )
    inp, out = _lengths(cfg.lengths, t.size, np.random.default_rng(s_len))
    return RequestTable.from_arrays(t, inp, out, where="workload")


def _time_fields(cfg) -> str:
    """The experiment fields that set a workload's arrival times (for error messages)."""
    if isinstance(cfg, PoissonWorkload):
        return "workload.rate_rps"
    fields = []
    if getattr(cfg, "arrivals", None) is not None:
        fields.append("workload.arrivals (its rate)")
    for k in ("time_scale", "rate_scale", "repeat_until_s", "duration_s"):
        v = getattr(cfg, k, None)
        if v is not None and v != 1.0:
            fields.append(f"workload.{k}")
    return ", ".join(fields) or "workload"


def check_arrival_horizon(table: RequestTable, cfg) -> None:
    """Stop a workload whose arrivals run past :data:`MAX_ARRIVAL_S` (about 32 years): a rate
    or time scale that far off is a unit error, and the energy and carbon of such a run are
    meaningless (a 1e300 s run gives 300-digit numbers)."""
    if len(table) and float(table.arrival_s[-1]) > MAX_ARRIVAL_S:
        raise ConfigError(
            f"{_time_fields(cfg)}: the requests arrive until t = {float(table.arrival_s[-1]):.3g} s, beyond "
            f"{MAX_ARRIVAL_S:.0e} s (about 32 years); the rate is too low or the times too stretched. "
            f"Check the units, raise the rate or lower the number of requests."
        )


def build_workload(cfg, seeds: np.random.SeedSequence) -> RequestTable:
    """Dispatch on ``cfg.kind`` through the workload registry; then ``slo_class_frac`` tags classes."""
    table = WORKLOADS.get(cfg.kind, field="workload.kind")(cfg, seeds)
    check_arrival_horizon(table, cfg)
    fracs = getattr(cfg, "slo_class_frac", None)
    if fracs:
        table = tag_slo_classes(table, fracs, seeds)
    return table


def tag_slo_classes(table: RequestTable, fracs, seeds: np.random.SeedSequence) -> RequestTable:
    """Give each request SLO class ``c`` with probability ``fracs[c]`` (else the default, '').

    Draws one uniform per request from a stream of its own (a fixed child key of ``seeds``),
    so arrivals and lengths are those of the same workload without classes. Classes are
    taken in name order for determinism.
    """
    child = np.random.SeedSequence(seeds.entropy, spawn_key=tuple(seeds.spawn_key) + (1 << 20,))
    u = np.random.default_rng(child).random(len(table))
    sc = np.full(len(table), "", dtype=object)
    lo = 0.0
    for name in sorted(fracs):
        hi = lo + fracs[name]
        sc[(u >= lo) & (u < hi)] = name
        lo = hi
    return dataclasses.replace(table, slo_class=sc)
