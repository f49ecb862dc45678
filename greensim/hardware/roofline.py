"""Calibrated roofline latency model with a phase-based power model.

Per iteration, on each of the ``tp`` GPUs of an instance::

    t = max(F / (tp * eta_c * F_peak), M / (tp * eta_m * BW)) + t_fixed + t_comm

    F = T * f_mm + f_attn * (A_prefill + C_decode)          [FLOP]
    M = W + kv_b * (R_prefill + C_decode + T)                [bytes]
    t_comm = 2 * L * (lat_ar + T * h * b / bw_ar)   if tp > 1 [s]

with ``T`` tokens in the batch (prefill + decode), ``f_mm`` matmul FLOPs per token,
``f_attn`` attention FLOPs per (query, key) pair, ``A_prefill`` prefill attention
pairs (causal), ``R_prefill`` cached tokens re-read by prefill chunks, ``C_decode`` the
summed decode context, ``W`` weight bytes and ``kv_b`` KV bytes per token. The
efficiencies ``eta_c``, ``eta_m`` (per GPU) and the per-iteration overhead ``t_fixed``
come from ``profiles/roofline.yaml``, fitted to measured data (see that file).

Power (``performance.decode_power: constant``, the default; splitwise-sim's constant phase
model): an iteration with prefill tokens draws ``P_dec + (P_pre - P_dec) * P_tokens / T`` per
GPU, a decode-only one ``P_dec``; an idle GPU ``P_idle``.

``performance.decode_power: utilization`` replaces the constant ``P_dec`` by a curve of the
iteration's achieved utilisations (``profiles/decode_power.yaml``, fitted on our H100/H200
decode measurements by ``python -m greensim.tools.power_fit``)::

    P_dec = P_idle + (P_tdp - P_idle) * clip(a + b * M / (t * BW) + c * F / (t * F_peak), 0, 1)

with ``M``, ``F`` and ``t`` the iteration's bytes, FLOPs and time and ``BW``, ``F_peak`` the
instance's peak bandwidth and FLOP/s. Decode-run energy stays closed form: ``P_dec * t`` is
affine in ``t``, ``M`` and ``F``, each summed exactly (iteration by iteration only where the
clip binds inside the run).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from greensim.base.errors import ProfileError
from greensim.base.paths import bundled
from greensim.base.yamlio import load_yaml_file
from greensim.core.interfaces import BoundPerformance, Chunk, PerformanceModel
from greensim.hardware.catalog import GPUSpec, ModelSpec
from greensim.hardware.registry import PERFORMANCE_MODELS

__all__ = [
    "RooflineModel",
    "BoundRoofline",
    "affine_sum",
    "load_roofline_params",
    "load_decode_power_params",
    "DECODE_POWER_MODES",
]

DECODE_POWER_MODES = ("constant", "utilization")


def load_roofline_params() -> Dict[str, Any]:
    """Read the shipped calibration, ``profiles/roofline.yaml``."""
    return load_yaml_file(bundled("profiles") / "roofline.yaml")


def load_decode_power_params(gpu: Optional[str] = None) -> Tuple[float, float, float]:
    """(a, b, c) of the utilisation decode power curve, ``profiles/decode_power.yaml``: the
    curve fitted on ``gpu``'s own measurements where there is one (``gpus``), else the pooled one."""
    d = load_yaml_file(bundled("profiles") / "decode_power.yaml")
    d = (d.get("gpus") or {}).get(gpu, d) if gpu is not None else d
    return float(d["a"]), float(d["b"]), float(d["c"])


