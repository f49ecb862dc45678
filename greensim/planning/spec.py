"""The plan file: what the planner searches over (frozen pydantic models, readable errors).

A plan file holds the base experiment sections (``name``, ``seed``, ``model``, ``workload``,
``slo``, ``carbon``, ``performance``, ``catalog``, ``output``; the same models as
:mod:`greensim.experiment`, so they validate identically) plus the GPU ``inventory``, the
``link`` between old and new GPUs, the ``attainment_target`` and the ``search`` knobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from typing_extensions import Annotated

from greensim.base.errors import ConfigError
from greensim.experiment.acceptance import acceptance_entry
from greensim.experiment.carbon import DEFAULT_SITE, Carbon
from greensim.experiment.cluster import LinkConfig
from greensim.experiment.load import load_yaml, resolve_paths
from greensim.experiment.messages import format_validation_error
from greensim.experiment.overrides import apply_overrides
from greensim.experiment.settings import SLO, CatalogDirs, Output, Performance, SimulationOpts
from greensim.experiment.workload import Workload

__all__ = [
    "PlanSpec",
    "InventoryItem",
    "DraftSpec",
    "SearchSpec",
    "MODES",
    "QUANT_PRESETS",
    "load_plan_spec",
    "parse_plan_spec",
]

MODES = ("colocated", "dpd", "dsd", "spec", "pool", "class_split")

#: search.quantizations: the ``quantization`` section each preset gives the old GPUs' group
#: (cluster.instances[*].quantization); w8 / w4 are weight-only (fp16 compute), w8a8 / fp8 need
#: the GPU's int8 / fp8 tensor cores (a candidate on a GPU without them cannot be built)
QUANT_PRESETS: Dict[str, Optional[Dict[str, str]]] = {
    "none": None,
    "w8": {"weights": "int8"},
    "w4": {"weights": "int4"},
    "w8a8": {"weights": "int8", "activations": "int8"},
    "fp8": {"weights": "fp8", "activations": "fp8"},
}


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InventoryItem(_Base):
    """GPUs of one type available to the planner."""

    gpu: str = Field(description="GPU type name from the catalogue, e.g. A100-80GB")
    count: int = Field(ge=1, description="number of instances of this type available (each tp GPUs)")
    role: Literal["new", "old"] = Field(
        description="new: may host colocated serving, prefill (DPD) and the target "
        "model (DSD, spec); old: may host decode (DPD) and the draft model (DSD)"
    )
    age_years: float = Field(
        0.0,
        ge=0,
        description="GPU age at simulated t = 0 [years]; with carbon.embodied_schemes "
        "(e.g. sunk) it sets the embodied charge of reused GPUs",
    )
    tp: int = Field(1, ge=1, le=64, description="GPUs per instance (tensor-parallel degree); DSD drafts use 1")


class DraftSpec(_Base):
    """The draft model for speculative decoding (modes dsd and spec)."""

    model: str = Field(
        description="draft model name from the catalogue; same tokenizer as the target (its tokenizer family where both catalogue entries name one, else the same vocab_size)"
    )
    alpha: Optional[float] = Field(
        None,
        ge=0,
        lt=1,
        description="per-token acceptance probability in [0, 1); exactly one of alpha, "
        "alpha_by_position or acceptance is required (Leviathan et al. 2023 report 0.5-0.9 for theirs)",
    )
    acceptance: Optional[str] = Field(
        None,
        description="name of a cited entry of profiles/acceptance.yaml for this draft and the "
        "plan's model (as cluster.instances[*].speculative.acceptance); instead of alpha",
    )
    alpha_by_position: Optional[List[Annotated[float, Field(ge=0, lt=1)]]] = Field(
        None,
        description="per-position acceptance a_1..a_n in [0, 1); needs at least max(search.gammas) entries, "
        "a candidate with gamma g uses the first g",
    )
    probabilities: Literal["full_vocab", "top_k"] = Field(
        "full_vocab",
        description="draft probabilities sent per draft token over the link (as "
        "cluster.instances[*].speculative.probabilities)",
    )
    top_k: Optional[int] = Field(None, ge=1, description="entries per draft token when probabilities is top_k")
    draft_vocab_size: Optional[int] = Field(
        None,
        ge=1,
        description="tokens the draft proposes from, its LM head restricted to the most frequent ones "
        "(FR-Spec; as cluster.instances[*].speculative.draft_vocab_size); default: its whole vocabulary",
    )

    @model_validator(mode="after")
    def _consistent(self):
        if sum(x is not None for x in (self.alpha, self.alpha_by_position, self.acceptance)) != 1:
            raise ValueError("set exactly one of alpha, alpha_by_position or acceptance (no silent default)")
        if self.acceptance is not None:
            acceptance_entry(self.acceptance, self.model)  # the target is checked with the plan's model
        if (self.probabilities == "top_k") != (self.top_k is not None):
            raise ValueError("top_k is required with probabilities: top_k, and only then")
        return self

    @property
    def alpha_value(self) -> Optional[float]:
        """The scalar acceptance: ``alpha``, or the named entry's; None with ``alpha_by_position``."""
        if self.acceptance is not None:
            return acceptance_entry(self.acceptance, self.model).alpha
        return self.alpha


