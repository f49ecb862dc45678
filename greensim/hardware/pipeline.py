"""Pipeline parallelism: an instance of ``tp x pp`` GPUs, the model's layers split over ``pp`` stages.

Layout (vLLM's, ``vllm/distributed/utils.py`` ``get_pp_indices``): each stage runs ``L // pp``
layers; when ``pp`` does not divide ``L`` the ``L % pp`` extra layers go one each to the stages
before the last (the last also runs the final norm and the LM head). The first stage holds the
input embedding (and an OPT-style learned position table), the last the final norm and the LM
head; a model with tied embeddings keeps a copy of the table on the last stage too (vLLM's
``LlamaModel``: ``embed_tokens`` exists on the first rank, and on the last one when
``tie_word_embeddings``). Each stage is ``tp`` GPUs (tensor parallel inside the stage).

Memory: every stage fits its own weights and the KV cache of its own layers; the instance holds
the fewest blocks any stage holds (vLLM's executor takes ``min`` over its workers' block counts,
``determine_num_available_blocks``, so the scheduler's block ids are valid on every stage)::

    blocks = min_s floor((tp * memory * (1 - reserve) - W_s) / (block_tokens * kv_token * L_s / L))

Time: an iteration's batch is split into ``m`` micro-batches (``pp_microbatches``, default
``m = pp``: vLLM runs ``pp`` virtual engines, one batch in flight per stage). Every stage is
priced as the slowest stage: ``ceil(L / pp)`` layers plus the LM head (exactly the last stage
when ``pp`` divides ``L``; an upper bound otherwise). With the micro-batches' stage times
``t_1 >= t_i`` the pipeline is flushed every iteration (GPipe schedule, Huang et al. 2019,
arXiv 1811.06965; the engine runs one batch at a time)::

    T = sum_i t_i + (pp - 1) * t_1 + (pp - 1) * x(tokens of micro-batch 1)
    x(n) = latency + n * 2 * hidden * dtype_bytes / bandwidth

which for equal micro-batches is ``(m + pp - 1) * t + (pp - 1) * x``: the bubble is a fraction
``(pp - 1) / (m + pp - 1)`` of the compute (Narayanan et al. 2021, arXiv 2104.04473, sec. 2.2.1).
Each boundary sends the hidden state and the residual stream (vLLM's ``IntermediateTensors``
of Llama: ``hidden_states`` and ``residual``) of the micro-batch's tokens. Later micro-batches'
sends overlap the next micro-batch's compute; the link energy is not counted. vLLM's virtual
engines keep the pipeline full across iterations, so the bubble here is an upper bound.

Energy: each stage draws its own model's power while it computes a micro-batch (its own time:
a stage without the LM head finishes sooner) and idle power for the rest of the iteration.
Decode runs stay closed form: each micro-batch class's run is the stage model's own closed form.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from greensim.base.errors import ConfigError
from greensim.core.interfaces import BoundPerformance, Chunk
from greensim.core.link import LINK_TYPES
from greensim.core.memory import kv_capacity_blocks
from greensim.hardware.catalog import GPUSpec, ModelSpec

__all__ = [
    "PipelineBound",
    "bind_pipeline",
    "default_stage_link",
    "pipeline_kv_blocks",
    "stage_layers",
    "stage_weight_bytes",
    "stage_timing_models",
    "ACTIVATION_TENSORS",
]

#: tensors of ``hidden_size`` per token sent between stages: vLLM's Llama sends
#: ``IntermediateTensors({"hidden_states": ..., "residual": ...})`` (vllm/model_executor/models/llama.py,
#: ``LlamaModel.forward`` on a rank that is not the last); assumed for every model
ACTIVATION_TENSORS = 2

#: GPU catalogue interconnect line -> link type of :data:`greensim.core.link.LINK_TYPES` (the first
#: interconnect the line names: NVLink where the board has it, else its PCIe generation)
_LINK_PATTERNS = (
    (r"nvlink\s*2", "nvlink_v100"),
    (r"nvlink\s*3", "nvlink_a100"),
    (r"nvlink\s*4", "nvlink_h100"),
    (r"nvlink\s*5", "nvlink_b200"),
    (r"pcie\s*gen\s*3", "pcie_gen3_x16"),
    (r"pcie\s*gen\s*4", "pcie_gen4_x16"),
    (r"pcie\s*gen\s*5", "pcie_gen5_x16"),
)


def stage_layers(n_layers: int, pp: int) -> List[int]:
    """Layers of each of ``pp`` stages, vLLM's ``get_pp_indices`` split (extra layers to the
    stages before the last)."""
    if pp < 1 or pp > n_layers:
        raise ValueError(f"pp = {pp} stages for {n_layers} layers: need 1 <= pp <= {n_layers}")
    out = [n_layers // pp] * pp
    for i in range(2, n_layers % pp + 2):
        out[-i] += 1
    return out


def _layer_weight_bytes(model: ModelSpec) -> float:
    """Bytes of one layer's weights as stored (quantised linear weights with their scales, norms native)."""
    h = model.hidden_size
    if not model.quantized_weights:
        return float(model.n_params_per_layer * model.dtype_bytes)
    return (model.n_params_per_layer - 2 * h) * model.weight_elem_bytes + 2.0 * h * model.dtype_bytes


