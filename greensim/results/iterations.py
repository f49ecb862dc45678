"""Per-iteration trace export (``output.iterations``): ``iterations.parquet`` and ``trace.json``.

:func:`iteration_table` turns an :class:`~greensim.core.recorder.IterationRecorder`'s raw
entries into one row per iteration (a closed-form decode run of ``k`` iterations becomes ``k``
rows, each iteration's time and power from the instance's performance model, scaled so the
rows sum exactly to the run's booked time and energy), per speculative pass and per KV transfer.
:func:`write_trace` writes the table as a Chrome / Perfetto trace (Trace Event Format, JSON):
one process per instance (and one for the KV links), "X" complete events for the rows,
"C" counter events for power and the batch, "M" metadata events naming processes and threads.
Open it at https://ui.perfetto.dev (Open trace file) or in chrome://tracing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from greensim.core.recorder import DECODE_RUN, ITERATION, PHASE, TRANSFER, IterationRecorder

__all__ = ["COLUMNS", "expand_decode_run", "iteration_table", "iteration_summary", "trace_events", "write_trace"]

#: columns of ``iterations.parquet`` (-1: not recorded for that row's kind)
COLUMNS = [
    "instance",  # instance index (a KV transfer: its source, the prefill instance)
    "instance_name",
    "gpu",
    "phase",  # prefill | decode | mixed | lost | (speculative) draft, verify, ... | kv_transfer
    "start_s",
    "duration_s",
    "prefill_tokens",  # prompt tokens processed in the iteration
    "prefill_seqs",  # sequences with prompt tokens in it
    "decode_batch",  # requests decoding one token in it
    "decode_ctx_tokens",  # tokens those requests attend to, summed
    "power_w",  # mean power of the instance over the row (NaN for a transfer)
    "energy_j",  # busy energy of the row (0 for a transfer: links draw no modelled power)
    "request",  # KV transfer: the request
    "dst_instance",  # KV transfer: the decode instance
    "bytes",  # KV transfer: bytes moved
    "link",  # KV transfer: the link's name
]


def expand_decode_run(
    perf: Any, start: float, dur: float, energy: float, n: int, ctx0: int, k: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """The ``k`` iterations of a decode run: ``(starts, durations, energies, sum of model times,
    sum of model energies)``.

    Iteration ``j`` lasts ``perf.iteration_time_s((), n, ctx0 + n*j)`` at
    ``perf.iteration_power_w`` (the decode power where power does not vary); the rows are then
    scaled to the run's booked ``dur`` and ``energy`` (the model sums agree with them to rounding:
    the engine books the run's closed form, ``decode_run_time_s`` / ``decode_run_energy_j``).
    """
    it = perf.iteration_time_s
    d = np.fromiter((it((), n, ctx0 + n * j) for j in range(k)), dtype=float, count=k)
    if perf.power_varies:
        pw = perf.iteration_power_w
        e = np.fromiter((pw((), n, ctx0 + n * j, d[j]) * d[j] for j in range(k)), dtype=float, count=k)
    else:
        e = perf.decode_power_w * d
    t_sum, e_sum = float(d.sum()), float(e.sum())
    dd = d * (dur / t_sum) if t_sum > 0 else np.full(k, dur / k)
    ee = e * (energy / e_sum) if e_sum > 0 else np.full(k, energy / k)
    ends = start + np.cumsum(dd)
    ends[-1] = start + dur
    starts = np.concatenate(([start], ends[:-1]))
    return starts, ends - starts, ee, t_sum, e_sum


def iteration_table(rec: IterationRecorder, instances: Sequence[Any]) -> pd.DataFrame:
    """One row per recorded iteration, pass and KV transfer (:data:`COLUMNS`), by start time."""
    cols: Dict[str, List[Any]] = {c: [] for c in COLUMNS}
    names = [inst.cfg.name for inst in instances]
    gpus = [inst.cfg.gpu for inst in instances]

    def add(inst, phase, start, dur, energy, p_tok=-1, n_seq=-1, n_dec=-1, ctx=-1, req=-1, dst=-1, nb=0.0, link=""):
        cols["instance"].append(inst)
        cols["instance_name"].append(names[inst])
        cols["gpu"].append(gpus[inst])
        cols["phase"].append(phase)
        cols["start_s"].append(start)
        cols["duration_s"].append(dur)
        cols["prefill_tokens"].append(p_tok)
        cols["prefill_seqs"].append(n_seq)
        cols["decode_batch"].append(n_dec)
        cols["decode_ctx_tokens"].append(ctx)
        cols["power_w"].append(energy / dur if dur > 0 else (math.nan if phase == "kv_transfer" else 0.0))
        cols["energy_j"].append(energy)
        cols["request"].append(req)
        cols["dst_instance"].append(dst)
        cols["bytes"].append(nb)
        cols["link"].append(link)

    for kind, inst, start, dur, energy, a, b, c, d in rec.entries:
        if kind == ITERATION:
            phase = "mixed" if (a and c) else ("prefill" if a else "decode")
            add(inst, phase, start, dur, energy, a, b, c, d)
        elif kind == DECODE_RUN:
            starts, durs, ens, _, _ = expand_decode_run(instances[inst].perf, start, dur, energy, a, b, c)
            for j in range(d):  # the kept iterations (all but where the size guard cut the run)
                add(inst, "decode", float(starts[j]), float(durs[j]), float(ens[j]), 0, 0, a, b + a * j)
        elif kind == PHASE:
            add(inst, a, start, dur, energy)
        elif kind == TRANSFER:
            add(inst, "kv_transfer", start, dur, 0.0, req=a, dst=b, nb=c, link=d)
    df = pd.DataFrame(cols, columns=COLUMNS)
    for c in ("instance", "prefill_tokens", "prefill_seqs", "decode_batch", "decode_ctx_tokens", "request"):
        df[c] = df[c].astype(np.int64)
    df["dst_instance"] = df["dst_instance"].astype(np.int64)
    for c in ("start_s", "duration_s", "power_w", "energy_j", "bytes"):
        df[c] = df[c].astype(float)
    for c in ("instance_name", "gpu", "phase", "link"):
        df[c] = df[c].astype(str)
    return df.sort_values(["start_s", "instance"], kind="stable").reset_index(drop=True)


def iteration_summary(rec: IterationRecorder) -> Dict[str, Any]:
    """Summary values of the export: rows kept, whether and when the size guard stopped recording."""
    return {
        "iterations_rows": rec.n_rows,
        "iterations_max": rec.max_rows,
        "iterations_truncated": rec.n_dropped > 0,
        "iterations_dropped_rows": rec.n_dropped,
        "iterations_recorded_until_s": rec.stopped_s,  # None: the whole run
    }


def _ns(t: float) -> int:
    return int(round(t * 1e9))


def trace_events(
    iterations: pd.DataFrame, idle_power_w: Optional[Mapping[int, float]] = None
) -> Iterator[Dict[str, Any]]:
    """Trace Event Format events of an iterations table (:func:`iteration_table`).

    Each instance is a process (pid = instance index + 1), each KV link a thread of a "KV links"
    process. Rows are "X" events (ts, dur in microseconds, from integer nanoseconds); rows that
    overlap on one track (concurrent KV transfers, processor-shared on the link) go to further
    threads ("lane 1", ...), so events on one thread never overlap. Counters per instance:
    ``power_w`` (the row's mean power, back to ``idle_power_w[instance]`` between rows; 0 where
    not given) and, for iterations, ``batch`` (decode batch and prefill tokens), emitted when
    they change.
    """
    idle = dict(idle_power_w or {})
    df = iterations
    inst = df["instance"].to_numpy()
    is_tr = (df["phase"] == "kv_transfer").to_numpy()
    link_pid = int(inst.max()) + 2 if len(df) else 1
    meta: List[Dict[str, Any]] = []
    pids = sorted(set(int(i) for i in inst[~is_tr]))
    names = dict(zip(df["instance"], df["instance_name"]))
    gpus = dict(zip(df["instance"], df["gpu"]))
    for i in pids:
        meta.append(_meta("process_name", i + 1, 0, {"name": f"instance {i}: {names[i]} ({gpus[i]})"}))
        meta.append(_meta("process_sort_index", i + 1, 0, {"sort_index": i}))
    if is_tr.any():
        meta.append(_meta("process_name", link_pid, 0, {"name": "KV links"}))
        meta.append(_meta("process_sort_index", link_pid, 0, {"sort_index": link_pid}))
    yield from meta
    # tracks: (pid, key) -> list of row indices, key = "" (instance) or the link's name
    tracks: Dict[Tuple[int, str], List[int]] = {}
    links = df["link"].to_numpy()
    for r in range(len(df)):
        key = (link_pid, str(links[r])) if is_tr[r] else (int(inst[r]) + 1, "")
        tracks.setdefault(key, []).append(r)
    start = df["start_s"].to_numpy()
    dur = df["duration_s"].to_numpy()
    phase = df["phase"].to_numpy()
    cols = {c: df[c].to_numpy() for c in ("prefill_tokens", "decode_batch", "decode_ctx_tokens", "power_w")}
    tid_names: Dict[Tuple[int, int], str] = {}
    n_tid: Dict[int, int] = {}
    for (pid, key), rows in sorted(tracks.items()):
        rows.sort(key=lambda r: start[r])
        lane_end: List[int] = []  # per lane: end of its last event [ns]
        lane_tid: List[int] = []
        last_power: Optional[float] = None
        last_batch: Optional[Tuple[int, int]] = None
        prev_end = None
        for r in rows:
            s, e = _ns(start[r]), _ns(start[r] + dur[r])
            lane = next((j for j, end in enumerate(lane_end) if s >= end - 1), None)  # 1 ns: rounding
            if lane is None:
                lane = len(lane_end)
                lane_end.append(s)
                tid = n_tid.get(pid, 0)
                n_tid[pid] = tid + 1
                lane_tid.append(tid)
                base = key or "iterations"
                tid_names[(pid, tid)] = base if lane == 0 else f"{base} lane {lane}"
            s = max(s, lane_end[lane])
            e = max(e, s)
            lane_end[lane] = e
            tid = lane_tid[lane]
            args: Dict[str, Any] = {}
            if is_tr[r]:
                args.update(
                    request=int(df["request"].iat[r]),
                    dst_instance=int(df["dst_instance"].iat[r]),
                    bytes=float(df["bytes"].iat[r]),
                    src_instance=int(inst[r]),
                )
            else:
                args.update(power_w=_num(round(cols["power_w"][r], 2)), energy_j=float(f"{df['energy_j'].iat[r]:.7g}"))
                if cols["decode_batch"][r] >= 0:
                    args.update(
                        prefill_tokens=int(cols["prefill_tokens"][r]),
                        decode_batch=int(cols["decode_batch"][r]),
                        decode_ctx_tokens=int(cols["decode_ctx_tokens"][r]),
                    )
            yield {
                "name": str(phase[r]),
                "cat": "iteration",
                "ph": "X",
                "ts": s / 1e3,
                "dur": (e - s) / 1e3,
                "pid": pid,
                "tid": tid,
                "args": args,
            }
            if is_tr[r]:
                continue
            if prev_end is not None and s > prev_end + 1:  # an idle gap before this row
                p_idle = round(float(idle.get(pid - 1, 0.0)), 1)
                if p_idle != last_power:
                    yield _counter("power_w", prev_end, pid, {"W": p_idle})
                    last_power = p_idle
            p = round(float(cols["power_w"][r]), 1)
            if p != last_power:
                yield _counter("power_w", s, pid, {"W": p})
                last_power = p
            if cols["decode_batch"][r] >= 0:
                b = (int(cols["decode_batch"][r]), int(cols["prefill_tokens"][r]))
                if b != last_batch:
                    yield _counter("batch", s, pid, {"decode": b[0], "prefill_tokens": b[1]})
                    last_batch = b
            prev_end = e if prev_end is None else max(prev_end, e)
        if pid != link_pid and prev_end is not None:
            p_idle = round(float(idle.get(pid - 1, 0.0)), 1)
            if p_idle != last_power:
                yield _counter("power_w", prev_end, pid, {"W": p_idle})
    for (pid, tid), name in sorted(tid_names.items()):
        yield _meta("thread_name", pid, tid, {"name": name})


def _num(x: float) -> Optional[float]:
    return float(x) if math.isfinite(x) else None


def _meta(name: str, pid: int, tid: int, args: Dict[str, Any]) -> Dict[str, Any]:
    return {"name": name, "ph": "M", "ts": 0, "pid": pid, "tid": tid, "args": args}


def _counter(name: str, t_ns: int, pid: int, args: Dict[str, Any]) -> Dict[str, Any]:
    return {"name": name, "ph": "C", "ts": t_ns / 1e3, "pid": pid, "tid": 0, "args": args}


def write_trace(
    iterations: pd.DataFrame,
    path: str | Path,
    idle_power_w: Optional[Mapping[int, float]] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Write ``iterations`` (:func:`iteration_table`) as a Chrome / Perfetto JSON trace at ``path``
    (``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": metadata}``), streamed event by event."""
    path = Path(path)
    with open(path, "w") as f:
        f.write('{"displayTimeUnit":"ms","otherData":')
        f.write(json.dumps(dict(metadata or {}), separators=(",", ":"), default=str))
        f.write(',"traceEvents":[')
        first = True
        for ev in trace_events(iterations, idle_power_w):
            if not first:
                f.write(",\n")
            f.write(json.dumps(ev, separators=(",", ":")))
            first = False
        f.write("]}\n")
    return path