class SearchSpec(_Base):
    """What the planner enumerates and how hard it searches."""

    modes: List[Literal["colocated", "dpd", "dsd", "spec", "pool", "class_split"]] = Field(
        ["colocated", "dpd", "dsd", "spec"],
        min_length=1,
        description="deployment modes to enumerate: colocated (new GPUs only), dpd "
        "(prefill on new, decode on old), dsd (target on new, draft on old), spec (target and draft on new), "
        "pool (a colocated pool of 0..n new and 1..n old GPUs behind search.pool_router: old GPUs replace "
        "new ones), class_split (1..n new GPUs serve every class but search.old_class, 1..n old GPUs serve "
        "that looser-SLO class, router class_affinity); default the first four (paper.md section 7's search "
        "space plus colocated speculation)",
    )
    gammas: List[Annotated[int, Field(ge=1, le=32)]] = Field(
        [2, 4, 6],
        min_length=1,
        description="draft tokens per iteration to try (dsd, spec); default [2, 4, 6]: a "
        "search grid (a choice, not a measurement) around gamma 4 of experiments/dsd_v100_a100.yaml; the best "
        "gamma rises with alpha (Leviathan et al. 2023, section 3.5)",
    )
    gamma_policies: List[str] = Field(
        ["fixed"],
        min_length=1,
        description="gamma policies to try with every gamma of modes dsd and spec (as "
        "cluster.instances[*].speculative.gamma_policy): fixed, goodput (SmartSpec: per step the gamma "
        "<= gamma that maximises expected tokens per time); default [fixed]",
    )
    draft: Optional[DraftSpec] = Field(None, description="draft model and acceptance; required with modes dsd or spec")
    max_batch_sizes: List[Annotated[int, Field(ge=1)]] = Field(
        [256],
        min_length=1,
        description="batch caps (max requests per iteration) to try; default [256], vLLM's max_num_seqs default",
    )
    power_caps: List[Optional[Annotated[float, Field(gt=0, le=1)]]] = Field(
        [None],
        min_length=1,
        description="per-GPU power caps to try on the old GPUs of dpd candidates (their decode pool), as "
        "fractions of TDP (null: uncapped; cluster.instances[*].power_cap_frac); default [null]. Needs "
        "performance.model kernel",
    )
    quantizations: List[Literal["none", "w8", "w4", "w8a8", "fp8"]] = Field(
        ["none"],
        min_length=1,
        description="quantisation presets to try on the old GPUs of dpd (decode), pool and class_split "
        "candidates (their instance group's quantization): none, w8 (int8 weights, fp16 compute), w4 (int4 weights "
        "in groups of 128, fp16 compute), w8a8 (int8 weights and GEMMs), fp8 (fp8 weights and GEMMs); lets an old "
        "GPU serve a model that does not fit it in fp16. Default [none]; quality effects are not modelled",
    )
    max_batched_tokens: int = Field(
        8192,
        ge=1,
        description="max tokens per iteration of every instance [tokens] "
        "(as cluster.instances[*].max_batched_tokens; vLLM-style default 8192)",
    )
    router: str = Field("round_robin", description="router among the serving instances (cluster.router)")
    old_class: Optional[str] = Field(
        None,
        description="mode class_split: the SLO class (slo.classes, tagged by workload.slo_class_frac or a trace's "
        "slo_class column) that old GPUs serve; required with that mode",
    )
    pool_router: str = Field(
        "join_shortest_queue",
        description="router of mode pool's mixed new/old instances; default join_shortest_queue "
        "(a slower GPU keeps a longer queue and gets fewer requests; round robin would overload it)",
    )
    decode_router: str = Field(
        "kv_capacity_aware", description="DPD decode router (cluster.disaggregation.decode_router)"
    )
    short_requests: int = Field(
        300,
        ge=10,
        description="requests per short simulation (the first N of the "
        "workload); default 300: a speed/accuracy choice, its attainment error is measured "
        "by benchmarks/bench_planner.py (short_slack covers it)",
    )
    prune_margin: float = Field(
        0.3,
        ge=0,
        description="a candidate whose theory-predicted carbon per request "
        "exceeds (1 + prune_margin) x the predicted carbon of a candidate already found "
        "feasible (short simulation) is skipped; default 0.3: the theory fell 1-23 % below "
        "the full simulations (benchmarks/bench_planner.py on experiments/plans at 4 and 8 "
        "req/s), so two candidates' predictions can be off by up to (1-0.03)/(1-0.23) = 1.26x",
    )
    short_slack: float = Field(
        0.15,
        ge=0,
        le=1,
        description="a short simulation whose attainment is at least "
        "attainment_target - short_slack makes its candidate eligible for a full simulation; "
        "default 0.15: short (300-request) runs fell up to 0.096 below the full (1,500) "
        "ones near the target (benchmarks/bench_planner.py), 0.15 leaves 1.5x that",
    )
    confirm_margin: float = Field(
        0.15,
        ge=0,
        description="once a candidate is confirmed feasible, every "
        "short-promising candidate whose short score is at most (1 + confirm_margin) x "
        "that candidate's short score is also confirmed; default 0.15: among candidates "
        "within 0.15 of the target, short-run score / full-run carbon spread 1.06-1.13x "
        "(max / min) over experiments/plans at 4 and 8 req/s and the paper's chat plan at "
        "SLO x2, FR grid, 3-year A100s (benchmarks/bench_planner.py, README Planner)",
    )
    top_k: int = Field(
        3,
        ge=1,
        description="candidates (lowest short-simulation carbon among those meeting the "
        "target) confirmed by a full simulation",
    )
    max_backlog_growth_frac: float = Field(
        0.1,
        gt=0,
        description="stability guard: a candidate whose backlog (requests arrived less work done) "
        "grows from the middle to the end of the arrival window by more than this fraction of the "
        "requests arriving in that half (judged on full simulations) is unstable (its queue grows without bound) and cannot meet "
        "the target, whatever its finite run's attainment. Default 0.1: stable runs of 800 requests "
        "measured |growth| <= 0.075 (README, planner stability), an overloaded one grows by "
        "1 - capacity / load",
    )
    charge_unused: bool = Field(
        False,
        description="also charge inventory GPUs a candidate leaves unused (their idle "
        "power and embodied carbon over the run); default false: unused GPUs are assumed "
        "switched off or serving other work",
    )