class BoundRoofline(BoundPerformance):
    """Roofline of one instance. Decode runs are summed in closed form."""

    power_varies = False

    def __init__(
        self,
        gpu: GPUSpec,
        model: ModelSpec,
        tp: int,
        eta_compute: float,
        eta_memory: float,
        t_fixed_s: float,
        allreduce_latency_s: float,
        allreduce_bandwidth_bps: float,
        decode_power: Optional[Tuple[float, float, float]] = None,
    ):
        self.gpu, self.model, self.tp = gpu, model, tp
        self._flops = tp * eta_compute * gpu.peak_flops  # effective FLOP/s
        self._bw = tp * eta_memory * gpu.mem_bandwidth_bps  # effective bytes/s
        self._f_mm = model.matmul_flops_per_token
        self._f_attn = model.attn_flops_per_token_ctx
        self._w = model.streamed_weight_bytes
        self._kv = model.kv_bytes_per_token
        self._t_fixed = t_fixed_s
        if tp > 1:
            self._comm_a = 2 * model.n_layers * allreduce_latency_s
            self._comm_b = 2 * model.n_layers * model.hidden_size * model.dtype_bytes / allreduce_bandwidth_bps
        else:
            self._comm_a = self._comm_b = 0.0
        self.idle_power_w = tp * gpu.idle_w
        self.decode_power_w = tp * gpu.decode_power_w
        self._prefill_power_w = tp * gpu.prefill_power_w
        if decode_power is not None:
            a, b, c = decode_power
            if a < 0 or b < 0 or c < 0:
                raise ProfileError(
                    f"profiles/decode_power.yaml: a, b, c must be >= 0 (monotone curve), "
                    f"got {decode_power}; regenerate it with `python -m greensim.tools.power_fit`."
                )
            span = tp * (gpu.tdp_w - gpu.idle_w)
            # P * t = p0 * t + kb * M + kc * F (unclipped)
            self._p0 = self.idle_power_w + span * a
            self._kb = span * b / (tp * gpu.mem_bandwidth_bps)
            self._kc = span * c / (tp * gpu.peak_flops)
            self._a, self._span = a, span
            self.power_varies = True

    def iteration_time_s(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int) -> float:
        p_tok = 0
        pairs = 0.0
        reread = 0
        for q, c in chunks:
            p_tok += q
            pairs += q * c + q * (q + 1) * 0.5
            reread += c
        tokens = p_tok + n_decode
        if tokens == 0:
            return 0.0
        f = tokens * self._f_mm + self._f_attn * (pairs + decode_ctx_tokens)
        m = self._w + self._kv * (reread + decode_ctx_tokens + tokens)
        tc, tm = f / self._flops, m / self._bw
        return (tc if tc > tm else tm) + self._t_fixed + self._comm_a + self._comm_b * tokens

    def verify_time_s(self, new_tokens, ctx_tokens) -> float:
        # iteration_time_s over chunks (q_i, c_i), with the chunk sums taken in numpy
        q = new_tokens
        p_tok = int(q.sum())
        if p_tok == 0:
            return 0.0
        reread = int(ctx_tokens.sum())
        pairs = float((q * ctx_tokens).sum()) + float((q * (q + 1)).sum()) * 0.5
        f = p_tok * self._f_mm + self._f_attn * pairs
        m = self._w + self._kv * (reread + p_tok)
        tc, tm = f / self._flops, m / self._bw
        return (tc if tc > tm else tm) + self._t_fixed + self._comm_a + self._comm_b * p_tok

    verify_from_sums = True

    def verify_sums_time_s(self, p_tok: int, ctx_sum: int, s_qc: int, s_qq: int, n_seqs: int = 0) -> float:
        # pairs = sum q_i c_i + sum q_i (q_i + 1) / 2, from the exact integer sums
        if p_tok == 0:
            return 0.0
        f = p_tok * self._f_mm + self._f_attn * (float(s_qc) + float(s_qq) * 0.5)
        m = self._w + self._kv * (ctx_sum + p_tok)
        tc, tm = f / self._flops, m / self._bw
        return (tc if tc > tm else tm) + self._t_fixed + self._comm_a + self._comm_b * p_tok

    def verify_uniform_time_s(self, n: int, new_tokens: int, ctx_sum: int) -> float:
        q = new_tokens
        p_tok = n * q
        if p_tok == 0:
            return 0.0
        f = p_tok * self._f_mm + self._f_attn * (q * ctx_sum + n * q * (q + 1) * 0.5)
        m = self._w + self._kv * (ctx_sum + p_tok)
        tc, tm = f / self._flops, m / self._bw
        return (tc if tc > tm else tm) + self._t_fixed + self._comm_a + self._comm_b * p_tok

    def decode_bytes_flops(self, n: int, ctx: int):
        """(bytes, FLOPs) of one decode-only iteration of ``n`` requests over ``ctx`` summed context."""
        return self._w + self._kv * (ctx + n), n * self._f_mm + self._f_attn * ctx

    def power_w(self, n_prefill_tokens: int, n_decode: int) -> float:
        if n_prefill_tokens <= 0:
            return self.decode_power_w
        share = n_prefill_tokens / (n_prefill_tokens + n_decode)
        return self.decode_power_w + (self._prefill_power_w - self.decode_power_w) * share

    def _curve_w(self, m: float, f: float, t: float) -> float:
        """Utilisation decode power of an iteration moving ``m`` bytes and ``f`` FLOPs in ``t`` s."""
        if t <= 0.0:
            return self.idle_power_w
        p = self._p0 + (self._kb * m + self._kc * f) / t
        hi = self.idle_power_w + self._span
        return hi if p > hi else p

    def iteration_power_w(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int, time_s: float) -> float:
        if not self.power_varies:
            return self.power_w(sum(q for q, _ in chunks), n_decode)
        p_tok = 0
        pairs = 0.0
        reread = 0
        for q, c in chunks:
            p_tok += q
            pairs += q * c + q * (q + 1) * 0.5
            reread += c
        tokens = p_tok + n_decode
        f = tokens * self._f_mm + self._f_attn * (pairs + decode_ctx_tokens)
        m = self._w + self._kv * (reread + decode_ctx_tokens + tokens)
        p_dec = self._curve_w(m, f, time_s)
        if p_tok <= 0:
            return p_dec
        return p_dec + (self._prefill_power_w - p_dec) * (p_tok / tokens)

    def decode_run_energy_j(self, n: int, ctx0: int, k: int) -> float:
        if not self.power_varies:
            return self.decode_power_w * self.decode_run_time_s(n, ctx0, k)
        if k <= 0:
            return 0.0
        # M_j and F_j are affine in j; the fraction (kb M_j + kc F_j) / t_j is monotone on each
        # affine piece of t_j, so its maximum is at a piece's end: check those for the clip.
        hi = self.idle_power_w + self._span
        js = {0, k - 1}
        ac = (n * self._f_mm + self._f_attn * ctx0) / self._flops
        am = (self._w + self._kv * (ctx0 + n)) / self._bw
        dd = self._f_attn * n / self._flops - self._kv * n / self._bw
        if dd != 0.0:
            jx = (am - ac) / dd
            if 0.0 <= jx < k:
                js.update((min(k - 1, math.floor(jx)), min(k - 1, math.floor(jx) + 1)))
        if any(
            self._curve_w(*self.decode_bytes_flops(n, ctx0 + n * j), self.iteration_time_s((), n, ctx0 + n * j)) >= hi
            for j in js
        ):
            return sum(
                self._curve_w(*self.decode_bytes_flops(n, ctx0 + n * j), t) * t
                for j in range(k)
                for t in (self.iteration_time_s((), n, ctx0 + n * j),)
            )
        tri = k * (k - 1) * 0.5
        m_sum = k * (self._w + self._kv * (ctx0 + n)) + self._kv * n * tri
        f_sum = k * (n * self._f_mm + self._f_attn * ctx0) + self._f_attn * n * tri
        return self._p0 * self.decode_run_time_s(n, ctx0, k) + self._kb * m_sum + self._kc * f_sum

    def decode_run_time_s(self, n: int, ctx0: int, k: int) -> float:
        # Iteration j: tc = ac + bc*j, tm = am + bm*j; sum max() exactly by splitting at
        # the one crossover of the two affine functions.
        if k <= 0:
            return 0.0
        ac = (n * self._f_mm + self._f_attn * ctx0) / self._flops
        bc = self._f_attn * n / self._flops
        am = (self._w + self._kv * (ctx0 + n)) / self._bw
        bm = self._kv * n / self._bw
        const = k * (self._t_fixed + self._comm_a + self._comm_b * n)
        d0, dd = ac - am, bc - bm  # tc - tm at j = 0, and its slope
        if dd == 0.0:
            split = k if d0 > 0 else 0  # compute-bound for j < split
        else:
            jx = -d0 / dd  # crossover (real)
            if dd > 0:  # memory-bound first, compute-bound from ceil(jx)
                s = min(k, max(0, math.floor(jx) + 1)) if jx >= 0 else 0
                return const + affine_sum(am, bm, 0, s) + affine_sum(ac, bc, s, k)
            split = min(k, max(0, math.floor(jx) + 1)) if jx >= 0 else 0
        return const + affine_sum(ac, bc, 0, split) + affine_sum(am, bm, split, k)


