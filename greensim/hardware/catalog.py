"""GPU and model catalogues: data files selected by name.

The shipped catalogue lives in ``profiles/`` (installed as ``greensim._profiles``);
an experiment may name extra folders whose ``*.yaml`` (or ``*.csv``: a ``name`` column plus
the YAML fields as columns) files add or override entries.
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Tuple

import yaml

from greensim.base.errors import ProfileError
from greensim.base.paths import bundled
from greensim.base.units import BYTES_PER_GB, FLOPS_PER_TFLOPS
from greensim.base.yamlio import parse_yaml_cached

__all__ = ["GPUSpec", "ModelSpec", "Catalog", "load_catalog", "same_tokenizer", "DTYPE_BITS", "expected_experts"]

#: bits per stored element of each weight / activation / KV-cache dtype
DTYPE_BITS = {"fp16": 16, "bf16": 16, "fp8": 8, "int8": 8, "int4": 4}


def expected_experts(n_experts: int, top_k: int, tokens: float) -> float:
    """Expected distinct experts touched by ``tokens`` tokens, each routed to ``top_k`` of
    ``n_experts`` experts chosen uniformly at random: ``E (1 - (1 - k/E)^B)`` (a given expert is
    missed by one token with probability ``1 - k/E``, independently across tokens; uniform
    routing is an assumption: real routers are skewed, which touches fewer experts)."""
    if n_experts <= 0 or tokens <= 0:
        return 0.0
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** tokens)


@dataclass(frozen=True)
class GPUSpec:
    """One GPU type. Units are SI internally (bytes, bytes/s, FLOP/s, W, kgCO2e)."""

    name: str
    memory_bytes: float
    mem_bandwidth_bps: float
    peak_flops: float
    tdp_w: float
    idle_w: float
    prefill_power_frac: float
    decode_power_frac: float
    embodied_kgco2e: float
    architecture: str = ""
    release_year: int | None = None
    bf16_supported: bool = True
    #: FlashAttention-2 kernels exist for this GPU (Ampere and newer).
    flash_attention_2: bool = True
    #: die area of the GPU chip [mm^2] (ACT-style chip embodied carbon; None: unknown).
    die_area_mm2: float | None = None
    #: ACT process-node key of the die ("7nm", "5nm", ...; greensim.carbon.act.NODES).
    process_node: str | None = None
    #: memory packages on the board (HBM stacks or GDDR chips): ACT packaging carbon.
    memory_packages: int | None = None
    #: embodied carbon of the host server the GPU sits in, without GPUs [kgCO2e per host].
    host_embodied_kgco2e: float | None = None
    #: GPUs sharing that host server.
    gpus_per_host: int | None = None
    #: dense int8 tensor-core peak [op/s] (None: no int8 tensor cores, e.g. V100's DP4A only)
    int8_ops: float | None = None
    #: dense int4 tensor-core peak [op/s] (None: none, e.g. Hopper)
    int4_ops: float | None = None
    #: dense fp8 tensor-core peak [FLOP/s] (None: no fp8 tensor cores, before Ada/Hopper)
    fp8_flops: float | None = None
    #: the catalogue's interconnect line (e.g. "NVLink 4.0 900 GB/s; PCIe Gen5"): the default
    #: link between pipeline stages (:func:`greensim.hardware.pipeline.default_stage_link`)
    interconnect: str = field(default="", compare=False)
    sources: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def require_power(self, field_path: str = "gpu") -> None:
        """Raise if the catalogue has no sourced TDP or idle power for this GPU."""
        missing = [k for k in ("tdp_w", "idle_w") if not math.isfinite(getattr(self, k))]
        if missing:
            raise ProfileError(
                f"{field_path}: GPU '{self.name}' has no sourced {' and '.join(missing)} in the catalogue "
                f"({self.sources.get('tdp_w_source', 'no source found')}), so its energy cannot be computed. "
                f"Add the values with a citation in a YAML file under a folder named in catalog.gpu_dirs."
            )

    def peak_ops(self, dtype: str) -> float | None:
        """Dense tensor-core peak of GEMMs with operands in ``dtype`` [op/s]; None: unsupported."""
        if dtype in ("fp16", "bf16"):
            return self.peak_flops
        return {"int8": self.int8_ops, "int4": self.int4_ops, "fp8": self.fp8_flops}.get(dtype)

    @property
    def prefill_power_w(self) -> float:
        return self.prefill_power_frac * self.tdp_w

    @property
    def decode_power_w(self) -> float:
        return self.decode_power_frac * self.tdp_w


@dataclass(frozen=True)
class ModelSpec:
    """Decoder-only transformer shape (Llama-style: gated MLP, GQA)."""

    name: str
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    dtype_bytes: int = 2
    tied_embeddings: bool = False
    source: str = ""
    #: gated SiLU MLP (3 matrices, Llama/Qwen); False: 2-matrix ReLU MLP (OPT)
    gated_mlp: bool = True
    #: "rms" (RMSNorm) or "layer" (LayerNorm)
    norm: str = "rms"
    #: rotary positions; False: a learned table of ``learned_pos_embeddings`` rows
    rope: bool = True
    learned_pos_embeddings: int = 0
    #: tokenizer family (cited in ``source``); two models with the same family emit the same
    #: token ids even where their embedding tables are padded to different ``vocab_size``
    tokenizer: str = ""
    #: longest prompt + output the model serves [tokens] (config.json max_position_embeddings;
    #: 0: unknown, no check)
    max_context_tokens: int = 0
    #: rows of the LM head actually computed (0: all ``vocab_size``); a draft restricted to its
    #: most frequent tokens (FR-Spec, :meth:`with_draft_vocab`)
    lm_head_vocab: int = 0
    #: mixture of experts: experts per MoE layer (0: a dense model), experts each token is
    #: routed to (top-k), one expert's MLP width (0: ``intermediate_size``), the always-active
    #: shared expert(s)' total MLP width (Qwen-MoE / DeepSeek-style; 0: none)
    n_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    #: experts spread whole over the instance's GPUs with all-to-all dispatch (a deployment
    #: choice, :meth:`with_expert_parallel`); False: every expert split over them (TP)
    expert_parallel: bool = False
    #: the catalogue entry's name of a deployment variant (quantised, EP; "" = ``name`` itself)
    base_name: str = ""
    #: quantisation (:meth:`quantized`): stored dtype of the layers' linear weights, of the
    #: GEMM activations (int8 / fp8 with weights of the same dtype: W8A8 / FP8 GEMMs on the
    #: tensor cores of that dtype; otherwise weight-only, computed in fp16 after dequantising)
    #: and of the KV cache; "" = native (``dtype_bytes``). Embeddings, LM head and norms stay native.
    weight_dtype: str = ""
    act_dtype: str = ""
    kv_dtype: str = ""
    #: int8 / int4 weights: one ``quant_scale_bytes`` scale per group of ``quant_group_size`` weights
    quant_group_size: int = 128
    quant_scale_bytes: int = 2
    #: weight-only GEMMs: compute time x (1 + this) for dequantising in the kernel
    dequant_overhead_frac: float = 0.0

    @property
    def head_vocab(self) -> int:
        """Rows of the output projection computed per token (``vocab_size`` unless restricted)."""
        return self.lm_head_vocab or self.vocab_size

    def with_draft_vocab(self, n: int) -> "ModelSpec":
        """This model with its LM head restricted to ``n`` of its ``vocab_size`` rows (FR-Spec,
        Zhao et al. 2025, arXiv 2502.14856): only the head's bytes and FLOPs shrink; the weights
        held in memory stay (the full embedding table is still needed for the input lookup)."""
        if not 1 <= n <= self.vocab_size:
            raise ValueError(f"draft vocabulary {n} is outside 1..{self.vocab_size} ({self.name})")
        if n == self.vocab_size:
            return self
        return replace(self, name=f"{self.name} (draft vocab {n})", lm_head_vocab=n)

    def shape(self) -> Dict[str, Any]:
        """Plain-dict shape for the profiler (:mod:`greensim.tools.profiler`)."""
        return {
            "name": self.name,
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.intermediate_size,
            "vocab_size": self.vocab_size,
            "tied_embeddings": self.tied_embeddings,
            "gated_mlp": self.gated_mlp,
            "norm": self.norm,
            "rope": self.rope,
            "dtype_bytes": self.dtype_bytes,
        }

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def expert_intermediate_size(self) -> int:
        """One routed expert's MLP width (``moe_intermediate_size``, else ``intermediate_size``)."""
        return self.moe_intermediate_size or self.intermediate_size

    def _mlp_params(self, active: bool) -> int:
        h, m = self.hidden_size, 3 if self.gated_mlp else 2
        if not self.n_experts:
            return m * h * self.intermediate_size
        e = self.experts_per_token if active else self.n_experts
        shared = self.shared_expert_intermediate_size
        # routed experts, shared expert(s) and its gate (h x 1), the router (h x E)
        return e * m * h * self.expert_intermediate_size + m * h * shared + (h if shared else 0) + h * self.n_experts

    @property
    def n_params_per_layer(self) -> int:
        h, q, kv = self.hidden_size, self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        attn = h * q + 2 * h * kv + q * h
        mlp = self._mlp_params(active=False)
        return attn + mlp + 2 * h

    @property
    def n_active_params_per_layer(self) -> int:
        """Parameters one token uses per layer (MoE: its top-k experts only; dense: all)."""
        if not self.n_experts:
            return self.n_params_per_layer
        return self.n_params_per_layer - self._mlp_params(active=False) + self._mlp_params(active=True)

    @property
    def active_mlp_width(self) -> int:
        """MLP width one token passes through per layer (MoE: top-k experts plus shared ones)."""
        if not self.n_experts:
            return self.intermediate_size
        return self.experts_per_token * self.expert_intermediate_size + self.shared_expert_intermediate_size

    def with_expert_parallel(self, on: bool = True) -> "ModelSpec":
        """This MoE model deployed with expert parallelism (a dense model: ValueError)."""
        if not on or on == self.expert_parallel:
            return self
        if not self.is_moe:
            raise ValueError(f"expert parallelism needs a mixture-of-experts model; '{self.name}' is dense")
        return replace(self, name=f"{self.name} (EP)", expert_parallel=True, base_name=self.catalog_name)

    @property
    def catalog_name(self) -> str:
        """The catalogue entry this spec derives from (acceptance tables, profiles are keyed by it)."""
        return self.base_name or self.name

    # ------------------------------------------------------------------ quantisation
    @property
    def quantized_weights(self) -> bool:
        return self.weight_dtype not in ("", "fp16", "bf16")

    @property
    def is_quantized(self) -> bool:
        """Weights, activations or KV cache stored below 16 bits."""
        return self.quantized_weights or self.kv_dtype not in ("", "fp16", "bf16") or self.compute_dtype != "fp16"

    @property
    def weight_elem_bytes(self) -> float:
        """Bytes per layer weight as stored, group scales included: int8/int4 add one
        ``quant_scale_bytes`` scale per ``quant_group_size`` weights (symmetric, no zero points);
        fp8 has per-tensor scales (negligible)."""
        if not self.quantized_weights:
            return self.dtype_bytes
        bits = DTYPE_BITS[self.weight_dtype]
        scales = self.quant_scale_bytes / self.quant_group_size if self.weight_dtype.startswith("int") else 0.0
        return bits / 8 + scales

    @property
    def kv_elem_bytes(self) -> float:
        """Bytes per KV-cache element (per-tensor scales, negligible)."""
        if self.kv_dtype in ("", "fp16", "bf16"):
            return self.dtype_bytes
        return DTYPE_BITS[self.kv_dtype] / 8

    @property
    def compute_dtype(self) -> str:
        """Operand dtype of the layers' GEMMs: int8 / fp8 when activations and weights are both
        in it (W8A8, FP8), else fp16 (native or weight-only quantisation)."""
        if self.act_dtype in ("int8", "fp8") and self.weight_dtype == self.act_dtype:
            return self.act_dtype
        return "fp16"

    def quantized(
        self,
        weights: str = "fp16",
        activations: str = "fp16",
        kv: str = "fp16",
        group_size: int = 128,
        scale_bytes: int = 2,
        dequant_overhead_frac: float = 0.0,
    ) -> "ModelSpec":
        """This model with quantised weights / activations / KV cache (dtypes of
        :data:`DTYPE_BITS`); all fp16 returns the model itself. Raises ValueError naming the
        argument on a combination no kernel runs."""
        for k, v, ok in (
            ("weights", weights, DTYPE_BITS),
            ("activations", activations, ("fp16", "bf16", "int8", "fp8")),
            ("kv", kv, ("fp16", "bf16", "fp8", "int8")),
        ):
            if v not in ok:
                raise ValueError(f"{k}: {v!r} is not one of {list(ok)}")
        if activations in ("int8", "fp8") and weights != activations:
            raise ValueError(
                f"activations: {activations} GEMMs need weights in {activations} too (got weights {weights}); "
                f"set weights: {activations}, or activations: fp16 for weight-only quantisation"
            )
        if group_size < 1 or scale_bytes < 0 or dequant_overhead_frac < 0:
            raise ValueError("group_size must be >= 1, scale_bytes and dequant_overhead_frac >= 0")
        if (weights, activations, kv) in (("fp16", "fp16", "fp16"),):
            return self
        tag = f"w:{weights}" + (f" a:{activations}" if activations not in ("fp16", "bf16") else "")
        tag += f" kv:{kv}" if kv not in ("fp16", "bf16") else ""
        return replace(
            self,
            name=f"{self.name} ({tag})",
            base_name=self.catalog_name,
            weight_dtype=weights,
            act_dtype=activations,
            kv_dtype=kv,
            quant_group_size=int(group_size),
            quant_scale_bytes=int(scale_bytes),
            dequant_overhead_frac=float(dequant_overhead_frac),
        )

    @property
    def n_params(self) -> int:
        emb = self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)
        return (
            self.n_layers * self.n_params_per_layer
            + emb
            + self.hidden_size
            + self.learned_pos_embeddings * self.hidden_size
        )

    @property
    def n_active_params(self) -> int:
        """Parameters one token uses (MoE: top-k experts per layer; dense: :attr:`n_params`)."""
        return self.n_params - self.n_layers * (self.n_params_per_layer - self.n_active_params_per_layer)

    @property
    def weight_bytes(self) -> float:
        """Bytes of all weights in memory (every expert; quantised layer weights with their scales)."""
        if not self.quantized_weights:
            return float(self.n_params * self.dtype_bytes)
        linear = self.n_layers * (self.n_params_per_layer - 2 * self.hidden_size)
        return linear * self.weight_elem_bytes + float((self.n_params - linear) * self.dtype_bytes)

    @property
    def streamed_weight_bytes(self) -> float:
        """Weight bytes read per forward pass as counted by the roofline: :attr:`weight_bytes`
        less the LM-head rows a restricted head (:attr:`lm_head_vocab`) skips."""
        return self.weight_bytes - float((self.vocab_size - self.head_vocab) * self.hidden_size * self.dtype_bytes)

    @property
    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes per token over all layers: 2 x layers x kv_heads x head_dim x bytes."""
        if self.kv_dtype in ("", "fp16", "bf16"):
            return float(2 * self.n_layers * self.n_kv_heads * self.head_dim * self.dtype_bytes)
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * self.kv_elem_bytes

    @property
    def matmul_flops_per_token(self) -> float:
        """Matmul FLOPs per token (2 per MAC), all layers plus the LM head (MoE: active experts)."""
        return 2.0 * (
            self.n_layers * (self.n_active_params_per_layer - 2 * self.hidden_size) + self.head_vocab * self.hidden_size
        )

    @property
    def attn_flops_per_token_ctx(self) -> float:
        """Attention FLOPs per (query token x context token): QK^T and AV, all layers."""
        return 4.0 * self.n_layers * self.n_heads * self.head_dim


_GPU_REQUIRED = [
    "memory_gb",
    "mem_bandwidth_gbs",
    "fp16_tflops_dense",
    "tdp_w",
    "idle_w",
    "prefill_power_frac",
    "decode_power_frac",
    "embodied_kgco2e",
]
_MODEL_REQUIRED = ["n_layers", "hidden_size", "n_heads", "n_kv_heads", "head_dim", "intermediate_size", "vocab_size"]


def _num(entry: Mapping[str, Any], key: str, where: str, positive: bool = True) -> float:
    v = entry.get(key)
    if v is None:
        raise ProfileError(f"{where}.{key}: missing. Add it (with a `{key}_source` citation).")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ProfileError(f"{where}.{key}: {v!r} is not a number.") from None
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise ProfileError(
            f"{where}.{key}: {v!r} must be a finite {'positive' if positive else 'non-negative'} number."
        )
    return x


def _opt(entry: Mapping[str, Any], key: str, where: str) -> float | None:
    """An optional positive number (None when absent)."""
    return None if entry.get(key) is None else _num(entry, key, where)


def _tera(entry: Mapping[str, Any], key: str, where: str) -> float | None:
    """An optional tensor-core peak given in 1e12 op/s, in op/s (None when absent)."""
    x = _opt(entry, key, where)
    return None if x is None else x * FLOPS_PER_TFLOPS


def _opt_int(entry: Mapping[str, Any], key: str, where: str) -> int | None:
    x = _opt(entry, key, where)
    if x is not None and x != int(x):
        raise ProfileError(f"{where}.{key}: {entry[key]!r} must be a whole number.")
    return None if x is None else int(x)


#: Power fields that may be left empty (null) when no source gives them: the GPU is then
#: listed, but simulating it fails until a user catalogue supplies sourced values.
_GPU_OPTIONAL_POWER = ("tdp_w", "idle_w")


def _gpu_from_entry(name: str, e: Mapping[str, Any], where: str) -> GPUSpec:
    e = dict(e)
    unsourced = [k for k in _GPU_OPTIONAL_POWER if k in e and e[k] is None]
    for k in unsourced:
        e[k] = float("nan")
    for k in _GPU_REQUIRED:
        if k in unsourced:
            continue
        _num(e, k, where, positive=k not in ("idle_w", "embodied_kgco2e"))
    return GPUSpec(
        name=name,
        memory_bytes=float(e["memory_gb"]) * BYTES_PER_GB,
        mem_bandwidth_bps=float(e["mem_bandwidth_gbs"]) * BYTES_PER_GB,
        peak_flops=float(e["fp16_tflops_dense"]) * FLOPS_PER_TFLOPS,
        tdp_w=float(e["tdp_w"]),
        idle_w=float(e["idle_w"]),
        prefill_power_frac=float(e["prefill_power_frac"]),
        decode_power_frac=float(e["decode_power_frac"]),
        embodied_kgco2e=float(e["embodied_kgco2e"]),
        architecture=str(e.get("architecture", "")),
        release_year=e.get("release_year"),
        bf16_supported=bool(e.get("bf16_supported", True)),
        flash_attention_2=bool(e.get("flash_attention_2", True)),
        die_area_mm2=_opt(e, "die_area_mm2", where),
        process_node=str(e["process_node"]) if e.get("process_node") is not None else None,
        memory_packages=_opt_int(e, "memory_packages", where),
        host_embodied_kgco2e=_opt(e, "host_embodied_kgco2e", where),
        gpus_per_host=_opt_int(e, "gpus_per_host", where),
        int8_ops=_tera(e, "int8_tops_dense", where),
        int4_ops=_tera(e, "int4_tops_dense", where),
        fp8_flops=_tera(e, "fp8_tflops_dense", where),
        interconnect=str(e.get("interconnect") or ""),
        sources={k: v for k, v in e.items() if k.endswith("_source") or k.endswith("_derived")},
    )


def _model_from_entry(name: str, e: Mapping[str, Any], where: str) -> ModelSpec:
    for k in _MODEL_REQUIRED:
        v = _num(e, k, where)
        if v != int(v):
            raise ProfileError(f"{where}.{k}: {v} must be an integer.")
    return ModelSpec(
        name=name,
        n_layers=int(e["n_layers"]),
        hidden_size=int(e["hidden_size"]),
        n_heads=int(e["n_heads"]),
        n_kv_heads=int(e["n_kv_heads"]),
        head_dim=int(e["head_dim"]),
        intermediate_size=int(e["intermediate_size"]),
        vocab_size=int(e["vocab_size"]),
        dtype_bytes=int(e.get("dtype_bytes", 2)),
        tied_embeddings=bool(e.get("tied_embeddings", False)),
        source=str(e.get("source", "")),
        gated_mlp=bool(e.get("gated_mlp", True)),
        norm=_choice(e, "norm", ("rms", "layer"), where),
        rope=bool(e.get("rope", True)),
        learned_pos_embeddings=int(
            _num(e, "learned_pos_embeddings", where, positive=False) if "learned_pos_embeddings" in e else 0
        ),
        tokenizer=str(e.get("tokenizer") or ""),
        max_context_tokens=_opt_int(e, "max_context_tokens", where) or 0,
        **_moe_fields(e, where),
    )


def _moe_fields(e: Mapping[str, Any], where: str) -> Dict[str, int]:
    """The MoE shape fields of a model entry (absent: a dense model), checked for consistency."""
    keys = ("n_experts", "experts_per_token", "moe_intermediate_size", "shared_expert_intermediate_size")
    out = {k: _opt_int(e, k, where) or 0 for k in keys}
    if out["n_experts"] and not 1 <= out["experts_per_token"] <= out["n_experts"]:
        raise ProfileError(
            f"{where}.experts_per_token: {out['experts_per_token']} must be in 1..n_experts ({out['n_experts']}) "
            "(config.json num_experts_per_tok)."
        )
    if not out["n_experts"] and any(out[k] for k in keys[1:]):
        raise ProfileError(
            f"{where}.n_experts: MoE fields are given but n_experts is missing (config.json num_experts / num_local_experts)."
        )
    return out


def same_tokenizer(draft: ModelSpec, target: ModelSpec) -> bool:
    """Whether ``draft`` can propose tokens for ``target``: the same tokenizer family where both
    entries name one (padded embedding tables may then differ in ``vocab_size``), else the same
    ``vocab_size``."""
    if draft.tokenizer and target.tokenizer:
        return draft.tokenizer == target.tokenizer
    return draft.vocab_size == target.vocab_size


def _choice(e: Mapping[str, Any], key: str, allowed: tuple, where: str) -> str:
    v = str(e.get(key, allowed[0]))
    if v not in allowed:
        raise ProfileError(f"{where}.{key}: {v!r} is not one of {list(allowed)}.")
    return v


class Catalog:
    """Name -> spec lookup for GPUs and models, with aliases and helpful errors."""

    def __init__(
        self,
        gpus: Dict[str, GPUSpec],
        models: Dict[str, ModelSpec],
        aliases: Dict[str, Dict[str, str]],
        raw: Dict[str, Dict[str, Any]],
    ):
        self.gpus, self.models, self._aliases, self.raw = gpus, models, aliases, raw

    def _lookup(self, kind: str, table: Mapping[str, Any], name: str, field_path: str):
        key = self._aliases[kind].get(name.lower())
        if key is None:
            valid = sorted(table)
            cands = difflib.get_close_matches(name, valid + list(self._aliases[kind]), n=6)
            close = list(dict.fromkeys(self._aliases[kind].get(c.lower(), c) for c in cands))[:3]
            hint = (
                (
                    f" Did you mean '{close[0]}'"
                    + (f" (or {', '.join(repr(c) for c in close[1:])})" if close[1:] else "")
                    + "?"
                )
                if close
                else ""
            )
            raise ProfileError(
                f"{field_path}: unknown {kind} '{name}' (known: {', '.join(valid)}).{hint} "
                f"Fix the name, or add a {kind} entry to a YAML file in a folder listed "
                f"under catalog.{kind}_dirs."
            )
        return table[key]

    def gpu(self, name: str, field_path: str = "gpu") -> GPUSpec:
        return self._lookup("gpu", self.gpus, name, field_path)

    def model(self, name: str, field_path: str = "model") -> ModelSpec:
        return self._lookup("model", self.models, name, field_path)


def _read_csv(text: str, where: str) -> Dict[str, Any]:
    """A catalogue CSV: one entry per row, a ``name`` column plus the YAML fields as columns
    (empty cells are absent; numbers and true/false are parsed)."""
    import csv

    rows = list(csv.DictReader(text.splitlines()))
    out: Dict[str, Any] = {}
    for i, r in enumerate(rows, start=2):
        name = (r.pop("name", None) or "").strip()
        if not name:
            raise ProfileError(f"{where}: row {i}, column 'name': missing. Add a 'name' column with the entry's name.")
        e: Dict[str, Any] = {}
        for k, v in r.items():
            v = (v or "").strip()
            if v == "" or k is None:
                continue
            e[k] = yaml.safe_load(v) if v.lower() not in ("yes", "no", "on", "off") else v
        out[name] = e
    return out


def _read_yaml(text: str, where: str) -> Dict[str, Any]:
    if str(where).endswith(".csv"):
        return _read_csv(text, where)
    try:
        data = copy.deepcopy(parse_yaml_cached(text))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{where}: not valid YAML ({exc}).") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a mapping of name -> entry.")
    return data


def load_catalog(extra_gpu_dirs: Iterable[str | Path] = (), extra_model_dirs: Iterable[str | Path] = ()) -> Catalog:
    """Load the shipped catalogue, then extra folders (later files override earlier).

    The catalogue is built once per process for the same file contents (an edited file is read
    again): loading it was ~40 % of a planner search and ~15 % of a small sweep run before. Each
    call returns its own :class:`Catalog` (its tables may be changed); the specs are frozen.
    """
    pkg = bundled("profiles")
    sources = {
        "gpu": [(pkg / "gpus.yaml", "profiles/gpus.yaml")],
        "model": [(pkg / "models.yaml", "profiles/models.yaml")],
    }
    for kind, dirs in (("gpu", extra_gpu_dirs), ("model", extra_model_dirs)):
        for d in dirs:
            p = Path(d)
            if not p.is_dir():
                raise ProfileError(f"catalog.{kind}_dirs: '{d}' is not a folder.")
            sources[kind] += [(f, str(f)) for f in sorted([*p.glob("*.yaml"), *p.glob("*.csv")])]
    texts = tuple(
        (kind, where, Path(str(path)).read_text()) for kind, files in sources.items() for path, where in files
    )
    gpus, models, aliases, raw = _build_catalog(texts)
    return Catalog(
        dict(gpus),
        dict(models),
        {k: dict(v) for k, v in aliases.items()},
        {k: {name: dict(e) for name, e in v.items()} for k, v in raw.items()},  # nested values: read-only
    )


@functools.lru_cache(maxsize=16)
def _build_catalog(texts: Tuple[Tuple[str, str, str], ...]) -> Tuple[Dict, Dict, Dict, Dict]:
    """The catalogue's tables from ``(kind, where, text)`` of its files, in order; cached by content."""
    raw: Dict[str, Dict[str, Any]] = {"gpu": {}, "model": {}}
    gpus: Dict[str, GPUSpec] = {}
    models: Dict[str, ModelSpec] = {}
    aliases: Dict[str, Dict[str, str]] = {"gpu": {}, "model": {}}
    for kind, where, text in texts:
        for name, entry in _read_yaml(text, where).items():
            if not isinstance(entry, dict):
                raise ProfileError(f"{where}: entry '{name}' must be a mapping.")
            loc = f"{where}:{name}"
            if kind == "gpu":
                gpus[name] = _gpu_from_entry(name, entry, loc)
            else:
                models[name] = _model_from_entry(name, entry, loc)
            raw[kind][name] = dict(entry)
            for a in [name, *entry.get("aliases", [])]:
                aliases[kind][str(a).lower()] = name
    return gpus, models, aliases, raw
