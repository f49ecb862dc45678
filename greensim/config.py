"""The experiment file: frozen pydantic models, YAML loading and readable errors.

Precedence: model defaults < YAML file < ``--set key=value`` overrides. Every error
names the dotted field path, the bad value and the fix; unknown keys suggest the
closest valid key.
"""
from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from typing_extensions import Annotated

from .errors import ConfigError

__all__ = ["Experiment", "load_experiment", "parse_experiment", "apply_overrides", "json_schema"]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------ lengths
class ConstantLength(_Base):
    """Every request has the same token count."""
    dist: Literal["constant"]
    value: int = Field(ge=1, description="token count [tokens]")


class UniformLength(_Base):
    """Integer token counts uniform on [low, high]."""
    dist: Literal["uniform"]
    low: int = Field(ge=1, description="smallest token count [tokens]")
    high: int = Field(ge=1, description="largest token count [tokens]")

    @model_validator(mode="after")
    def _order(self):
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class LognormalLength(_Base):
    """Lognormal token counts, rounded and clipped to [min, max]."""
    dist: Literal["lognormal"]
    median: float = Field(gt=0, description="median token count [tokens] (= exp(mu))")
    sigma: float = Field(ge=0, description="standard deviation of log(tokens)")
    min: int = Field(1, ge=1, description="clip below [tokens]")
    max: int = Field(32768, ge=1, description="clip above [tokens]")


class EmpiricalLength(_Base):
    """Token counts resampled (with replacement) from a column of a trace file."""
    dist: Literal["empirical"]
    path: str = Field(description="CSV or parquet file holding the column")
    column: str = Field(description="column name, e.g. input_tokens")


LengthDist = Annotated[Union[ConstantLength, UniformLength, LognormalLength, EmpiricalLength],
                       Field(discriminator="dist")]


# ------------------------------------------------------------------ workloads
class PoissonWorkload(_Base):
    """Poisson arrivals with independent input/output length distributions."""
    kind: Literal["poisson"]
    rate_rps: float = Field(gt=0, description="mean arrival rate [requests/s]")
    n_requests: int = Field(ge=1, description="number of requests to generate")
    input_tokens: LengthDist
    output_tokens: LengthDist


class TraceWorkload(_Base):
    """Replay of a trace with columns arrival_time_s, input_tokens, output_tokens."""
    kind: Literal["trace"]
    path: str = Field(description="trace file (.csv or .parquet); relative to the experiment file")
    format: str = Field("auto", description="trace reader name, or 'auto' from the file suffix")
    max_requests: Optional[int] = Field(None, ge=1, description="keep only the first N requests")
    time_scale: float = Field(1.0, gt=0, description="multiply arrival times by this factor")


Workload = Annotated[Union[PoissonWorkload, TraceWorkload], Field(discriminator="kind")]


# ------------------------------------------------------------------ cluster
class InstanceGroup(_Base):
    """``count`` identical instances, each ``tp`` GPUs of one type serving the model."""
    gpu: str = Field(description="GPU type name from the catalogue, e.g. A100-80GB")
    tp: int = Field(1, ge=1, le=64, description="tensor-parallel degree = GPUs per instance")
    count: int = Field(1, ge=1, description="number of instances in this group")
    name: Optional[str] = Field(None, description="label; defaults to '<gpu>x<tp>'")
    max_batch_size: int = Field(256, ge=1, description="max requests per iteration (vLLM max_num_seqs default 256)")
    max_batched_tokens: int = Field(8192, ge=1, description="max tokens per iteration [tokens]")
    chunked_prefill: bool = Field(False, description="mix prompt chunks with decode tokens (Sarathi/vLLM chunked prefill)")
    block_tokens: int = Field(16, ge=1, description="tokens per KV block (vLLM default 16)")
    memory_reserve_frac: float = Field(0.1, ge=0, lt=1, description="GPU memory kept out of weights+KV (vLLM gpu_memory_utilization 0.9)")
    watermark_frac: float = Field(0.01, ge=0, lt=1, description="KV blocks kept free at admission (vLLM watermark 0.01)")
    role: Literal["colocated", "prefill", "decode"] = Field(
        "colocated", description="colocated (prefill and decode), or prefill / decode for prefill-decode disaggregation (DPD)")
    speculative: Optional["Speculative"] = Field(None, description="speculative decoding (draft model on this GPU or on draft_gpu, DSD)")

    @model_validator(mode="after")
    def _speculative_mode(self):
        if self.speculative is not None and (self.role != "colocated" or self.chunked_prefill):
            raise ValueError("speculative decoding needs role colocated and chunked_prefill false "
                             f"(got role {self.role}, chunked_prefill {self.chunked_prefill})")
        return self


