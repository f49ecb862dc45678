"""Kernel-level latency model with an explicit engine overhead and a work-driven power curve.

An iteration's time on an instance of ``tp`` GPUs is GPU kernel time plus the serving
engine's CPU time on the critical path (``performance.engine``, ``profiles/engines.yaml``)::

    t = kernel + engine
    kernel = L * (sum_ops gemm(T) + attn + elem(T) + n_k t_kernel + ar(T)) + gemm_lm(T_logits)
    engine = per_iteration_s + per_sequence_s * n_seqs + per_prefill_s * n_prefill_chunks

One operator family at a time, each with its own calibrated efficiency (``profiles/kernel.yaml``):

* weight GEMMs (QKV, output, gate/up, down per layer; the LM head only for the tokens that
  need logits: a prefill's last position, every decode token, every verified token)::

      gemm(T) = max(2 T N K / (eta_gemm_compute F), (N K + T (N + K)) b / (eta_gemm_memory BW))

* attention: prefill and verify at ``max(FLOPs / (eta_attn_compute F), KV bytes / (eta_attn_memory BW))``,
  decode at the KV-cache read rate (bytes of the resident K and V: GQA heads, dtype);
* elementwise and norm work: bytes per token per layer at the GEMM bandwidth efficiency;
* a latency floor of ``kernels_per_layer x t_kernel`` per layer: under CUDA graphs every
  kernel still costs a few microseconds of start-up, tail and dependency gap however little
  work it has, which dominates small models at small batch. ``t_kernel`` is a property of the
  GPU (calibrated), the kernel count one of the implementation (the engine preset's
  ``kernels_per_layer``: 10 for vLLM's fused Llama layer);
* tensor parallelism: two all-reduces of ``T x hidden`` per layer, ``lat + bytes / bw`` from
  NCCL collective measurements (``profiles/kernel.yaml``, ``allreduce``).

An engine that runs a phase eagerly (no CUDA graphs) cannot launch faster than its CPU: that
iteration's kernel time is ``max(kernel, L * launch_per_layer_s)``.

Power of the instance during an iteration moving ``M`` bytes and ``F`` FLOPs in ``t`` seconds::

    P = tp * (P_idle + (P_tdp - P_idle) * clip(a + b * M / (t BW) + c * F / (t F_peak), 0, 1))

fitted on board power measured on every phase (``power`` in ``profiles/kernel.yaml``). The
same formula serves prefill, decode, verify and mixed iterations, so decode power rises with
batch and the closed-form decode-run energy equals the sum over its iterations.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from greensim.base.errors import ProfileError
from greensim.base.paths import bundled
from greensim.base.yamlio import load_yaml_file
from greensim.core.interfaces import BoundPerformance, Chunk, PerformanceModel, step_to_crossing
from greensim.hardware.catalog import GPUSpec, ModelSpec, expected_experts
from greensim.hardware.registry import PERFORMANCE_MODELS
from greensim.hardware.roofline import affine_sum

__all__ = [
    "KernelModel",
    "BoundKernel",
    "KernelParams",
    "EnginePreset",
    "load_kernel_params",
    "load_engines",
    "kernel_params_for",
]

KERNEL_FIELDS = (
    "eta_gemm_compute",
    "eta_gemm_memory",
    "eta_attn_compute",
    "eta_attn_memory",
    "t_kernel_s",
)
ENGINE_FIELDS = (
    "per_iteration_s",
    "per_sequence_s",
    "per_prefill_s",
    "decode_cuda_graphs",
    "prefill_cuda_graphs",
    "launch_per_layer_s",
    "kernels_per_layer",
)


class KernelParams:
    """Calibrated kernel efficiencies of one GPU (see the module docstring)."""

    __slots__ = KERNEL_FIELDS + ("power_abc", "allreduce")

    def __init__(
        self,
        eta_gemm_compute: float,
        eta_gemm_memory: float,
        eta_attn_compute: float,
        eta_attn_memory: float,
        t_kernel_s: float,
        power_abc: Optional[Tuple[float, float, float]] = None,
        allreduce: Optional[Mapping[int, Tuple[float, float]]] = None,
    ):
        self.eta_gemm_compute = eta_gemm_compute
        self.eta_gemm_memory = eta_gemm_memory
        self.eta_attn_compute = eta_attn_compute
        self.eta_attn_memory = eta_attn_memory
        self.t_kernel_s = t_kernel_s
        self.power_abc = power_abc
        self.allreduce = dict(allreduce or {})

    def replace(self, **kw: Any) -> "KernelParams":
        d = {k: getattr(self, k) for k in self.__slots__}
        d.update(kw)
        return KernelParams(**d)

    def as_vector(self) -> List[float]:
        return [getattr(self, k) for k in KERNEL_FIELDS]


class EnginePreset:
    """CPU-side cost of a serving engine per iteration (``profiles/engines.yaml``)."""

    __slots__ = ENGINE_FIELDS + ("name",)

    def __init__(
        self,
        name: str = "none",
        per_iteration_s: float = 0.0,
        per_sequence_s: float = 0.0,
        per_prefill_s: float = 0.0,
        decode_cuda_graphs: bool = True,
        prefill_cuda_graphs: bool = True,
        launch_per_layer_s: float = 0.0,
        kernels_per_layer: int = 10,
    ):
        self.name = name
        self.kernels_per_layer = int(kernels_per_layer)
        self.per_iteration_s = float(per_iteration_s)
        self.per_sequence_s = float(per_sequence_s)
        self.per_prefill_s = float(per_prefill_s)
        self.decode_cuda_graphs = bool(decode_cuda_graphs)
        self.prefill_cuda_graphs = bool(prefill_cuda_graphs)
        self.launch_per_layer_s = float(launch_per_layer_s)


def load_kernel_params() -> Dict[str, Any]:
    """The shipped calibration, ``profiles/kernel.yaml``."""
    return load_yaml_file(bundled("profiles") / "kernel.yaml")


def load_engines() -> Dict[str, Any]:
    """The engine presets, ``profiles/engines.yaml``."""
    f = bundled("profiles") / "engines.yaml"
    if not f.is_file():
        return {"engines": {"none": {}}, "default": "none"}
    return load_yaml_file(f)


def _entry(params: Mapping[str, Any], gpu: GPUSpec) -> Tuple[Mapping[str, Any], str]:
    table = params.get("gpus", {}) or {}
    if gpu.name in table:
        return table[gpu.name], f"gpus.{gpu.name}"
    arch = params.get("architectures", {}) or {}
    if gpu.architecture in arch:
        return arch[gpu.architecture], f"architectures.{gpu.architecture}"
    raise ProfileError(
        f"performance.model kernel: no kernel efficiencies for GPU '{gpu.name}' (architecture "
        f"'{gpu.architecture}'). Add it under 'gpus' or 'architectures' in profiles/kernel.yaml, "
        "or use performance.model: roofline."
    )


def kernel_params_for(params: Mapping[str, Any], gpu: GPUSpec) -> KernelParams:
    """The :class:`KernelParams` of ``gpu`` (its own entry, else its architecture's)."""
    e, where = _entry(params, gpu)
    try:
        vals = {k: float(e[k]) for k in KERNEL_FIELDS}
    except KeyError as exc:
        raise ProfileError(f"profiles/kernel.yaml {where}: missing {exc.args[0]!r}.") from None
    pw = params.get("power", {}) or {}
    pe = (pw.get("gpus", {}) or {}).get(gpu.name) or (pw.get("architectures", {}) or {}).get(gpu.architecture)
    pe = pe or pw.get("default")
    abc = (float(pe["a"]), float(pe["b"]), float(pe["c"])) if pe else None
    ar_tab = params.get("allreduce", {}) or {}
    ar = (ar_tab.get("gpus", {}) or {}).get(gpu.name) or (ar_tab.get("architectures", {}) or {}).get(gpu.architecture)
    allreduce = {int(k): (float(v["latency_s"]), float(v["bandwidth_gbs"]) * 1e9) for k, v in (ar or {}).items()}
    return KernelParams(**vals, power_abc=abc, allreduce=allreduce)


def _gemm_shapes(model: ModelSpec, tp: int) -> List[Tuple[int, int]]:
    """(N, K) of the dense weight GEMMs of one layer on one of ``tp`` GPUs (an MoE model's
    routed experts are in :func:`_expert_shapes`; its shared expert is here)."""
    h, hd = model.hidden_size, model.head_dim
    nh = model.n_heads // tp
    nkv = max(1, model.n_kv_heads // tp)
    out = [
        ((nh + 2 * nkv) * hd, h),  # fused QKV
        (h, nh * hd),  # output projection
    ]
    width = model.shared_expert_intermediate_size if model.is_moe else model.intermediate_size
    if width:
        inter = width // tp
        out += [
            (inter * (2 if model.gated_mlp else 1), h),  # fused gate/up (or up)
            (h, inter),  # down
        ]
    return out


def _expert_shapes(model: ModelSpec, tp: int, ep: bool) -> List[Tuple[int, int]]:
    """(N, K) of one routed expert's GEMMs on one GPU: whole experts under expert parallelism,
    each expert split over the ``tp`` GPUs otherwise."""
    inter = model.expert_intermediate_size // (1 if ep else tp)
    h = model.hidden_size
    return [(inter * (2 if model.gated_mlp else 1), h), (h, inter)]


def _elem_bytes_per_token(model: ModelSpec, tp: int) -> float:
    """Bytes of elementwise/norm traffic per token per layer on one GPU (fused as vLLM does):
    two add+norm (read x and residual, write both), RoPE on q and k, the activation (read
    gate and up, write one), the KV-cache write."""
    b = model.dtype_bytes
    h, hd = model.hidden_size, model.head_dim
    q, kv = model.n_heads * hd / tp, max(1, model.n_kv_heads // tp) * hd
    inter = model.active_mlp_width / tp
    norms = 2 * 4 * h
    rope = 2 * (q + kv) if model.rope else 0.0
    act = 3 * inter if model.gated_mlp else 2 * inter
    kvb = model.kv_elem_bytes
    if kvb == b:
        return b * (norms + rope + act + 2 * kv)
    return b * (norms + rope + act) + kvb * 2 * kv  # the KV-cache write in its own dtype


class BoundKernel(BoundPerformance):
    """Kernel model of one instance. Decode runs are summed in closed form."""

    verify_from_sums = True

    def __init__(
        self,
        gpu: GPUSpec,
        model: ModelSpec,
        tp: int,
        k: KernelParams,
        engine: EnginePreset,
        kernels_per_layer: Optional[int] = None,
    ):
        self.gpu, self.model, self.tp, self.k, self.engine = gpu, model, tp, k, engine
        F, BW = gpu.peak_flops, gpu.mem_bandwidth_bps
        b = model.dtype_bytes
        L = model.n_layers
        self._L = L
        self._b = b
        self._Fc = k.eta_gemm_compute * F
        self._Bm = k.eta_gemm_memory * BW
        self._Fa = k.eta_attn_compute * F
        self._Ba = k.eta_attn_memory * BW
        # the layers' weight GEMMs: stored weight bytes (quantised: with group scales) and
        # compute rate (W8A8 / FP8: that dtype's tensor-core peak at the fp16 GEMM efficiency,
        # an assumption; weight-only: fp16 after dequantising, x 1/(1 + dequant_overhead_frac))
        self._wb = model.weight_elem_bytes
        self._Fq = self._Fc
        if model.compute_dtype != "fp16":
            peak = gpu.peak_ops(model.compute_dtype)
            if peak is None:
                raise ProfileError(
                    f"quantization.activations: {model.compute_dtype} GEMMs need {model.compute_dtype} tensor cores, "
                    f"which '{gpu.name}' ({gpu.architecture or 'unknown architecture'}) lacks (no "
                    f"{'int8_tops_dense' if model.compute_dtype == 'int8' else 'fp8_tflops_dense'} in the GPU "
                    "catalogue). Use weight-only quantisation (activations: fp16) or another GPU."
                )
            self._Fq = k.eta_gemm_compute * peak
        elif model.quantized_weights and model.dequant_overhead_frac:
            self._Fq = self._Fc / (1.0 + model.dequant_overhead_frac)
        self._shapes = _gemm_shapes(model, tp)
        self.expert_parallel = bool(model.expert_parallel and model.is_moe and tp > 1)
        self._experts = _expert_shapes(model, tp, self.expert_parallel) if model.is_moe else []
        self._lm = (model.head_vocab // tp, model.hidden_size)
        self._elem = L * _elem_bytes_per_token(model, tp)  # bytes per token, all layers
        nkv = max(1, model.n_kv_heads // tp)
        # KV bytes per cached token, all layers, one GPU
        self._kvb = 2.0 * L * nkv * model.head_dim * model.kv_elem_bytes
        self._fa = 4.0 * L * (model.n_heads // tp) * model.head_dim  # attention FLOPs per (query, key)
        # latency floor: every kernel of a layer costs at least t_kernel_s even when it has
        # almost no work (start-up, tail, dependency gap); the count is the implementation's
        self.kernels_per_layer = kernels_per_layer or engine.kernels_per_layer
        self._floor = L * self.kernels_per_layer * k.t_kernel_s
        if tp > 1:
            if tp not in k.allreduce:
                raise ProfileError(
                    f"performance.model kernel: no all-reduce latency/bandwidth for TP{tp} on '{gpu.name}' "
                    f"(have TP {sorted(k.allreduce) or 'none'}) in profiles/kernel.yaml 'allreduce'."
                )
            lat, bw = k.allreduce[tp]
            self._ar_a = 2 * L * lat
            self._ar_b = 2 * L * model.hidden_size * b / bw
            if self.expert_parallel:
                # the MLP's all-reduce becomes two all-to-alls (dispatch, combine), each sending
                # the (tp-1)/tp of a token's top-k copies that go to other GPUs; assumption: at
                # the all-reduce's measured latency and bandwidth (no all-to-all measurement)
                a2a = model.experts_per_token * model.hidden_size * b * (tp - 1) / tp
                self._ar_a = 3 * L * lat
                self._ar_b = L * (model.hidden_size * b + 2 * a2a) / bw
        else:
            self._ar_a = self._ar_b = 0.0
        self._launch = L * engine.launch_per_layer_s
        self._gemm_cache: Dict[Tuple[int, int], Tuple[float, float, float]] = {}
        # decode-only iterations: kernel time, bytes, FLOPs = const(n) + slope x (attended tokens)
        self._dec_cache: Dict[int, Tuple[float, float, float]] = {}
        # decode runs asked for and not yet priced: (n, ctx0, k) -> (time, affine terms). The
        # engine asks for a run's time when it starts and for its energy when it ends; instances
        # of a group share this object, so one entry per running instance, cleared when large.
        self._runs: Dict[Tuple[int, int, int], Tuple[float, Tuple[float, ...]]] = {}
        # the last mixed/prefill iteration asked for (its time, then its power, are asked in turn)
        self._it_key: Tuple[Any, ...] = ()
        self._it_val: Tuple[float, float, float] = (0.0, 0.0, 0.0)
        # verify steps asked for and not yet priced: (tokens, context, attention pairs) -> (bytes, FLOPs)
        self._verifies: Dict[Tuple[int, int, float], Tuple[float, float]] = {}
        self._s_t = max(self._fa / self._Fa, self._kvb / self._Ba)
        self._dec_eager = not engine.decode_cuda_graphs
        # power
        self.idle_power_w = tp * gpu.idle_w
        self._span = tp * (gpu.tdp_w - gpu.idle_w)
        if k.power_abc is not None:
            a, pb, pc = k.power_abc
            if a < 0 or pb < 0 or pc < 0:
                raise ProfileError(f"profiles/kernel.yaml power: a, b, c must be >= 0, got {k.power_abc}.")
            self.power_varies = True
            self._a = a
            self._p0 = self.idle_power_w + self._span * a
            # M and F are one GPU's bytes and FLOPs; each of the tp GPUs draws span / tp
            self._kb = self._span * pb / BW
            self._kc = self._span * pc / F
        else:
            self.power_varies = False
        self.decode_power_w = self._decode_power_nominal()
        self._prefill_power_w = tp * gpu.prefill_power_w

    # ------------------------------------------------------------------ kernel pieces
    def _gemm(self, T: int, T_logits: int) -> Tuple[float, float, float]:
        """(time, bytes, FLOPs) of all weight GEMMs (layers and LM head) for ``T`` tokens."""
        key = (T, T_logits)
        hit = self._gemm_cache.get(key)
        if hit is not None:
            return hit
        Fc, Bm, b = self._Fc, self._Bm, self._b
        Fq, wb = self._Fq, self._wb
        t = m = f = 0.0
        for N, K in self._shapes:
            fl = 2.0 * T * N * K
            by = N * K * wb + T * (N + K) * b
            t += max(fl / Fq, by / Bm)
            m += by
            f += fl
        if self._experts:
            t1, m1, f1 = self._moe(T)
            t, m, f = t + t1, m + m1, f + f1
        t, m, f = t * self._L, m * self._L, f * self._L
        if T_logits and self._lm[0]:  # a pipeline stage without the LM head has none
            N, K = self._lm
            fl = 2.0 * T_logits * N * K
            by = (N * K + T_logits * (N + K)) * b
            t += max(fl / Fc, by / Bm)
            m += by
            f += fl
        out = (t, m, f)
        if len(self._gemm_cache) < 65536:
            self._gemm_cache[key] = out
        return out

    def _moe(self, T: int) -> Tuple[float, float, float]:
        """(time, bytes, FLOPs) of one layer's routed experts on one GPU for ``T`` tokens, as one
        grouped GEMM (vLLM's fused MoE kernel): the weights of the distinct experts the batch
        touches are read once (:func:`expected_experts`, uniform routing), each token's top-k
        experts compute. Under expert parallelism a GPU holds ``E / tp`` whole experts and gets
        ``1 / tp`` of the routed tokens (the mean: load imbalance is not modelled)."""
        mdl = self.model
        E, k = mdl.n_experts, mdl.experts_per_token
        share = 1.0 / self.tp if self.expert_parallel else 1.0
        touched = expected_experts(E, k, T) * share
        routed = T * k * share  # (token, expert) pairs on this GPU
        fl = by = 0.0
        for N, K in self._experts:
            fl += 2.0 * routed * N * K
            by += touched * N * K * self._wb + routed * (N + K) * self._b
        return max(fl / self._Fq, by / self._Bm), by, fl

    def _parts(self, T: int, T_logits: int, pairs: float, kv_read: float, dec_ctx: float) -> Tuple[float, float, float]:
        """(kernel time, bytes, FLOPs) of an iteration: ``T`` tokens through the layers,
        ``pairs`` attention (query, key) pairs at the compute-bound kernel with ``kv_read``
        cached tokens read, ``dec_ctx`` decode (query, key) pairs at the bandwidth-bound kernel."""
        tg, m, f = self._gemm(T, T_logits)
        fa, kvb = self._fa, self._kvb
        # prefill/verify attention (FlashAttention-style: compute unless the KV reads dominate)
        ta = max(fa * pairs / self._Fa, kvb * kv_read / self._Ba) if pairs else 0.0
        # decode attention: the resident K and V of every sequence are read once
        td = max(fa * dec_ctx / self._Fa, kvb * dec_ctx / self._Ba) if dec_ctx else 0.0
        te = self._elem * T / self._Bm
        t = tg + ta + td + te + self._floor + self._ar_a + self._ar_b * T
        return t, m + kvb * (kv_read + dec_ctx) + self._elem * T, f + fa * (pairs + dec_ctx)

    def _dec(self, n: int) -> Tuple[float, float, float]:
        """(kernel time, bytes, FLOPs) of a decode-only iteration of ``n`` requests, without its
        attention (which adds ``_s_t``, ``_kvb`` and ``_fa`` per attended token)."""
        hit = self._dec_cache.get(n)
        if hit is None:
            tg, m, f = self._gemm(n, n)
            hit = (
                tg + self._elem * n / self._Bm + self._floor + self._ar_a + self._ar_b * n,
                m + self._elem * n,
                f,
            )
            self._dec_cache[n] = hit
        return hit

    def _dec_time(self, n: int, attended: int) -> float:
        t = self._dec(n)[0] + self._s_t * attended
        if self._dec_eager and self._launch > t:
            t = self._launch
        e = self.engine
        return t + e.per_iteration_s + e.per_sequence_s * n

    def _wall(self, kernel: float, eager: bool, n_seqs: int, n_prefill: int) -> float:
        e = self.engine
        if eager and self._launch > kernel:
            kernel = self._launch
        return kernel + e.per_iteration_s + e.per_sequence_s * n_seqs + e.per_prefill_s * n_prefill

    def _iteration(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int):
        key = (tuple(chunks), n_decode, decode_ctx_tokens)
        if key == self._it_key:
            return self._it_val
        out = self._iteration_parts(chunks, n_decode, decode_ctx_tokens)
        self._it_key, self._it_val = key, out
        return out

    def _iteration_parts(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int):
        p_tok = 0
        pairs = 0.0
        reread = 0
        for q, c in chunks:
            p_tok += q
            pairs += q * c + q * (q + 1) * 0.5
            reread += c
        T = p_tok + n_decode
        if T == 0:
            return 0.0, 0.0, 0.0
        kernel, m, f = self._parts(T, len(chunks) + n_decode, pairs, reread + p_tok, decode_ctx_tokens + n_decode)
        eager = not (self.engine.prefill_cuda_graphs if chunks else self.engine.decode_cuda_graphs)
        return self._wall(kernel, eager, len(chunks) + n_decode, len(chunks)), m, f

    # ------------------------------------------------------------------ BoundPerformance
    def iteration_time_s(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int) -> float:
        if not chunks:
            return self._dec_time(n_decode, decode_ctx_tokens + n_decode) if n_decode else 0.0
        return self._iteration(chunks, n_decode, decode_ctx_tokens)[0]

    def _verify(self, p_tok: int, ctx_sum: int, pairs: float, n_seqs: int):
        if p_tok == 0:
            return 0.0, 0.0, 0.0
        kernel, m, f = self._parts(p_tok, p_tok, pairs, ctx_sum + p_tok, 0)
        if len(self._verifies) >= 256:
            self._verifies.clear()
        self._verifies[(p_tok, ctx_sum, pairs)] = (m, f)  # its power is asked for next (verify_power_w)
        return self._wall(kernel, not self.engine.decode_cuda_graphs, n_seqs, 0), m, f

    def verify_time_s(self, new_tokens, ctx_tokens) -> float:
        q = new_tokens
        p_tok = int(q.sum()) if hasattr(q, "sum") else int(sum(q))
        ctx = [int(c) for c in ctx_tokens]
        qs = [int(x) for x in q]
        pairs = float(sum(a * c for a, c in zip(qs, ctx))) + sum(a * (a + 1) for a in qs) * 0.5
        return self._verify(p_tok, sum(ctx), pairs, len(qs))[0]

    def verify_sums_time_s(self, p_tok: int, ctx_sum: int, s_qc: int, s_qq: int, n_seqs: int = 0) -> float:
        return self._verify(p_tok, ctx_sum, float(s_qc) + float(s_qq) * 0.5, n_seqs)[0]

    def verify_uniform_time_s(self, n: int, new_tokens: int, ctx_sum: int) -> float:
        q = new_tokens
        return self._verify(n * q, ctx_sum, q * ctx_sum + n * q * (q + 1) * 0.5, n)[0]

    # ------------------------------------------------------------------ power
    def _curve_w(self, m: float, f: float, t: float) -> float:
        """Instance power of an iteration moving ``m`` bytes and ``f`` FLOPs (per GPU) in ``t`` s."""
        if t <= 0.0:
            return self.idle_power_w
        p = self._p0 + (self._kb * m + self._kc * f) / t
        hi = self.idle_power_w + self._span
        return hi if p > hi else p

    def _decode_power_nominal(self) -> float:
        """Decode power at batch 1, context 1024 (a representative figure for reports)."""
        if not self.power_varies:
            return self.tp * self.gpu.decode_power_w
        t, m, f = self._iteration((), 1, 1024)
        return self._curve_w(m, f, t)

    def power_w(self, n_prefill_tokens: int, n_decode: int) -> float:
        if not self.power_varies:
            if n_prefill_tokens <= 0:
                return self.decode_power_w
            share = n_prefill_tokens / (n_prefill_tokens + n_decode)
            return self.decode_power_w + (self._prefill_power_w - self.decode_power_w) * share
        # composition only (no context known): fresh prefill chunks, decodes at context 1024
        chunks = [(n_prefill_tokens, 0)] if n_prefill_tokens > 0 else []
        t, m, f = self._iteration(chunks, n_decode, 1024 * n_decode)
        return self._curve_w(m, f, t)

    def verify_power_w(self, p_tok: int, ctx_sum: int, n_seqs: int, time_s: float) -> float:
        if not self.power_varies or p_tok <= 0:
            return super().verify_power_w(p_tok, ctx_sum, n_seqs, time_s)
        n = max(1, n_seqs)
        q = p_tok / n  # the mean new tokens per sequence stands for each (pairs to first order)
        pairs = q * ctx_sum + n * q * (q + 1) * 0.5
        hit = self._verifies.pop((p_tok, ctx_sum, pairs), None)  # equal when every sequence verifies q
        if hit is None:
            _, m, f = self._parts(p_tok, p_tok, pairs, ctx_sum + p_tok, 0)
        else:
            m, f = hit
        return self._curve_w(m, f, time_s)

    def iteration_power_w(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int, time_s: float) -> float:
        if not self.power_varies:
            return self.power_w(sum(q for q, _ in chunks), n_decode)
        if not chunks:
            a = decode_ctx_tokens + n_decode
            _, m, f = self._dec(n_decode)
            return self._curve_w(m + self._kvb * a, f + self._fa * a, time_s)
        _, m, f = self._iteration(chunks, n_decode, decode_ctx_tokens)
        return self._curve_w(m, f, time_s)

    # ------------------------------------------------------------------ decode runs
    def _decode_affine(self, n: int, ctx0: int) -> Tuple[float, float, float, float, float, float]:
        """Iteration j of a decode run: kernel time, bytes and FLOPs are ``x0 + x1 * j``."""
        t, m, f = self._dec(n)
        a = ctx0 + n
        return t + self._s_t * a, self._s_t * n, m + self._kvb * a, self._kvb * n, f + self._fa * a, self._fa * n

    def decode_run_time_s(self, n: int, ctx0: int, k: int) -> float:
        if k <= 0:
            return 0.0
        key = (n, ctx0, k)
        hit = self._runs.get(key)
        if hit is not None:
            return hit[0]
        aff = self._decode_affine(n, ctx0)
        t = self._run_time(n, k, aff[0], aff[1])
        if len(self._runs) >= 256:
            self._runs.clear()
        self._runs[key] = (t, aff)
        return t

    def decode_iterations_until(self, n: int, ctx0: int, kmax: int, dt_s: float) -> int:
        # the base class's answer (smallest k in [1, kmax] whose run ends at or after dt_s), the
        # run's affine terms computed once
        t0, t1, *_ = self._decode_affine(n, ctx0)
        e = self.engine
        if kmax > 2 and t1 >= 0.0 and (e.decode_cuda_graphs or self._launch <= t0):
            # no launch floor: run time c j + t1 j (j - 1) / 2 with c = const + t0 rises by at least
            # c > 0 per iteration, far above rounding, so the answer is the one crossing: start at
            # the quadratic's root, step to it evaluating the same sums the bisection compares
            c = e.per_iteration_s + e.per_sequence_s * n + t0
            h = 0.5 * t1
            b = c - h
            if c > 0.0:
                x = dt_s / b if h == 0.0 else (-b + math.sqrt(b * b + 4.0 * h * dt_s)) / (2.0 * h)
                guess = math.ceil(x) if x < kmax else kmax
                return step_to_crossing(lambda k: self._run_time(n, k, t0, t1), guess, kmax, dt_s)
        lo, hi = 1, kmax
        while lo < hi:
            mid = (lo + hi) // 2
            if self._run_time(n, mid, t0, t1) >= dt_s:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _run_time(self, n: int, k: int, t0: float, t1: float) -> float:
        """:meth:`decode_run_time_s` from the run's affine kernel time ``t0 + t1 j``."""
        e = self.engine
        const = e.per_iteration_s + e.per_sequence_s * n
        if not e.decode_cuda_graphs and self._launch > t0:
            # kernel time t0 + t1 j is below the CPU launch floor until j* (then above)
            js = k if t1 <= 0 else min(k, max(0, math.ceil((self._launch - t0) / t1)))
            return k * const + js * self._launch + affine_sum(t0, t1, js, k)
        return k * const + affine_sum(t0, t1, 0, k)

    def decode_run_energy_j(self, n: int, ctx0: int, k: int) -> float:
        if not self.power_varies:
            return self.decode_power_w * self.decode_run_time_s(n, ctx0, k)
        if k <= 0:
            return 0.0
        hi = self.idle_power_w + self._span
        hit = self._runs.pop((n, ctx0, k), None)
        if hit is None:
            aff = self._decode_affine(n, ctx0)
            t_run = self._run_time(n, k, aff[0], aff[1])
        else:
            t_run, aff = hit
        t0, t1, m0, m1, f0, f1 = aff
        e = self.engine
        eager = not e.decode_cuda_graphs and self._launch > t0
        clipped = False
        if not eager:
            # the end iterations' times exactly as iteration_time_s computes them (inlined: hot path)
            td, st, pi, ps = self._dec(n)[0], self._s_t, e.per_iteration_s, e.per_sequence_s * n
            for j in (0, k - 1):
                if self._curve_w(m0 + m1 * j, f0 + f1 * j, td + st * (ctx0 + n * j + n) + pi + ps) >= hi:
                    clipped = True
                    break
        if eager or clipped:
            return sum(
                self._curve_w(m0 + m1 * j, f0 + f1 * j, t) * t
                for j in range(k)
                for t in (self.iteration_time_s((), n, ctx0 + n * j),)
            )
        # unclipped: P_j t_j = p0 t_j + kb M_j + kc F_j, each summed exactly
        return (
            self._p0 * t_run  # = decode_run_time_s
            + self._kb * affine_sum(m0, m1, 0, k)
            + self._kc * affine_sum(f0, f1, 0, k)
        )


def engine_preset(name: Optional[str], engines: Optional[Mapping[str, Any]] = None) -> EnginePreset:
    """The named preset of ``profiles/engines.yaml`` (None: the file's default)."""
    data = engines if engines is not None else load_engines()
    table = data.get("engines", {}) or {}
    key = name or data.get("default") or "none"
    if key not in table:
        raise ProfileError(f"performance.engine: {key!r} is not one of {sorted(table)} (profiles/engines.yaml).")
    e = table[key] or {}
    return EnginePreset(key, **{f: e[f] for f in ENGINE_FIELDS if f in e})


@PERFORMANCE_MODELS.register("kernel")
class KernelModel(PerformanceModel):
    """Per-operator kernel model calibrated on kernel-level measurements, plus an engine preset."""

    name = "kernel"

    def __init__(self, params: Mapping[str, Any] | None = None, **overrides: Any):
        self.params = dict(params or load_kernel_params())
        self.overrides = overrides
        self.engine = engine_preset(overrides.get("engine"))
        self.bands_used: Dict[str, Dict[str, Any]] = {}  # uncertainty.yaml entries applied (band != nominal)
        if overrides.get("iteration_overhead_s") is not None:
            self.engine.per_iteration_s = float(overrides["iteration_overhead_s"])

    def bind(self, gpu: GPUSpec, model: ModelSpec, tp: int, factory: Optional[Any] = None) -> BoundPerformance:
        """The instance's :class:`BoundKernel`; ``factory`` (same arguments) builds a subclass instead,
        e.g. :class:`greensim.hardware.powercap.CappedKernel` under a power cap."""
        k = kernel_params_for(self.params, gpu)
        o = self.overrides
        if o.get("eta_compute") or o.get("eta_memory"):
            k = k.replace(
                eta_gemm_compute=float(o.get("eta_compute") or k.eta_gemm_compute),
                eta_gemm_memory=float(o.get("eta_memory") or k.eta_gemm_memory),
            )
        bound = (factory or BoundKernel)(gpu, model, tp, k, self.engine)
        band = self.overrides.get("band") or "nominal"
        if band == "nominal":
            return bound
        from greensim.hardware.bands import apply_band

        return apply_band(bound, gpu, band, measured=False, used=self.bands_used, section="kernel")
