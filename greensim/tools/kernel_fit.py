"""Fit the kernel model (:mod:`greensim.hardware.kernel`) to measured profiles.

The measured rows (``profiles/measured/<GPU>/<model>_tp1.csv``, CUDA-graph kernel time and
NVML board power) are predicted by :class:`~greensim.hardware.kernel.BoundKernel` with engine
``none``; per GPU the five kernel efficiencies minimise the squared log error over the
prefill, decode and verify rows (mixed iterations are held out for validation), and the
power curve's ``a, b, c`` are a non-negative least-squares fit of the measured power of
every phase against the iteration's achieved bandwidth and FLOP utilisation.

Used by :mod:`greensim.tools.validation` (leave-one-model-out, leave-one-GPU-out) and to
write ``profiles/kernel.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from greensim.hardware.catalog import Catalog, GPUSpec, ModelSpec
from greensim.hardware.kernel import KERNEL_FIELDS, BoundKernel, EnginePreset, KernelParams
from greensim.hardware.profiled import load_profile

__all__ = ["Row", "load_rows", "predict", "fit_kernel", "fit_power", "FIT_PHASES", "BOUNDS", "START"]

#: kernels per layer of the 2026-11-26 profiler's decoder (profiles without ``kernels_per_layer``
#: in their meta), counted from its code (greensim/tools/torch_decoder.py at commit 9ba613e): with
#: RoPE and a gated MLP, RMSNorm 1, QKV 1, RoPE 7 each on q and k (two halves, four products, two
#: sums, a concatenation), K/V cache writes 2, attention 1, output 1, residual 1, RMSNorm 1,
#: gate/up 1, SiLU 1, product 1, down 1, residual 1 = 27; OPT (learned positions, ReLU MLP,
#: LayerNorm, biases fused into the GEMMs) = 12.
OLD_PROFILER_KERNELS = {"rope": 27, "opt": 12}
#: phases the latency fit uses (mixed rows are held out)
FIT_PHASES = ("prefill", "decode", "verify")
#: search bounds of the five efficiencies (eta in (0, 1], per-layer floor 0-100 us)
BOUNDS = ([0.05, 0.05, 0.05, 0.05, 0.0], [1.0, 1.0, 1.0, 1.0, 20e-6])
START = [0.7, 0.8, 0.5, 0.8, 3e-6]
#: SMs of the profiled GPUs (what the profiler's split-KV rule reads from torch): 132 on H100 SXM5
#: (NVIDIA H100 Tensor Core GPU Architecture whitepaper, 2022, GH100 in SXM5: 132 SMs) and on H200
#: (the same GH100 configuration with HBM3e, NVIDIA H200 datasheet 2024)
PROFILED_SMS = {"H100-SXM": 132, "H200": 132}


@dataclass(frozen=True)
class Row:
    """One measured cell: ``prompt`` is a prefill's (or mixed iteration's) prompt, or a verify
    step's new tokens per sequence."""

    gpu: str
    model: str
    tp: int
    phase: str
    batch: int
    prompt: int
    ctx: int
    time_s: float
    power_w: float
    idle_w: float
    kernels: int = 10
    eager_prefill: bool = False
    #: the profile recorded its kernel count (the current profiler: split-KV attention)
    kernels_measured: bool = False
    #: a verify step whose attention the profiler ran unsplit with an explicit causal mask
    #: (see :func:`masked_verify`): an implementation artefact, outside the fit
    masked_verify: bool = False


def load_rows(root: Path, catalog: Catalog, gpus: Optional[Iterable[str]] = None) -> List[Row]:
    """Every row of ``root/<GPU>/<model>_tp<N>.csv`` whose GPU and model are in the catalogue."""
    out: List[Row] = []
    want = set(gpus) if gpus else None
    for f in sorted(Path(root).glob("*/*_tp*.csv")):
        gpu = f.parent.name
        model, _, tp = f.stem.rpartition("_tp")
        if want is not None and gpu not in want:
            continue
        p = load_profile(f)
        idle = p.idle_w if p.idle_w is not None else float("nan")
        kn, eager = profile_kernels(p.meta, catalog.model(model))
        kw = {"kernels": kn, "eager_prefill": eager, "kernels_measured": "kernels_per_layer" in p.meta}
        for tok, t, pw in p.prefill:
            out.append(Row(gpu, model, int(tp), "prefill", 1, tok, 0, t, pw, idle, **kw))
        for b, d in p.decode.items():
            for c, (t, pw) in d.items():
                out.append(Row(gpu, model, int(tp), "decode", b, 0, c, t, pw, idle, **kw))
        split = "split-KV" in str(p.meta.get("decode_attention", ""))
        nkv = catalog.model(model).n_kv_heads // int(tp)
        for T, b, c, t, pw in p.verify:
            mv = masked_verify(T, b, c, nkv, PROFILED_SMS.get(gpu, 108), split)
            out.append(Row(gpu, model, int(tp), "verify", b, T, c, t, pw, idle, masked_verify=mv, **kw))
        for P, b, c, t, pw in p.mixed:
            out.append(Row(gpu, model, int(tp), "mixed", b, P, c, t, pw, idle, **kw))
    return out