class LinkConfig(_Base):
    """The link KV caches (DPD) or draft tokens (DSD) travel over."""
    kind: Optional[str] = Field(None, description="link type (greensim.core.link.LINK_TYPES: pcie_gen3_x16, pcie_gen4_x16, nvlink_v100, nvlink_a100, ethernet_10g, ethernet_25g, ethernet_100g, infiniband_hdr, infiniband_ndr); or set bandwidth_gbs")
    bandwidth_gbs: Optional[float] = Field(None, gt=0, description="explicit bandwidth [GB/s = 1e9 bytes/s] instead of kind; .inf allowed")
    efficiency_frac: float = Field(1.0, gt=0, le=1, description="fraction of the line rate achieved (protocol overhead); 1 = line rate")
    latency_s: float = Field(ge=0, description="per-transfer latency [s]; required: depends on NIC, switch and software stack")
    scope: Literal["shared", "per_prefill", "per_decode", "per_pair"] = Field(
        "per_pair", description="which transfers share a link's bandwidth: all, per prefill instance (its NIC), per decode instance, per (prefill, decode) pair")

    @model_validator(mode="after")
    def _kind_or_bandwidth(self):
        from .core.link import LINK_TYPES
        if (self.kind is None) == (self.bandwidth_gbs is None):
            raise ValueError("set exactly one of kind or bandwidth_gbs")
        if self.kind is not None and self.kind not in LINK_TYPES:
            close = difflib.get_close_matches(self.kind, list(LINK_TYPES), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown link kind '{self.kind}' (valid: {', '.join(sorted(LINK_TYPES))}).{hint}")
        return self


class Speculative(_Base):
    """Speculative decoding: a draft model proposes gamma tokens, the target verifies them."""
    draft_model: str = Field(description="draft model name from the catalogue; same vocabulary as the target")
    draft_gpu: Optional[str] = Field(None, description="GPU type running the draft (DSD split, with link); omit to run it on the target's GPU")
    alpha: Optional[float] = Field(None, ge=0, lt=1, description="per-token acceptance probability of draft tokens in [0, 1); alpha or alpha_by_position is required: it depends on the draft/target pair and the workload (Leviathan et al. 2023 report 0.5-0.9)")
    alpha_by_position: Optional[List[Annotated[float, Field(ge=0, lt=1)]]] = Field(
        None, description="per-position acceptance a_1..a_gamma in [0, 1) (draft token k accepted with a_k given the earlier ones were); instead of alpha")
    gamma: int = Field(ge=0, le=32, description="draft tokens per iteration (the maximum, for adaptive gamma policies)")
    gamma_policy: str = Field("fixed", description="gamma policy (fixed, goodput)")
    probabilities: Literal["full_vocab", "top_k"] = Field("full_vocab", description="draft probabilities sent per draft token: the whole vocabulary or the top_k entries")
    top_k: Optional[int] = Field(None, ge=1, description="entries per draft token when probabilities is top_k")
    token_id_bytes: int = Field(4, ge=1, description="bytes per token id (int32, paper.md section 5)")
    link: Optional[LinkConfig] = Field(None, description="link between draft and target GPU; required with draft_gpu")

    @model_validator(mode="after")
    def _consistent(self):
        if (self.alpha is None) == (self.alpha_by_position is None):
            raise ValueError("set exactly one of alpha or alpha_by_position")
        if self.alpha_by_position is not None and len(self.alpha_by_position) != self.gamma:
            raise ValueError(f"alpha_by_position has {len(self.alpha_by_position)} entries; it needs gamma = {self.gamma}")
        if (self.draft_gpu is None) != (self.link is None):
            raise ValueError("set draft_gpu and link together (split draft/target) or neither (draft on the target's GPU)")
        if (self.probabilities == "top_k") != (self.top_k is not None):
            raise ValueError("top_k is required with probabilities: top_k, and only then")
        return self


class Disaggregation(_Base):
    """Prefill-decode disaggregation (DPD): how prefilled requests reach decode instances."""
    decode_router: str = Field("least_loaded", description="decode-routing policy (round_robin, least_loaded, kv_capacity_aware)")
    link: LinkConfig
    layerwise: bool = Field(False, description="send KV layer by layer during the prefill (decode KV reserved at the prefill's start when possible)")


class Cluster(_Base):
    instances: List[InstanceGroup] = Field(min_length=1)
    router: str = Field("round_robin", description="router name (round_robin, join_shortest_queue)")
    disaggregation: Optional[Disaggregation] = Field(None, description="required when an instance group has role prefill or decode")

    @model_validator(mode="after")
    def _roles(self):
        roles = {g.role for g in self.instances}
        if ("prefill" in roles) != ("decode" in roles):
            have = "prefill" if "prefill" in roles else "decode"
            need = "decode" if have == "prefill" else "prefill"
            raise ValueError(f"instances has role '{have}' but none with role '{need}'; "
                             f"DPD needs both (or set every role to colocated)")
        if "prefill" in roles and self.disaggregation is None:
            raise ValueError("instances have prefill/decode roles: add cluster.disaggregation "
                             "with decode_router and link")
        return self


# ------------------------------------------------------------------ SLO, carbon, perf
class SLOPair(_Base):
    ttft_s: float = Field(gt=0, description="time-to-first-token SLO [s]")
    tpot_s: float = Field(gt=0, description="time-per-output-token SLO [s/token]")


class SLO(SLOPair):
    """Default SLO pair, plus optional per-class pairs for traces with an slo_class column."""
    classes: Dict[str, SLOPair] = Field(default_factory=dict)


class ConstantIntensity(_Base):
    kind: Literal["constant"]
    gco2_per_kwh: float = Field(ge=0, description="grid carbon intensity [gCO2e/kWh]")


Intensity = Annotated[Union[ConstantIntensity], Field(discriminator="kind")]


class Carbon(_Base):
    intensity: Intensity = Field(default_factory=lambda: ConstantIntensity(kind="constant", gco2_per_kwh=260.7),
                                 description="default: US-CAL-CISO 2023 mean LCA intensity, Electricity Maps")
    pue: float = Field(1.1, ge=1.0, description="power usage effectiveness; default 1.1 (Chien et al. HotCarbon'23; LLMCarbon)")
    lifetime_years: float = Field(5.0, gt=0, description="GPU service lifetime [years]; default 5 (Meta, Amazon 10-K FY2022)")
    gpu_lifetime_years: Dict[str, float] = Field(default_factory=dict, description="per-GPU lifetime overrides [years]")
    gpu_embodied_kgco2e: Dict[str, float] = Field(default_factory=dict, description="per-GPU embodied overrides [kgCO2e]")

    @field_validator("gpu_lifetime_years", "gpu_embodied_kgco2e")
    @classmethod
    def _positive(cls, v: Dict[str, float]):
        for k, x in v.items():
            if not (x >= 0) or x != x:
                raise ValueError(f"value for '{k}' must be a non-negative number, got {x}")
        return v


class Performance(_Base):
    model: str = Field("roofline", description="performance model name")
    eta_compute: Optional[float] = Field(None, gt=0, le=1, description="override compute efficiency")
    eta_memory: Optional[float] = Field(None, gt=0, le=1, description="override memory-bandwidth efficiency")
    iteration_overhead_s: Optional[float] = Field(None, ge=0, description="override per-iteration overhead [s]")


class Output(_Base):
    dir: str = Field("results", description="parent folder of run folders")
    plots: bool = True
    table_format: Literal["parquet", "csv"] = "parquet"


class CatalogDirs(_Base):
    gpu_dirs: List[str] = Field(default_factory=list, description="extra folders of GPU YAML files")
    model_dirs: List[str] = Field(default_factory=list, description="extra folders of model YAML files")


class SimulationOpts(_Base):
    timeline_bin_s: Optional[float] = Field(None, gt=0, description="timeline bin [s]; default horizon/400")
    progress: bool = True


class Experiment(_Base):
    """One simulated experiment: the single description of a run."""
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="experiment name (folder-safe)")
    seed: int = Field(0, ge=0, description="root seed of every random stream")
    model: str = Field(description="model name from the catalogue, e.g. Llama-3.1-8B")
    workload: Workload
    cluster: Cluster
    slo: SLO
    carbon: Carbon = Field(default_factory=Carbon)
    performance: Performance = Field(default_factory=Performance)
    output: Output = Field(default_factory=Output)
    catalog: CatalogDirs = Field(default_factory=CatalogDirs)
    simulation: SimulationOpts = Field(default_factory=SimulationOpts)


