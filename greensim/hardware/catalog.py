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

__all__ = ["GPUSpec", "ModelSpec", "Catalog", "load_catalog", "same_tokenizer"]


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
    #: rows of the LM head actually computed (0: all ``vocab_size``); a draft restricted to its
    #: most frequent tokens (FR-Spec, :meth:`with_draft_vocab`)
    lm_head_vocab: int = 0

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
    def n_params_per_layer(self) -> int:
        h, q, kv = self.hidden_size, self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        attn = h * q + 2 * h * kv + q * h
        mlp = (3 if self.gated_mlp else 2) * h * self.intermediate_size
        return attn + mlp + 2 * h

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
    def weight_bytes(self) -> float:
        return float(self.n_params * self.dtype_bytes)

    @property
    def streamed_weight_bytes(self) -> float:
        """Weight bytes read per forward pass as counted by the roofline: :attr:`weight_bytes`
        less the LM-head rows a restricted head (:attr:`lm_head_vocab`) skips."""
        return self.weight_bytes - float((self.vocab_size - self.head_vocab) * self.hidden_size * self.dtype_bytes)

    @property
    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes per token over all layers: 2 x layers x kv_heads x head_dim x bytes."""
        return float(2 * self.n_layers * self.n_kv_heads * self.head_dim * self.dtype_bytes)

    @property
    def matmul_flops_per_token(self) -> float:
        """Dense-matmul FLOPs per token (2 per MAC), all layers plus the LM head."""
        return 2.0 * (
            self.n_layers * (self.n_params_per_layer - 2 * self.hidden_size) + self.head_vocab * self.hidden_size
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
    )


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