def stage_weight_bytes(model: ModelSpec, pp: int) -> List[float]:
    """Weight bytes each stage holds (module docstring: layers, embedding first, norm + LM head last)."""
    b, h = model.dtype_bytes, model.hidden_size
    table = float(model.vocab_size * h * b)
    layer = _layer_weight_bytes(model)
    out = []
    for s, n in enumerate(stage_layers(model.n_layers, pp)):
        w = n * layer
        if s == 0:
            w += table + model.learned_pos_embeddings * h * b
        if s == pp - 1:
            w += table + h * b  # LM head (tied: vLLM's copy of the table) and the final norm
        out.append(w)
    return out


def pipeline_kv_blocks(
    gpu_memory_bytes: float,
    tp: int,
    pp: int,
    model: ModelSpec,
    block_tokens: int,
    reserve_frac: float,
    where: str = "cluster.instances",
) -> int:
    """KV blocks of an instance of ``pp`` stages of ``tp`` GPUs: the fewest any stage holds
    (module docstring). ``pp = 1`` is :func:`greensim.core.memory.kv_capacity_blocks` itself."""
    if pp == 1:
        return kv_capacity_blocks(
            gpu_memory_bytes, tp, model.weight_bytes, model.kv_bytes_per_token, block_tokens, reserve_frac, where
        )
    kv_layer = model.kv_bytes_per_token / model.n_layers
    return min(
        kv_capacity_blocks(
            gpu_memory_bytes,
            tp,
            w,
            kv_layer * n,
            block_tokens,
            reserve_frac,
            where=f"{where}, pipeline stage {s + 1}/{pp}",
        )
        for s, (n, w) in enumerate(zip(stage_layers(model.n_layers, pp), stage_weight_bytes(model, pp)))
    )


def _stage_model(model: ModelSpec, n_layers: int, head: bool) -> ModelSpec:
    """The model as one stage computes it: ``n_layers`` layers, with or without the LM head (the
    embedding lookup does no GEMM work). Tied embeddings: the head is counted once."""
    tag = f"PP stage: {n_layers} layers{' + LM head' if head else ''}"
    kw = dict(n_layers=n_layers, learned_pos_embeddings=0, tied_embeddings=True, base_name=model.catalog_name)
    if not head:
        kw.update(vocab_size=0, lm_head_vocab=0)
    return replace(model, name=f"{model.name} [{tag}]", **kw)  # type: ignore[arg-type]


def stage_timing_models(model: ModelSpec, pp: int) -> Tuple[ModelSpec, List[Tuple[int, ModelSpec]]]:
    """(the model that paces every stage: ``ceil(L / pp)`` layers and the LM head; the distinct
    stages as ``(count, model)``)."""
    layers = stage_layers(model.n_layers, pp)
    kinds: Dict[Tuple[int, bool], int] = {}
    for s, n in enumerate(layers):
        key = (n, s == pp - 1)
        kinds[key] = kinds.get(key, 0) + 1
    pace = _stage_model(model, max(layers), True)
    return pace, [(c, _stage_model(model, n, head)) for (n, head), c in kinds.items()]