# ------------------------------------------------------------------ errors
def _model_at(root: type, loc: tuple) -> Optional[type]:
    """The pydantic model class at a location path (for 'did you mean')."""
    cur: Any = root
    for part in loc:
        tagged = _tag_member(cur, part)
        if tagged is not None:          # a discriminated union's tag appears in the path
            cur = tagged
            continue
        cur = _unwrap(cur, part)
        if isinstance(part, int):
            continue
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            f = cur.model_fields.get(part)
            if f is None:
                return None
            cur = f.annotation
        elif typing.get_origin(cur) is dict:
            cur = typing.get_args(cur)[1]
        else:
            return None
    cur = _unwrap(cur, None)
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _tag_member(tp: Any, part: Any) -> Optional[type]:
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is not Union:
        return None
    for m in typing.get_args(tp):
        for fname in ("dist", "kind"):
            f = getattr(m, "model_fields", {}).get(fname)
            if f is not None and part in typing.get_args(f.annotation):
                return m
    return None


def _unwrap(tp: Any, part: Any) -> Any:
    for _ in range(5):
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin is Union:
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        elif origin in (list, List) and isinstance(part, int):
            return typing.get_args(tp)[0]
        else:
            return tp
    return tp


def _format_errors(exc: ValidationError, where: str) -> str:
    lines = []
    for e in exc.errors():
        loc = tuple(e["loc"])
        path = ".".join(str(p) for p in loc if p not in ("constant", "uniform", "lognormal", "empirical", "poisson", "trace")) or "(top level)"
        val = e.get("input")
        sval = repr(val) if not isinstance(val, dict) else "{...}"
        if len(sval) > 60:
            sval = sval[:57] + "..."
        if e["type"] == "extra_forbidden":
            parent = _model_at(Experiment, loc[:-1])
            valid = sorted(parent.model_fields) if parent else []
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            lines.append(f"{path}: unknown key.{hint} Valid keys here: {', '.join(valid)}.")
        elif e["type"] == "missing":
            lines.append(f"{path}: required field is missing. Add it.")
        elif e["type"] == "union_tag_invalid":
            lines.append(f"{path}: {e['msg']}. Set one of the listed kinds.")
        elif e["type"] == "union_tag_not_found":
            lines.append(f"{path}: {e['msg']}.")
        else:
            lines.append(f"{path}: {e['msg']} (got {sval}). Fix the value.")
    return f"{where}: invalid experiment ({len(lines)} problem{'s' if len(lines) > 1 else ''}):\n  - " + "\n  - ".join(lines)


