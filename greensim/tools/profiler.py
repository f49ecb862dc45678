"""Measure a model shape's latency and board power on the local GPU (``greensim profile``).

This module imports only the standard library at import time, so it runs standalone on a
GPU machine (``python3 profiler.py --shapes shapes.json --models OPT-125M --out DIR``) and
its measurement loop is tested without torch through a fake :class:`Backend`.

What is measured (random weights, no downloads), per model shape and TP degree:

* ``idle``: board power with the weights resident and nothing running [W].
* ``prefill``: one sequence of ``prompt_tokens`` new tokens, KV written to the cache,
  logits of the last token only (as vLLM) [s, W].
* ``decode``: one decode step of ``batch`` sequences that each attend to ``ctx_tokens``
  cached tokens, replayed as a CUDA graph (as vLLM and SGLang do for decode) [s, W].
* ``verify``: one speculative-decoding verify step: ``batch`` sequences each score
  ``prompt_tokens`` (= T, 2-9) new tokens, causal among themselves, over ``ctx_tokens``
  cached tokens, logits for every new token [s, W].
* ``mixed``: one prefill of ``prompt_tokens`` plus ``batch`` decodes at ``ctx_tokens`` in
  one iteration (chunked-prefill style) [s, W].

Every phase runs as a CUDA graph (kernel time, no Python launch cost). Power is NVML's
energy counter over a window of at least ``power_s`` (default 1.5 s) of back-to-back runs;
a reading above the board's power limit (+5%) is rejected (NaN, logged), and the idle
reading is taken after the GPU has settled (``settle_s``).

The decoder (:mod:`greensim.tools.torch_decoder`) is hand-written: fused QKV and gate/up
projections, RoPE, RMSNorm (Llama/Qwen) or LayerNorm + ReLU MLP (OPT), torch
``scaled_dot_product_attention``, a contiguous (not paged) KV cache. It has none of a
serving engine's scheduler, sampler, paged-attention kernels or CPU-side work, so its
times are lower bounds of what vLLM reaches on the same GPU (see profiles/measured/PROVENANCE.md).

Output: one CSV per (GPU, model, TP) with :data:`COLUMNS` and a ``.meta.json`` sidecar
with provenance (GPU name, driver, torch/CUDA versions, date, exact command).
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

try:
    from greensim.tools.backend import Backend
except ImportError:  # run as a standalone script next to backend.py
    from backend import Backend  # type: ignore

__all__ = [
    "COLUMNS",
    "PHASES",
    "Backend",
    "default_grid",
    "measure",
    "profile_shape",
    "write_profile",
    "profile_stem",
    "main",
]

#: Columns of a measured-profile CSV (units in the names).
COLUMNS = [
    "phase",
    "batch",
    "prompt_tokens",
    "ctx_tokens",
    "time_s",
    "time_p10_s",
    "time_p90_s",
    "power_w",
    "n_rep",
    "power_window_s",
]
PHASES = ("idle", "prefill", "decode", "verify", "mixed")


def default_grid(quick: bool = False) -> Dict[str, List[int]]:
    """The measurement grid (token counts and batch sizes).

    Parameters
    ----------
    quick : a tiny grid for tests and CPU smoke runs.
    """
    if quick:
        return {
            "prefill_tokens": [16, 32, 64],
            "decode_batch": [1, 2, 4],
            "decode_ctx": [16, 64],
            "verify_tokens": [3],
            "verify_batch": [2],
            "verify_ctx": [32],
            "mixed_prompt": [16],
            "mixed_batch": [2],
            "mixed_ctx": [32],
        }
    return {
        "prefill_tokens": [32, 128, 512, 1024, 2048, 4096, 8192],
        "decode_batch": [1, 4, 16, 32, 64, 128],
        "decode_ctx": [512, 2048, 4096],
        "verify_tokens": [2, 5, 9],
        "verify_batch": [1, 8, 32],
        "verify_ctx": [1024, 4096],
        "mixed_prompt": [512, 2048],
        "mixed_batch": [32],
        "mixed_ctx": [1024],
    }


def measure(
    fn: Callable[[], None],
    backend: Backend,
    *,
    warmup: int = 3,
    min_rep: int = 5,
    max_rep: int = 500,
    window_s: float = 0.3,
    power_s: float = 0.0,
    power_limit_w: Optional[float] = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Dict[str, float]:
    """Time ``fn`` and its average board power over a window of back-to-back runs.

    Parameters
    ----------
    fn : one iteration.
    backend : device timer and energy counter.
    warmup : untimed runs first (compilation, allocator, clocks).
    min_rep, max_rep : bounds of the number of timed runs.
    window_s : target length of the timed window [s].
    power_s : minimum length of the window [s] (the energy counter needs a window well above
        its update period, and the board's power settles over ~1 s).
    power_limit_w : the board's power limit [W]; a reading above 1.05x it is rejected (NaN).
    clock : host clock for the power window [s].

    Returns
    -------
    dict with ``time_s`` (median), ``time_p10_s``, ``time_p90_s`` [s], ``power_w``
    (energy / window [W], NaN if the backend has no counter) and ``n_rep``.
    """
    pre = backend.elapsed_s(fn, warmup)
    est = max(min(pre) if pre else 0.0, 1e-6)
    n = int(min(max(max_rep, math.ceil(power_s / est)), max(min_rep, math.ceil(max(window_s, power_s) / est))))
    backend.sync()
    e0, t0 = backend.energy_j(), clock()
    times = backend.elapsed_s(fn, n)
    backend.sync()
    e1, t1 = backend.energy_j(), clock()
    if e0 is not None and e1 is not None and t1 > t0:
        power = (e1 - e0) / (t1 - t0)
    else:
        p = backend.power_w()
        power = float("nan") if p is None else p
    if power_limit_w and power > 1.05 * power_limit_w:
        power = float("nan")  # above what the board may draw: a counter artefact, not a reading
    q = sorted(times)
    pick = lambda f: q[min(len(q) - 1, int(round(f * (len(q) - 1))))]  # noqa: E731
    return {
        "time_s": statistics.median(q),
        "time_p10_s": pick(0.1),
        "time_p90_s": pick(0.9),
        "power_w": power,
        "n_rep": n,
        "power_window_s": max(t1 - t0, 0.0),
    }


def _cell(
    backend: Backend, make: Callable[[], Any], log: Callable[[str], None], what: str, **kw: Any
) -> Optional[Dict[str, float]]:
    """Build and measure one cell; None (logged) if it does not fit or fails on the device."""
    try:
        fn = make()
        if fn is None:
            log(f"  {what}: does not fit, skipped")
            return None
        return measure(fn, backend, **kw)
    except Exception as exc:  # noqa: BLE001  (an out-of-memory cell must not lose the run)
        log(f"  {what}: failed ({type(exc).__name__}: {str(exc)[:200]}), skipped")
        return None
    finally:
        backend.release()


def _row(phase: str, batch: int, prompt: int, ctx: int, m: Mapping[str, float]) -> Dict[str, Any]:
    return {"phase": phase, "batch": batch, "prompt_tokens": prompt, "ctx_tokens": ctx, **m}


def profile_shape(
    backend: Backend,
    grid: Mapping[str, Sequence[int]],
    *,
    idle_s: float = 3.0,
    settle_s: float = 5.0,
    window_s: float = 0.3,
    power_s: float = 1.5,
    power_limit_w: Optional[float] = None,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.perf_counter,
    deadline: Optional[float] = None,
    checkpoint: Optional[Callable[[List[Dict[str, Any]]], None]] = None,
) -> List[Dict[str, Any]]:
    """Measure every cell of ``grid`` that fits; return the profile rows (see :data:`COLUMNS`).

    Cells that do not fit in memory (``make_*`` returns None) are skipped and logged.
    ``deadline`` (a ``clock`` value) stops the decode and verify sweeps early, keeping what
    was measured; ``checkpoint(rows)`` is called after every measured cell (a killed run
    keeps its rows). Idle power is read over ``idle_s`` after ``settle_s`` of rest (an H100
    keeps its clocks, and its power, up for seconds after work stops).
    """
    rows: List[Dict[str, Any]] = []
    backend.sync()
    sleep(settle_s)
    e0, t0 = backend.energy_j(), clock()
    sleep(idle_s)
    e1, t1 = backend.energy_j(), clock()
    if e0 is not None and e1 is not None and t1 > t0:
        idle = (e1 - e0) / (t1 - t0)
    else:
        p = backend.power_w()
        idle = float("nan") if p is None else p
    rows.append(
        _row(
            "idle",
            0,
            0,
            0,
            {
                "time_s": 0.0,
                "time_p10_s": 0.0,
                "time_p90_s": 0.0,
                "power_w": idle,
                "n_rep": 1,
                "power_window_s": max(t1 - t0, 0.0),
            },
        )
    )
    log(f"  idle: {idle:6.1f} W")
    kw = {"window_s": window_s, "power_s": power_s, "power_limit_w": power_limit_w, "clock": clock}

    def done(phase: str, b: int, p: int, c: int, m: Optional[Dict[str, float]], what: str, make=None) -> None:
        if m is None:
            return
        if m["power_w"] != m["power_w"] and power_limit_w:
            log(f"  {what}: power reading above 1.05 x the {power_limit_w:.0f} W limit rejected; measuring again")
            m = _cell(backend, make, log, what, **kw) if make else None
            if m is None or m["power_w"] != m["power_w"]:
                log(f"  {what}: rejected twice, row dropped")
                return
        rows.append(_row(phase, b, p, c, m))
        if checkpoint:
            checkpoint(rows)
        log(f"  {what}: {m['time_s'] * 1e3:9.3f} ms {m['power_w']:6.0f} W")

    def late() -> bool:
        if deadline is not None and clock() > deadline:
            log("  deadline reached: sweep stopped")
            return True
        return False

    def cell(phase: str, b: int, p: int, c: int, make: Callable[[], Any], what: str) -> None:
        done(phase, b, p, c, _cell(backend, make, log, what, **kw), what, make)

    for p in grid["prefill_tokens"]:
        cell("prefill", 1, p, 0, lambda: backend.make_prefill(p), f"prefill {p:>5}")
    for b in grid["decode_batch"]:
        if late():
            break
        for c in grid["decode_ctx"]:
            cell("decode", b, 0, c, lambda: backend.make_decode(b, c), f"decode b={b:>3} ctx={c:>5}")
    for t in grid.get("verify_tokens", []):
        if late():
            break
        for b in grid["verify_batch"]:
            for c in grid["verify_ctx"]:
                cell("verify", b, t, c, lambda: backend.make_verify(b, t, c), f"verify T={t} b={b:>3} ctx={c:>5}")
    for p in grid["mixed_prompt"]:
        for b in grid["mixed_batch"]:
            for c in grid["mixed_ctx"]:
                cell("mixed", b, p, c, lambda: backend.make_mixed(p, b, c), f"mixed p={p} b={b} ctx={c}")
    return rows


def profile_stem(gpu: str, model: str, tp: int) -> str:
    """File stem of a profile: ``<gpu>/<model>_tp<tp>`` (folder-safe names)."""
    safe = lambda s: "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in s)  # noqa: E731
    return f"{safe(gpu)}/{safe(model)}_tp{tp}"


def write_profile(
    rows: Iterable[Mapping[str, Any]], meta: Mapping[str, Any], out_dir: str, gpu: str, model: str, tp: int
) -> str:
    """Write ``<out_dir>/<gpu>/<model>_tp<tp>.csv`` and its ``.meta.json``; return the CSV path."""
    path = os.path.join(out_dir, profile_stem(gpu, model, tp) + ".csv")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in COLUMNS})
    with open(path[:-4] + ".meta.json", "w") as f:
        json.dump(dict(meta), f, indent=1, sort_keys=True)
        f.write("\n")
    return path


def _provenance(
    backend: Any, shape: Mapping[str, Any], tp: int, grid: Mapping[str, Any], argv: Sequence[str]
) -> Dict[str, Any]:
    info = getattr(backend, "info", lambda: {})()
    return {
        "model": shape["name"],
        "shape": dict(shape),
        "tp": tp,
        "grid": dict(grid),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(argv),
        "source": "measured here",
        **info,
    }


def _worker(rank: int, args: argparse.Namespace, shapes: Dict[str, Any]) -> None:
    try:
        from greensim.tools.torch_decoder import TorchBackend
    except ImportError:  # run as a standalone script next to torch_decoder.py
        from torch_decoder import TorchBackend  # type: ignore
    _run(rank, args, shapes, TorchBackend)


def _run(rank: int, args: argparse.Namespace, shapes: Dict[str, Any], backend_cls) -> None:
    grid = default_grid(args.quick)
    if args.no_mixed:
        grid = dict(grid, mixed_prompt=[])
    if args.grid:
        grid = dict(grid, **json.loads(args.grid))
    t_start = time.perf_counter()
    for name in args.models.split(","):
        if args.budget_s and time.perf_counter() - t_start > args.budget_s:
            if rank == 0:
                print(f"{name}: time budget spent, not measured", flush=True)
            continue
        shape = shapes[name]
        be = backend_cls(shape, tp=args.tp, rank=rank, device=args.device, dtype=args.dtype, graphs=not args.no_graphs)
        if not be.fits():
            if rank == 0:
                print(f"{name}: weights do not fit on this device at TP{args.tp}, skipped", flush=True)
            be.close()
            continue
        log = (lambda s: print(f"{name}{s}", flush=True)) if rank == 0 else (lambda s: None)
        log(f": profiling at TP{args.tp} on {be.info().get('gpu_name', args.device)}")
        deadline = time.perf_counter() + args.model_budget_s if args.model_budget_s else None
        gpu = args.gpu or be.info().get("gpu_name", "cpu")
        meta = _provenance(be, shape, args.tp, grid, sys.argv)
        kpl = getattr(be, "count_kernels_per_layer", lambda: None)()
        if kpl is not None:
            meta["kernels_per_layer"] = kpl
            meta["kernels_per_layer_source"] = "torch.profiler count of one eager decode step (2 layers - 1 layer)"
            log(f": {kpl:g} kernels per layer")
        save = (lambda rows: write_profile(rows, meta, args.out, gpu, name, args.tp)) if rank == 0 else None
        rows = profile_shape(
            be,
            grid,
            idle_s=args.idle_s,
            settle_s=args.settle_s,
            window_s=args.window_s,
            power_s=args.power_s,
            power_limit_w=be.info().get("power_limit_w"),
            log=log,
            sleep=be.sleep,
            deadline=deadline,
            checkpoint=save,
        )
        if rank == 0:
            p = write_profile(rows, meta, args.out, gpu, name, args.tp)
            print(f"{name}: wrote {p} ({time.perf_counter() - t_start:.0f} s so far)", flush=True)
        be.close()


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Standalone entry point (the GPU machine needs only torch, this file and torch_decoder.py)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", required=True, help="JSON file: model name -> shape (greensim shape dict)")
    ap.add_argument("--models", required=True, help="comma-separated model names from --shapes")
    ap.add_argument("--out", required=True, help="output folder (profiles go to OUT/<gpu>/<model>_tp<N>.csv)")
    ap.add_argument("--gpu", default="", help="catalogue GPU name for the file (default: the device name)")
    ap.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (one process per GPU, NCCL)")
    ap.add_argument("--device", default="cuda", help="cuda or cpu (cpu: smoke test only)")
    ap.add_argument("--dtype", default="bfloat16", help="weight/activation dtype (bfloat16, float16, float32)")
    ap.add_argument("--quick", action="store_true", help="tiny grid (smoke test)")
    ap.add_argument("--no-mixed", action="store_true", help="skip the mixed-iteration cells")
    ap.add_argument("--grid", default="", help="JSON overriding grid entries, e.g. '{\"decode_batch\": [1, 8]}'")
    ap.add_argument("--window-s", type=float, default=0.3, help="timed window per cell [s]")
    ap.add_argument("--idle-s", type=float, default=3.0, help="idle power window [s]")
    ap.add_argument("--settle-s", type=float, default=5.0, help="rest before the idle window [s]")
    ap.add_argument("--power-s", type=float, default=1.5, help="minimum power window per cell [s]")
    ap.add_argument("--no-graphs", action="store_true", help="time every phase eagerly (launch cost included)")
    ap.add_argument("--budget-s", type=float, default=0.0, help="stop starting new models after this [s]")
    ap.add_argument("--model-budget-s", type=float, default=0.0, help="stop a model's decode sweep after this [s]")
    args = ap.parse_args(argv)
    with open(args.shapes) as f:
        shapes = json.load(f)
    missing = [m for m in args.models.split(",") if m not in shapes]
    if missing:
        ap.error(f"--models: {missing} not in {args.shapes} (known: {sorted(shapes)})")
    if args.tp > 1:
        import torch.multiprocessing as mp  # type: ignore

        mp.spawn(_worker, args=(args, shapes), nprocs=args.tp, join=True)
    else:
        _worker(0, args, shapes)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