def affine_sum(a: float, b: float, j0: int, j1: int) -> float:
    """Sum of a + b*j for j in [j0, j1)."""
    if j1 <= j0:
        return 0.0
    return (j1 - j0) * a + b * (j1 * (j1 - 1) - j0 * (j0 - 1)) * 0.5


@PERFORMANCE_MODELS.register("roofline")
class RooflineModel(PerformanceModel):
    """Roofline calibrated per GPU; unknown GPUs use their architecture's factors."""

    name = "roofline"

    def __init__(self, params: Mapping[str, Any] | None = None, **overrides: Any):
        self.params = dict(params or load_roofline_params())
        self.overrides = overrides
        self.bands_used: Dict[str, Dict[str, Any]] = {}  # uncertainty.yaml entries applied (band != nominal)
        mode = overrides.get("decode_power") or "constant"
        if mode not in DECODE_POWER_MODES:
            raise ProfileError(f"performance.decode_power: {mode!r} is not one of {list(DECODE_POWER_MODES)}.")
        self._curve: Optional[Tuple[float, float, float]] = None  # fixed curve (tests); else per GPU
        self._per_gpu = mode == "utilization"

    def _eff(self, gpu: GPUSpec) -> Mapping[str, Any]:
        table = self.params.get("gpus", {})
        if gpu.name in table:
            return table[gpu.name]
        arch = self.params.get("architectures", {})
        if gpu.architecture in arch:
            return arch[gpu.architecture]
        raise ProfileError(
            f"performance.roofline: no efficiency factors for GPU '{gpu.name}' "
            f"(architecture '{gpu.architecture}'). Add it under 'gpus' or 'architectures' "
            f"in profiles/roofline.yaml, or set performance.eta_compute and performance.eta_memory."
        )

    def bind(self, gpu: GPUSpec, model: ModelSpec, tp: int) -> BoundPerformance:
        bound = self._bind(gpu, model, tp)
        band = self.overrides.get("band") or "nominal"
        if band == "nominal":
            return bound
        from greensim.hardware.bands import apply_band

        return apply_band(bound, gpu, band, measured=False, used=self.bands_used)

    def _bind(self, gpu: GPUSpec, model: ModelSpec, tp: int) -> BoundRoofline:
        e = dict(self._eff(gpu))
        eng = dict(self.params["engine"])
        o = self.overrides
        return BoundRoofline(
            gpu,
            model,
            tp,
            eta_compute=float(o.get("eta_compute") or e["eta_compute"]),
            eta_memory=float(o.get("eta_memory") or e["eta_memory"]),
            t_fixed_s=float(
                o["iteration_overhead_s"] if o.get("iteration_overhead_s") is not None else eng["iteration_overhead_s"]
            ),
            allreduce_latency_s=float(e.get("allreduce_latency_s", eng["allreduce_latency_s"])),
            allreduce_bandwidth_bps=float(e.get("allreduce_bandwidth_gbs", eng["allreduce_bandwidth_gbs"])) * 1e9,
            decode_power=self._curve or (load_decode_power_params(gpu.name) if self._per_gpu else None),
        )