def profile_kernels(meta: Mapping[str, object], model: ModelSpec) -> Tuple[int, bool]:
    """(kernels per layer, prefill timed eagerly) of the implementation a profile measured:
    from its meta where the profiler recorded them, else the 2026-11-26 profiler's."""
    if "kernels_per_layer" in meta:
        return int(meta["kernels_per_layer"]), not str(meta.get("graphs", "")).startswith("every phase")  # type: ignore[call-overload]
    return OLD_PROFILER_KERNELS["rope" if model.rope else "opt"], True


def masked_verify(new_tokens: int, batch: int, ctx: int, n_kv_heads: int, sms: int, split_kv: bool) -> bool:
    """Whether the profiler timed this verify step with unsplit, explicitly masked attention.

    The profiler (greensim/tools/torch_decoder.py ``_splits``) splits the KV cache only while
    batch x KV heads leaves SMs idle; otherwise it calls ``scaled_dot_product_attention`` with an
    explicit causal mask over the ``T`` new tokens, which PyTorch cannot send to its flash kernel.
    Those steps measured 30-100% slower than the same bytes and FLOPs on the split (flash) path
    (profiles/VALIDATION.md), while serving engines verify with a flash kernel that takes the
    causal offset natively, so the fit leaves them out.
    """
    if new_tokens <= 1:
        return False
    if not split_kv:
        return True
    want = math.ceil(2 * sms / (batch * max(1, n_kv_heads)))
    return max(1, min(want, (ctx + new_tokens) // 256, 64)) == 1


def _bound(gpu: GPUSpec, model: ModelSpec, tp: int, k: KernelParams, kernels: int = 10):
    return BoundKernel(gpu, model, tp, k, EnginePreset(), kernels_per_layer=kernels)


def usable(r: Row) -> bool:
    """Rows the latency fit may use: no eager-launch artefact (short eager prefills), no masked
    verify step (:func:`masked_verify`) and no mixed iteration (held out)."""
    if r.phase not in FIT_PHASES or r.time_s <= 0 or r.masked_verify:
        return False
    return not (r.phase == "prefill" and r.eager_prefill and r.prompt < 1024)


def predict(b: BoundKernel, r: Row) -> Tuple[float, float, float]:
    """(kernel time [s], bytes, FLOPs) the model gives for row ``r``."""
    if r.phase == "prefill":
        return b._iteration([(r.prompt, 0)], 0, 0)
    if r.phase == "decode":
        return b._iteration((), r.batch, r.batch * r.ctx)
    if r.phase == "verify":
        q = r.prompt
        return b._verify(r.batch * q, r.batch * r.ctx, q * r.batch * r.ctx + r.batch * q * (q + 1) * 0.5, r.batch)
    return b._iteration([(r.prompt, 0)], r.batch, r.batch * r.ctx)


def fit_kernel(
    rows: Sequence[Row],
    gpu_of: Callable[[str], GPUSpec],
    model_of: Callable[[str], ModelSpec],
    start: Optional[Sequence[float]] = None,
) -> Tuple[KernelParams, Dict[str, float]]:
    """Least squares on log(model / measured) over ``rows`` (any GPUs: each row is predicted
    with its own GPU's peaks, so a pooled fit transfers efficiencies across GPUs)."""
    from scipy.optimize import least_squares

    use = [r for r in rows if usable(r)]
    if not use:
        raise ValueError("fit_kernel: no prefill/decode/verify rows to fit")
    keyed: Dict[Tuple[str, str, int, int], List[Row]] = {}
    for r in use:
        keyed.setdefault((r.gpu, r.model, r.tp, r.kernels), []).append(r)

    def resid(x: np.ndarray) -> np.ndarray:
        k = KernelParams(*[float(v) for v in x])
        out = []
        for (g, m, tp, kn), rs in keyed.items():
            b = _bound(gpu_of(g), model_of(m), tp, k, kn)
            for r in rs:
                out.append(math.log(predict(b, r)[0] / r.time_s))
        return np.asarray(out)

    x0 = np.clip(np.asarray(start or START, dtype=float), BOUNDS[0], BOUNDS[1])
    sol = least_squares(resid, x0, bounds=BOUNDS, x_scale=[0.1, 0.1, 0.1, 0.1, 1e-6], loss="soft_l1", f_scale=0.1)
    k = KernelParams(*[float(v) for v in sol.x])
    res = np.abs(np.expm1(resid(sol.x)))
    return k, {"rows": len(use), "median_abs_err": float(np.median(res)), "worst_abs_err": float(res.max())}


def power_features(
    rows: Sequence[Row], k: KernelParams, gpu_of: Callable[[str], GPUSpec], model_of: Callable[[str], ModelSpec]
) -> Tuple[np.ndarray, np.ndarray, List[Row]]:
    """Design matrix [1, u_mem, u_compute] and target (P - idle) / (TDP - idle) of the rows with
    a power reading, utilisations from the model's bytes and FLOPs over the *measured* time."""
    X, y, kept = [], [], []
    for r in rows:
        if not (r.power_w > 0 and r.time_s > 0) or r.phase == "idle":
            continue
        g = gpu_of(r.gpu)
        idle = g.idle_w * r.tp
        span = (g.tdp_w - g.idle_w) * r.tp
        _, m, f = predict(_bound(g, model_of(r.model), r.tp, k, r.kernels), r)
        X.append([1.0, m / (r.time_s * g.mem_bandwidth_bps), f / (r.time_s * g.peak_flops)])
        y.append((r.power_w - idle) / span)
        kept.append(r)
    return np.asarray(X), np.asarray(y), kept


def fit_power(
    rows: Sequence[Row], k: KernelParams, gpu_of: Callable[[str], GPUSpec], model_of: Callable[[str], ModelSpec]
) -> Tuple[Tuple[float, float, float], Dict[str, float]]:
    """Non-negative least squares of the power curve (module docstring of
    :mod:`greensim.hardware.kernel`) on every phase's measured power."""
    from scipy.optimize import nnls

    X, y, kept = power_features(rows, k, gpu_of, model_of)
    if len(y) < 3:
        raise ValueError("fit_power: fewer than 3 rows with power")
    coef, _ = nnls(X, y)
    pred = np.clip(X @ coef, 0, 1)
    spans = np.asarray([(gpu_of(r.gpu).tdp_w - gpu_of(r.gpu).idle_w) * r.tp for r in kept])
    idles = np.asarray([gpu_of(r.gpu).idle_w * r.tp for r in kept])
    p_meas = y * spans + idles
    err = np.abs((pred * spans + idles) / p_meas - 1)
    return (float(coef[0]), float(coef[1]), float(coef[2])), {
        "rows": len(y),
        "median_abs_err": float(np.median(err)),
        "worst_abs_err": float(err.max()),
    }


def params_dict(k: KernelParams) -> Dict[str, float]:
    """The fitted efficiencies as a plain mapping (rounded for the YAML file)."""
    return {f: (round(getattr(k, f), 9) if f == "t_kernel_s" else round(getattr(k, f), 4)) for f in KERNEL_FIELDS}


def by(rows: Iterable[Row], **kw: object) -> List[Row]:
    """Rows whose attributes equal ``kw`` (a value may be a set: membership)."""
    out = []
    for r in rows:
        ok = True
        for a, v in kw.items():
            x = getattr(r, a)
            if isinstance(v, (set, frozenset, tuple, list)):
                ok = x in v
            else:
                ok = x == v
            if not ok:
                break
        if ok:
            out.append(r)
    return out


def errors(
    rows: Sequence[Row],
    k_of: Callable[[Row], KernelParams],
    gpu_of: Callable[[str], GPUSpec],
    model_of: Callable[[str], ModelSpec],
    power_of: Optional[Callable[[Row], Tuple[float, float, float]]] = None,
) -> List[Dict[str, object]]:
    """Per row: model/measured - 1 for time and (if ``power_of``) power."""
    out: List[Dict[str, object]] = []
    for r in rows:
        k = k_of(r)
        if power_of is not None:
            k = k.replace(power_abc=power_of(r))
        b = _bound(gpu_of(r.gpu), model_of(r.model), r.tp, k, r.kernels)
        t, m, f = predict(b, r)
        e: Dict[str, object] = {"row": r, "time_err": t / r.time_s - 1}
        if power_of is not None and r.power_w > 0:
            e["power_err"] = b._curve_w(m, f, t) / r.power_w - 1
        out.append(e)
    return out


def summarize(errs: Sequence[Mapping[str, object]], key: str = "time_err") -> Tuple[float, float, int]:
    """(median |err|, worst |err|, n) of ``key`` over ``errs``."""
    xs = [abs(float(e[key])) for e in errs if key in e]  # type: ignore[arg-type]
    if not xs:
        return float("nan"), float("nan"), 0
    return float(np.median(xs)), float(max(xs)), len(xs)