# ------------------------------------------------------------------ loading
def parse_experiment(data: Any, where: str = "experiment", base_dir: Path | None = None) -> Experiment:
    """Validate a dict into an :class:`Experiment`; relative paths resolve against base_dir."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the experiment must be a YAML mapping of keys to values, "
                          f"got {type(data).__name__}.")
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, where)) from None
    if base_dir is not None:
        exp = _resolve_paths(exp, base_dir)
    return exp


def _resolve_paths(exp: Experiment, base: Path) -> Experiment:
    def fix(p: str) -> str:
        pp = Path(p).expanduser()
        return str(pp if pp.is_absolute() else (base / pp).resolve())

    wl = exp.workload
    if isinstance(wl, TraceWorkload):
        wl = wl.model_copy(update={"path": fix(wl.path)})
    else:
        upd = {}
        for k in ("input_tokens", "output_tokens"):
            d = getattr(wl, k)
            if isinstance(d, EmpiricalLength):
                upd[k] = d.model_copy(update={"path": fix(d.path)})
        wl = wl.model_copy(update=upd)
    cat = exp.catalog.model_copy(update={"gpu_dirs": [fix(d) for d in exp.catalog.gpu_dirs],
                                         "model_dirs": [fix(d) for d in exp.catalog.model_dirs]})
    return exp.model_copy(update={"workload": wl, "catalog": cat})


def _coerce(v: str) -> Any:
    try:
        return yaml.safe_load(v)
    except yaml.YAMLError:
        return v


def apply_overrides(data: Dict[str, Any], overrides: Dict[str, Any] | List[str]) -> Dict[str, Any]:
    """Return a copy of ``data`` with dotted-path overrides applied.

    ``overrides`` is a mapping ``{"cluster.router": "join_shortest_queue"}`` or a list of
    ``"a.b=value"`` strings (values parsed as YAML). List items are addressed by index.
    """
    import copy
    out = copy.deepcopy(data)
    items = overrides.items() if isinstance(overrides, dict) else []
    if isinstance(overrides, list):
        parsed = []
        for s in overrides:
            if "=" not in s:
                raise ConfigError(f"--set {s!r}: expected KEY=VALUE, e.g. --set workload.rate_rps=3")
            k, v = s.split("=", 1)
            parsed.append((k.strip(), _coerce(v)))
        items = parsed
    for key, value in items:
        parts = key.split(".")
        cur: Any = out
        for i, p in enumerate(parts[:-1]):
            if isinstance(cur, list):
                try:
                    cur = cur[int(p)]
                except (ValueError, IndexError):
                    raise ConfigError(f"override {key!r}: '{p}' is not a valid index of "
                                      f"{'.'.join(parts[:i]) or 'the list'} (length {len(cur)}).") from None
            else:
                cur = cur.setdefault(p, {})
                if not isinstance(cur, (dict, list)):
                    raise ConfigError(f"override {key!r}: '{'.'.join(parts[:i + 1])}' is a value, not a section.")
        last = parts[-1]
        if isinstance(cur, list):
            try:
                cur[int(last)] = value
            except (ValueError, IndexError):
                raise ConfigError(f"override {key!r}: '{last}' is not a valid list index.") from None
        else:
            cur[last] = value
    return out


def load_yaml(path: str | Path) -> Dict[str, Any]:
    """Read an experiment YAML file into a dict with clear errors."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: no such experiment file. Check the path "
                          f"(run `greensim run` with no argument for the bundled quickstart).")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{at}: {problem}. Fix the indentation or quoting there.") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty. Start from experiments/quickstart.yaml.")
    return data


def load_experiment(path: str | Path, overrides: Dict[str, Any] | List[str] | None = None) -> Experiment:
    """Load, override and validate an experiment file."""
    data = load_yaml(path)
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the experiment must be a YAML mapping.")
        data = apply_overrides(data, overrides)
    return parse_experiment(data, where=str(path), base_dir=Path(path).resolve().parent)


def json_schema() -> Dict[str, Any]:
    """JSON Schema of the experiment format (for editors)."""
    return Experiment.model_json_schema()