class PlanSpec(_Base):
    """A planning problem: workload, SLOs, carbon, GPU inventory, link and search knobs."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="plan name (folder-safe)")
    seed: int = Field(0, ge=0, description="root seed of every random stream (every candidate uses it)")
    model: str = Field(description="target model name from the catalogue, e.g. Llama-3.1-8B")
    workload: Workload
    slo: SLO
    carbon: Carbon = Field(default_factory=Carbon)
    performance: Performance = Field(default_factory=Performance)
    catalog: CatalogDirs = Field(default_factory=CatalogDirs)
    output: Output = Field(default_factory=Output)
    simulation: SimulationOpts = Field(default_factory=lambda: SimulationOpts(progress=False))
    attainment_target: float = Field(
        0.9,
        gt=0,
        le=1,
        description="fraction of requests that must meet both "
        "SLOs; default 0.9, the paper's target (paper.md section 3)",
    )
    confidence: Literal["nominal", "pessimistic"] = Field(
        "nominal",
        description="which performance the SLO attainment target must hold at: nominal (default: the "
        "calibrated models) or pessimistic (also at the pessimistic corner of the uncertainty bands, "
        "performance.band: pessimistic, i.e. times and powers x (1 + u) from profiles/uncertainty.yaml): every "
        "short and full simulation is run at both and a candidate counts as feasible only if the lower "
        "attainment meets the target; carbon is still ranked at nominal. Needs performance.band: nominal",
    )
    inventory: List[InventoryItem] = Field(min_length=1, description="GPUs available, by type and role")
    link: Optional[LinkConfig] = Field(
        None,
        description="link between old and new GPUs (DPD KV transfers, DSD "
        "draft tokens); required when old GPUs and mode dpd or dsd are present",
    )
    search: SearchSpec = Field(default_factory=SearchSpec)
    plan_start_h: float = Field(
        0.0,
        ge=0,
        description="with carbon.forecast: the planning origin, hours after "
        "simulated t = 0 of carbon.intensity (a series); the forecast uses only values "
        "before it",
    )
    plan_horizon_h: Optional[int] = Field(
        None,
        ge=1,
        description="with carbon.forecast: hours the plan is for; "
        "candidates are scored at the mean forecast intensity over them; default "
        "carbon.forecast.horizon_h",
    )

    @model_validator(mode="after")
    def _consistent(self):
        if not any(i.role == "new" for i in self.inventory):
            raise ValueError(
                "inventory has no GPU with role new; every mode needs one (colocated serving, "
                "prefill, or the target model). Add {gpu: ..., count: ..., role: new}"
            )
        modes = set(self.search.modes)
        has_old = any(i.role == "old" for i in self.inventory)
        if modes & {"dsd", "spec"} and self.search.draft is None:
            raise ValueError(
                f"search.draft is required with modes {sorted(modes & {'dsd', 'spec'})}: add "
                "search.draft {model: ..., alpha: ...} or drop those modes from search.modes"
            )
        if has_old and modes & {"dpd", "dsd"} and self.link is None:
            raise ValueError(
                "link is required with old GPUs and modes dpd/dsd: add link {kind or bandwidth_gbs, latency_s}"
            )
        from greensim.policies.registry import GAMMA_POLICIES

        bad = [g for g in self.search.gamma_policies if g not in GAMMA_POLICIES.names()]
        if bad:
            raise ValueError(f"search.gamma_policies: {bad} unknown (valid: {', '.join(GAMMA_POLICIES.names())})")
        if "class_split" in modes:
            oc = self.search.old_class
            if oc is None or oc not in self.slo.classes:
                raise ValueError(
                    f"search.old_class: mode class_split needs the SLO class old GPUs serve, one of slo.classes "
                    f"({sorted(self.slo.classes) or 'none defined'}; got {oc!r}). Define it in slo.classes and tag "
                    "requests with workload.slo_class_frac (or a trace's slo_class column)"
                )
        if self.carbon.forecast is not None and self.carbon.intensity.kind != "series":
            raise ValueError(
                f"carbon.forecast: planning against a forecast needs a history, i.e. "
                f"carbon.intensity.kind 'series' (got '{self.carbon.intensity.kind}'). Use a series "
                "or drop carbon.forecast"
            )
        if self.carbon.forecast is None and (self.plan_horizon_h is not None or self.plan_start_h):
            raise ValueError(
                "plan_start_h / plan_horizon_h: they only apply with carbon.forecast. Add "
                "carbon.forecast {kind: ...} or drop them"
            )
        if self.confidence == "pessimistic" and self.performance.band != "nominal":
            raise ValueError(
                f"confidence: pessimistic checks the SLOs at the nominal and the pessimistic performance "
                f"band, but performance.band is '{self.performance.band}'. Set performance.band: nominal, or "
                "confidence: nominal to plan at that band"
            )
        if any(c is not None for c in self.search.power_caps) and self.performance.model != "kernel":
            raise ValueError(
                f"search.power_caps: a power cap needs performance.model kernel (got '{self.performance.model}'). "
                "Set performance.model: kernel or search.power_caps: [null]"
            )
        d = self.search.draft
        if d is not None and d.acceptance is not None:
            try:
                acceptance_entry(d.acceptance, d.model, self.model)
            except ValueError as exc:
                raise ValueError(f"search.draft.acceptance: {exc}") from None
        if d is not None and d.alpha_by_position is not None and len(d.alpha_by_position) < max(self.search.gammas):
            raise ValueError(
                f"search.draft.alpha_by_position has {len(d.alpha_by_position)} entries but "
                f"search.gammas goes up to {max(self.search.gammas)}; give one entry per position"
            )
        return self


def parse_plan_spec(data: Any, where: str = "plan", base_dir: Optional[Path] = None) -> PlanSpec:
    """Validate a dict into a :class:`PlanSpec`; GPU and model names are checked against the catalogue."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the plan must be a YAML mapping of keys to values, got {type(data).__name__}.")
    try:
        spec = PlanSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, where, root=PlanSpec, noun="plan", plain_value_errors=True)
        ) from None
    if DEFAULT_SITE in spec.carbon.sites:
        raise ConfigError(
            f"{where}: carbon.sites.{DEFAULT_SITE}: the name '{DEFAULT_SITE}' is reserved (groups "
            f"without a site use carbon.pue). Rename the site or set carbon.pue."
        )
    if base_dir is not None:
        spec = resolve_paths(spec, base_dir)
    _check_catalogue(spec, where)
    return spec