def default_stage_link(gpu: GPUSpec, where: str) -> Tuple[str, float]:
    """(link type, bandwidth [bytes/s]) between two stages by default: the first interconnect the
    GPU catalogue names for ``gpu`` (NVLink generation, else PCIe generation), at its line rate
    per direction (:data:`greensim.core.link.LINK_TYPES`)."""
    text = (gpu.interconnect or "").lower()
    found = [(m.start(), kind) for pat, kind in _LINK_PATTERNS for m in (re.search(pat, text),) if m]
    if found:
        kind = min(found)[1]
        return kind, LINK_TYPES[kind][0]
    raise ConfigError(
        f"{where}.pp_link: GPU '{gpu.name}' has no interconnect in the catalogue that names an NVLink "
        f"or PCIe generation (got {gpu.interconnect!r}), so the stage-to-stage link is unknown. "
        f"Set {where}.pp_link.kind (one of {', '.join(sorted(LINK_TYPES))}) or pp_link.bandwidth_gbs."
    )


class PipelineBound(BoundPerformance):
    """Latency and power of a pipeline of stages (module docstring).

    Parameters
    ----------
    pace : the slowest stage's model (every stage is timed by it).
    stages : ``(count, model)`` of the distinct stages (their power and busy times), counts summing to ``pp``.
    pp : stages; microbatches : micro-batches an iteration's batch is split into.
    transfer_s_per_token : seconds one token's activations take between two stages; transfer_latency_s : per send.
    """

    def __init__(
        self,
        pace: BoundPerformance,
        stages: Sequence[Tuple[int, BoundPerformance]],
        pp: int,
        microbatches: int,
        transfer_s_per_token: float,
        transfer_latency_s: float = 0.0,
    ):
        if sum(c for c, _ in stages) != pp or pp < 2 or microbatches < 1:
            raise ValueError(
                f"pipeline of {pp} stages, {microbatches} micro-batches, stage counts {[c for c, _ in stages]}"
            )
        self.pace, self.stages, self.pp, self.microbatches = pace, tuple(stages), pp, microbatches
        self._xs, self._xl = float(transfer_s_per_token), float(transfer_latency_s)
        self.idle_power_w = sum(c * b.idle_power_w for c, b in self.stages)
        self.power_varies = True  # the bubble's idle share depends on the iteration's times
        self.decode_power_w = self.iteration_power_w((), 1, 1024, self.iteration_time_s((), 1, 1024))

    def __getattr__(self, name):  # labels (gpu, model, tp, ...) of the pacing stage's model
        if name == "pace":
            raise AttributeError(name)
        return getattr(self.pace, name)

    # ------------------------------------------------------------------ micro-batches
    def _xfer(self, tokens: float) -> float:
        return (self.pp - 1) * (self._xl + self._xs * tokens)

    def _decode_split(self, n: int) -> Tuple[int, int, int, int]:
        """(n_hi, a, n_lo, b): ``a`` micro-batches of ``n_hi`` requests, ``b`` of ``n_lo``."""
        m = min(self.microbatches, n)
        hi, r = -(-n // m), n % m
        if r == 0:
            return hi, m, 0, 0
        return hi, r, n // m, m - r

    def _split(self, chunks: Sequence[Chunk], n_decode: int, ctx: float) -> List[Tuple[Sequence[Chunk], int, float]]:
        """Micro-batches of a mixed batch: decodes spread evenly (each with the mean context),
        then each prefill chunk, longest first, to the micro-batch with the fewest tokens."""
        m = min(self.microbatches, len(chunks) + n_decode)
        per = ctx / n_decode if n_decode else 0.0
        counts = [n_decode // m + (1 if i < n_decode % m else 0) for i in range(m)]
        parts: List[List[Chunk]] = [[] for _ in range(m)]
        load = list(counts)
        for q, c in sorted(chunks, key=lambda qc: -qc[0]):
            i = min(range(m), key=load.__getitem__)
            parts[i].append((q, c))
            load[i] += q
        return [(parts[i], counts[i], counts[i] * per) for i in range(m)]

    # ------------------------------------------------------------------ time
    def iteration_time_s(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int) -> float:
        if not chunks:
            if not n_decode:
                return 0.0
            hi, a, lo, b = self._decode_split(n_decode)
            p = self.pace
            t = (a + self.pp - 1) * p.iteration_time_s((), hi, decode_ctx_tokens * hi / n_decode)  # type: ignore[arg-type]
            if b:
                t += b * p.iteration_time_s((), lo, decode_ctx_tokens * lo / n_decode)  # type: ignore[arg-type]
            return t + self._xfer(hi)
        ts, tok = [], []
        for c, n, x in self._split(chunks, n_decode, decode_ctx_tokens):
            ts.append(self.pace.iteration_time_s(c, n, x))  # type: ignore[arg-type]
            tok.append(sum(q for q, _ in c) + n)
        k = max(range(len(ts)), key=ts.__getitem__)
        return sum(ts) + (self.pp - 1) * ts[k] + self._xfer(tok[k])

    def decode_run_time_s(self, n: int, ctx0: int, k: int) -> float:
        if k <= 0 or n <= 0:
            return 0.0
        hi, a, lo, b = self._decode_split(n)
        p = self.pace
        t = (a + self.pp - 1) * p.decode_run_time_s(hi, ctx0 * hi / n, k)  # type: ignore[arg-type]
        if b:
            t += b * p.decode_run_time_s(lo, ctx0 * lo / n, k)  # type: ignore[arg-type]
        return t + k * self._xfer(hi)

    # ------------------------------------------------------------------ power
    def iteration_power_w(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int, time_s: float) -> float:
        if time_s <= 0.0:
            return self.idle_power_w
        mbs: List[Tuple[Sequence[Chunk], int, float]]
        if chunks:
            mbs = list(self._split(chunks, n_decode, decode_ctx_tokens))
        elif n_decode:
            hi, a, lo, b = self._decode_split(n_decode)
            r = decode_ctx_tokens / n_decode
            none: Sequence[Chunk] = ()
            mbs = [(none, hi, hi * r)] * a + [(none, lo, lo * r)] * b
        else:
            return self.idle_power_w
        extra = 0.0  # energy above idle, all stages [J]
        for count, s in self.stages:
            e = 0.0
            for c, n, x in mbs:
                t = s.iteration_time_s(c, n, x)  # type: ignore[arg-type]
                e += (s.iteration_power_w(c, n, x, t) - s.idle_power_w) * t  # type: ignore[arg-type]
            extra += count * e
        return self.idle_power_w + extra / time_s

    def power_w(self, n_prefill_tokens: int, n_decode: int) -> float:
        # composition only: fresh prefill chunks, decodes at context 1024 (as the kernel model)
        chunks = [(n_prefill_tokens, 0)] if n_prefill_tokens > 0 else []
        t = self.iteration_time_s(chunks, n_decode, 1024 * n_decode)
        return self.iteration_power_w(chunks, n_decode, 1024 * n_decode, t)

    def decode_run_energy_j(self, n: int, ctx0: int, k: int) -> float:
        if k <= 0 or n <= 0:
            return 0.0
        hi, a, lo, b = self._decode_split(n)
        extra = 0.0
        for count, s in self.stages:
            e = 0.0
            for nn, mult in ((hi, a), (lo, b)):
                if mult:
                    c0 = ctx0 * nn / n
                    e += mult * (
                        s.decode_run_energy_j(nn, c0, k)  # type: ignore[arg-type]
                        - s.idle_power_w * s.decode_run_time_s(nn, c0, k)  # type: ignore[arg-type]
                    )
            extra += count * e
        return self.idle_power_w * self.decode_run_time_s(n, ctx0, k) + extra


def bind_pipeline(
    bind: Callable[[ModelSpec], BoundPerformance],
    model: ModelSpec,
    pp: int,
    microbatches: Optional[int],
    link_bps: float,
    link_latency_s: float = 0.0,
) -> BoundPerformance:
    """The instance's performance model: ``bind(model)`` for ``pp = 1``; else a
    :class:`PipelineBound` of the stage models, each bound by ``bind`` (on ``tp`` GPUs)."""
    if pp == 1:
        return bind(model)
    pace_m, kinds = stage_timing_models(model, pp)
    cache: Dict[str, BoundPerformance] = {}

    def get(m: ModelSpec) -> BoundPerformance:
        if m.name not in cache:
            cache[m.name] = bind(m)
        return cache[m.name]

    per_token = ACTIVATION_TENSORS * model.hidden_size * model.dtype_bytes / link_bps
    return PipelineBound(
        get(pace_m), [(c, get(m)) for c, m in kinds], pp, microbatches or pp, per_token, link_latency_s
    )
