"""A per-GPU power cap (``nvidia-smi -pl``) on the kernel model: the GPU lowers its SM clock until
an iteration's power fits under the cap.

The kernel model (:mod:`greensim.hardware.kernel`) gives each iteration, at the calibrated clock,
its duration ``t``, the part ``t_c`` spent in compute-bound kernels (weight GEMMs and attention
whose FLOP time exceeds their byte time), and its power ``P = idle + P_mem + P_sm``, split along
the fitted curve ``span * (a + b u_mem + c u_compute)``: ``P_mem = span * b * u_mem`` (HBM traffic)
and ``P_sm = span * (a + c * u_compute)`` (the SM clock domain; both scaled down together where
the curve clips at TDP). Under a cap ``C < P`` the SM clock drops to the fraction ``f`` of its
calibrated value that brings the power to the cap::

    P(f) = idle + P_mem + P_sm * f**k = C   =>   f = ((C - idle - P_mem) / P_sm) ** (1 / k)
    t(f) = t + t_c * (1 / f - 1)

SM dynamic power ``~ f V(f)**2`` falls as ``f**k`` (``DVFS_EXPONENT``); compute-bound kernel time
grows as ``1 / f``; memory-bound kernels, the kernel-launch floor, all-reduces and the engine's CPU
time do not depend on the SM clock (HBM keeps its own clock). So memory-bound decode at small
batch, which rarely reaches a cap, loses little; compute-bound prefill loses most. The clock never
falls below ``CLOCK_FLOOR_FRAC``: where even that cannot meet the cap, the iteration runs at the
floor and draws ``P(f_floor)`` (above the cap, as a real GPU would at its lowest clock).

First-order assumptions (documented, tested): ``P_mem`` is held at its calibrated value while the
compute part stretches (it overstates power slightly, so the clock is slightly low); a GEMM that
is memory-bound at the calibrated clock stays so at ``f`` (true above its ridge point, i.e. while
``f`` exceeds the ratio of its byte time to its FLOP time at full clock).

Every iteration is closed form; a decode run whose power stays under the cap at both ends (power
is monotone along a CUDA-graph decode run: a ratio of two affine functions of the step) keeps the
kernel model's closed forms, otherwise the run is summed iteration by iteration, so
``decode_run_time_s`` and ``decode_run_energy_j`` equal the sums of ``iteration_time_s`` and
``iteration_power_w x time`` (a test checks it).

Sources: ``DVFS_EXPONENT`` is fitted (``python -m greensim.tools.powercap_fit``) to the one cited
cap-versus-latency point for LLM inference we have: Splitwise (Patel et al., ISCA 2024) runs
Llama-2-70B and BLOOM-176B on DGX-H100 capped at 70 % of its power (splitwise-sim
``configs/hardware_repo/skus/dgx-h100-pcap.yaml``: 7,140 W vs 10,200 W, commit 3780880) with
prompt-phase time x 1.30 and token-phase time x 1.00 (``data/perf_model.csv``, rows
``h100-80gb-pcap`` vs ``h100-80gb``, commit 8f99e7d; copied in
``../shared/data/profiles/splitwise_sim``). ``CLOCK_FLOOR_FRAC``: Maliakel et al. 2025
(arXiv 2501.08219) ran LLM inference with the SM clock locked at 180 of 2,842 MHz, so clocks down
to ~6 % of the maximum are reachable. The README's "Power caps" section tabulates the model
against these and two qualitative measurements.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from greensim.base.errors import ConfigError
from greensim.core.interfaces import BoundPerformance, Chunk
from greensim.hardware.catalog import GPUSpec, ModelSpec
from greensim.hardware.kernel import BoundKernel, EnginePreset, KernelModel, KernelParams

__all__ = ["CappedKernel", "DVFS_EXPONENT", "CLOCK_FLOOR_FRAC", "bind_capped", "cap_watts"]

#: SM dynamic power ~ f**k. Derived: fitted so that the model reproduces Splitwise's
#: prompt-time x 1.30 at a 70 % cap on H100 (Llama-2-70B, the prompts the model runs at TDP; module
#: docstring and the README table); between the fixed-voltage (k = 1) and the textbook
#: V ~ f (k = 3) limits.
DVFS_EXPONENT = 1.55

#: lowest SM clock as a fraction of the calibrated one: 180 / 2,842 MHz, the lowest clock at
#: which Maliakel et al. 2025 (arXiv 2501.08219) ran LLM inference.
CLOCK_FLOOR_FRAC = 180.0 / 2842.0


def cap_watts(gpu: GPUSpec, power_cap_frac: float, where: str) -> float:
    """The per-GPU cap [W] of ``power_cap_frac`` x TDP, checked against the GPU's idle power.

    Raises
    ------
    ConfigError
        When the cap is not above the GPU's idle power (no clock could meet it).
    """
    cap = float(power_cap_frac) * float(gpu.tdp_w)
    if not cap > gpu.idle_w:
        raise ConfigError(
            f"{where}.power_cap_frac: {power_cap_frac} x {gpu.tdp_w} W TDP = {cap:g} W is not above "
            f"{gpu.name}'s idle power {gpu.idle_w:g} W, so no clock can meet it. Use a fraction above "
            f"{gpu.idle_w / gpu.tdp_w:.3f} (real GPUs refuse limits below their minimum, "
            "nvmlDeviceGetPowerManagementLimitConstraints)."
        )
    return cap


def bind_capped(perf, gpu: GPUSpec, model: ModelSpec, tp: int, power_cap_frac: Optional[float], where: str):
    """``perf.bind(gpu, model, tp)``, under a per-GPU power cap of ``power_cap_frac`` x TDP when given."""
    if power_cap_frac is None:
        return perf.bind(gpu, model, tp)
    if not isinstance(perf, KernelModel):
        raise ConfigError(
            f"{where}.power_cap_frac: a power cap needs performance.model kernel (it splits each "
            f"iteration into clock-bound and memory-bound time); got {getattr(perf, 'name', type(perf).__name__)!r}. "
            "Set performance.model: kernel or drop power_cap_frac."
        )
    cap_watts(gpu, power_cap_frac, where)

    def factory(g, m, t, k, engine):
        return CappedKernel(g, m, t, k, engine, power_cap_frac)

    return perf.bind(gpu, model, tp, factory=factory)


class CappedKernel(BoundKernel):
    """:class:`~greensim.hardware.kernel.BoundKernel` of an instance whose GPUs are capped at
    ``power_cap_frac`` x TDP each (see the module docstring for the model)."""

    def __init__(
        self,
        gpu: GPUSpec,
        model: ModelSpec,
        tp: int,
        k: KernelParams,
        engine: EnginePreset,
        power_cap_frac: float,
        kernels_per_layer: Optional[int] = None,
        exponent: float = DVFS_EXPONENT,
        clock_floor_frac: float = CLOCK_FLOOR_FRAC,
    ):
        super().__init__(gpu, model, tp, k, engine, kernels_per_layer)
        if not self.power_varies:
            raise ConfigError(
                f"power_cap_frac: GPU {gpu.name} has no power curve (profiles/kernel.yaml 'power'), "
                "which the cap needs to find the clock."
            )
        self.power_cap_frac = float(power_cap_frac)
        self.cap_w = tp * cap_watts(gpu, power_cap_frac, "power_cap_frac")
        self.exponent = float(exponent)
        self.clock_floor_frac = float(clock_floor_frac)
        self._tc_cache: dict = {}
        self._ridge_attn = self._fa / self._Fa >= self._kvb / self._Ba  # decode attention compute-bound
        self.decode_power_w = self._capped_power(*self._split((), 1, 1024)[:4])

    # ------------------------------------------------------------------ the clock under the cap
    def _clock(self, t: float, m: float, f: float) -> Tuple[float, float]:
        """(SM clock fraction, instance power [W]) of an iteration of uncapped duration ``t``."""
        p = self._curve_w(m, f, t)
        if p <= self.cap_w:
            return 1.0, p
        idle = self.idle_power_w
        p_mem = self._kb * m / t
        p_sm = self._p0 - idle + self._kc * f / t
        scale = (p - idle) / (p_mem + p_sm)  # < 1 where the curve clips at TDP
        p_mem, p_sm = p_mem * scale, p_sm * scale
        room = self.cap_w - idle - p_mem
        lo = self.clock_floor_frac
        if room <= p_sm * lo**self.exponent:
            return lo, idle + p_mem + p_sm * lo**self.exponent
        return (room / p_sm) ** (1.0 / self.exponent), self.cap_w

    def _capped_power(self, t: float, m: float, f: float, tc: float) -> float:
        return self._clock(t, m, f)[1]

    def _tc_gemm(self, T: int, T_logits: int) -> float:
        """Compute-bound part of the weight GEMMs' time for ``T`` tokens [s]."""
        key = (T, T_logits)
        hit = self._tc_cache.get(key)
        if hit is not None:
            return hit
        Fc, Bm, b = self._Fc, self._Bm, self._b
        tc = 0.0
        for N, K in self._shapes:
            fl = 2.0 * T * N * K / Fc
            if fl > (N * K + T * (N + K)) * b / Bm:
                tc += fl
        tc *= self._L
        if T_logits:
            N, K = self._lm
            fl = 2.0 * T_logits * N * K / Fc
            if fl > (N * K + T_logits * (N + K)) * b / Bm:
                tc += fl
        if len(self._tc_cache) < 65536:
            self._tc_cache[key] = tc
        return tc

    def _tc(self, T: int, T_logits: int, pairs: float, kv_read: float, dec_ctx: float) -> float:
        """Compute-bound part of :meth:`_parts`' kernel time [s]."""
        tc = self._tc_gemm(T, T_logits)
        if pairs:
            ta = self._fa * pairs / self._Fa
            if ta > self._kvb * kv_read / self._Ba:
                tc += ta
        if dec_ctx and self._ridge_attn:
            tc += self._fa * dec_ctx / self._Fa
        return tc

    def _split(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int):
        """(uncapped wall time, bytes, FLOPs, compute-bound kernel time, kernel time, eager, n_seqs,
        n_prefill) of an iteration (the arguments of :meth:`iteration_time_s`)."""
        p_tok, pairs, reread = 0, 0.0, 0
        for q, c in chunks:
            p_tok += q
            pairs += q * c + q * (q + 1) * 0.5
            reread += c
        T = p_tok + n_decode
        args = (T, len(chunks) + n_decode, pairs, reread + p_tok, decode_ctx_tokens + n_decode)
        kernel, m, f = self._parts(*args)
        tc = self._tc(*args)
        eager = not (self.engine.prefill_cuda_graphs if chunks else self.engine.decode_cuda_graphs)
        n_seqs, n_pre = len(chunks) + n_decode, len(chunks)
        return self._wall(kernel, eager, n_seqs, n_pre), m, f, tc, kernel, eager, n_seqs, n_pre

    def _stretched(self, split) -> float:
        t, m, f, tc, kernel, eager, n_seqs, n_pre = split
        clk = self._clock(t, m, f)[0]
        if clk == 1.0:
            return t
        return self._wall(kernel + tc * (1.0 / clk - 1.0), eager, n_seqs, n_pre)

    # ------------------------------------------------------------------ BoundPerformance
    def iteration_time_s(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int) -> float:
        if not chunks and not n_decode:
            return 0.0
        split = self._split(chunks, n_decode, decode_ctx_tokens)
        if self._clock(*split[:3])[0] == 1.0:
            return super().iteration_time_s(chunks, n_decode, decode_ctx_tokens)
        return self._stretched(split)

    def iteration_power_w(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int, time_s: float) -> float:
        if not chunks and not n_decode:
            return self.idle_power_w
        split = self._split(chunks, n_decode, decode_ctx_tokens)
        clk, p = self._clock(*split[:3])
        if clk == 1.0:
            return super().iteration_power_w(chunks, n_decode, decode_ctx_tokens, time_s)
        return p

    def power_w(self, n_prefill_tokens: int, n_decode: int) -> float:
        chunks = [(n_prefill_tokens, 0)] if n_prefill_tokens > 0 else []
        if not chunks and not n_decode:
            return self.idle_power_w
        return self._capped_power(*self._split(chunks, n_decode, 1024 * n_decode)[:4])

    def _verify_split(self, p_tok: int, ctx_sum: int, pairs: float, n_seqs: int):
        args = (p_tok, p_tok, pairs, ctx_sum + p_tok, 0)
        kernel, m, f = self._parts(*args)
        eager = not self.engine.decode_cuda_graphs
        return self._wall(kernel, eager, n_seqs, 0), m, f, self._tc(*args), kernel, eager, n_seqs, 0

    def _verify(self, p_tok: int, ctx_sum: int, pairs: float, n_seqs: int):
        if p_tok == 0:
            return 0.0, 0.0, 0.0
        split = self._verify_split(p_tok, ctx_sum, pairs, n_seqs)
        return self._stretched(split), split[1], split[2]

    def verify_power_w(self, p_tok: int, ctx_sum: int, n_seqs: int, time_s: float) -> float:
        if p_tok <= 0:
            return super().verify_power_w(p_tok, ctx_sum, n_seqs, time_s)
        n = max(1, n_seqs)
        q = p_tok / n  # as the uncapped model: the mean new tokens per sequence stands for each
        split = self._verify_split(p_tok, ctx_sum, q * ctx_sum + n * q * (q + 1) * 0.5, n_seqs)
        clk, p = self._clock(*split[:3])
        return super().verify_power_w(p_tok, ctx_sum, n_seqs, time_s) if clk == 1.0 else p

    # ------------------------------------------------------------------ decode runs
    def _run_binds(self, n: int, ctx0: int, k: int) -> bool:
        """Whether the cap may bind somewhere in a decode run (then it is summed)."""
        if not self.engine.decode_cuda_graphs:
            return True  # the CPU launch floor breaks the run's monotone power
        return any(self._clock(*self._split((), n, ctx0 + n * j)[:3])[0] < 1.0 for j in {0, k - 1})

    def decode_run_time_s(self, n: int, ctx0: int, k: int) -> float:
        if k <= 0 or not self._run_binds(n, ctx0, k):
            return super().decode_run_time_s(n, ctx0, k)
        total = 0.0
        for j in range(k):
            total += self.iteration_time_s((), n, ctx0 + n * j)
        return total

    def decode_run_energy_j(self, n: int, ctx0: int, k: int) -> float:
        if k <= 0 or not self._run_binds(n, ctx0, k):
            return super().decode_run_energy_j(n, ctx0, k)
        total = 0.0
        for j in range(k):
            c = ctx0 + n * j
            t = self.iteration_time_s((), n, c)
            total += self.iteration_power_w((), n, c, t) * t
        return total

    def decode_iterations_until(self, n: int, ctx0: int, kmax: int, dt_s: float) -> int:
        return BoundPerformance.decode_iterations_until(self, n, ctx0, kmax, dt_s)