def _check_catalogue(spec: PlanSpec, where: str) -> None:
    from greensim.assembly.prepare import draft_with_vocab
    from greensim.base.errors import ProfileError
    from greensim.hardware.catalog import load_catalog

    try:
        cat = load_catalog(spec.catalog.gpu_dirs, spec.catalog.model_dirs)
        cat.model(spec.model, "model")
        for i, it in enumerate(spec.inventory):
            cat.gpu(it.gpu, f"inventory.{i}.gpu")
        if spec.search.draft is not None:
            d = spec.search.draft
            draft_with_vocab(
                cat.model(d.model, "search.draft.model"), d.draft_vocab_size, "search.draft.draft_vocab_size"
            )
    except ProfileError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_plan_spec(source: Any, overrides: Dict[str, Any] | List[str] | None = None) -> PlanSpec:
    """A :class:`PlanSpec` from a YAML path, a dict or a PlanSpec, with ``--set``-style overrides."""
    if isinstance(source, PlanSpec):
        if not overrides:
            return source
        return parse_plan_spec(apply_overrides(source.model_dump(mode="json"), overrides))
    if isinstance(source, dict):
        return parse_plan_spec(apply_overrides(source, overrides or {}))
    data = load_yaml(source)
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the plan must be a YAML mapping.")
        data = apply_overrides(data, overrides)
    return parse_plan_spec(data, where=str(source), base_dir=Path(source).resolve().parent)
