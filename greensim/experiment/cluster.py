"""Experiment schema, ``cluster`` section: instance groups, links, speculative decoding, disaggregation, aging, scheduler."""

from __future__ import annotations

import difflib
from typing import Any, Dict, List, Literal, Optional

from pydantic import Field, model_validator
from typing_extensions import Annotated

from greensim.experiment.acceptance import acceptance_entry
from greensim.experiment.model import StrictModel
from greensim.experiment.quantization import Quantization

#: a guard, not a physical limit: every instance is simulated with its own state and events, so a
#: group of 1e9 (a typo or a unit slip) would exhaust memory before the first request
MAX_INSTANCES = 100_000


# ------------------------------------------------------------------ cluster
class InstanceGroup(StrictModel):
    """``count`` identical instances, each ``tp x pp`` GPUs of one type serving the model."""

    gpu: str = Field(description="GPU type name from the catalogue, e.g. A100-80GB")
    tp: int = Field(
        1, ge=1, le=64, description="tensor-parallel degree = GPUs per pipeline stage (per instance when pp = 1)"
    )
    pp: int = Field(
        1,
        ge=1,
        le=64,
        description="pipeline-parallel stages (greensim.hardware.pipeline): the model's layers split over pp "
        "stages of tp GPUs each, so an instance uses tp x pp GPUs; default 1 (no pipeline)",
    )
    pp_microbatches: Optional[int] = Field(
        None,
        ge=1,
        le=4096,
        description="pp > 1: micro-batches an iteration's batch is split into; the pipeline bubble is "
        "(pp - 1) / (m + pp - 1) of the compute; default pp (vLLM: pp virtual engines, one batch in flight per stage)",
    )
    pp_link: Optional["StageLink"] = Field(
        None,
        description="pp > 1: the link between consecutive stages; default the GPU catalogue's interconnect "
        "(NVLink generation, else PCIe generation) at its line rate, no per-send latency",
    )
    count: int = Field(
        1,
        ge=1,
        le=MAX_INSTANCES,
        description="number of instances in this group (at most 100,000: each is simulated, with its own state)",
    )
    name: Optional[str] = Field(None, description="label; defaults to '<gpu>x<tp>' ('<gpu>x<tp>-pp<pp>' with pp > 1)")
    max_batch_size: int = Field(256, ge=1, description="max requests per iteration (vLLM max_num_seqs default 256)")
    max_batched_tokens: int = Field(8192, ge=1, description="max tokens per iteration [tokens]")
    chunked_prefill: bool = Field(
        False, description="mix prompt chunks with decode tokens (Sarathi/vLLM chunked prefill)"
    )
    block_tokens: int = Field(16, ge=1, description="tokens per KV block (vLLM default 16)")
    memory_reserve_frac: float = Field(
        0.1, ge=0, lt=1, description="GPU memory kept out of weights+KV (vLLM gpu_memory_utilization 0.9)"
    )
    watermark_frac: float = Field(
        0.01, ge=0, lt=1, description="KV blocks kept free at admission (vLLM watermark 0.01)"
    )
    age_years: float = Field(
        0.0, ge=0, description="GPU age at simulated t = 0 [years]; drives aging and embodied schemes"
    )
    aging: Optional["Aging"] = Field(None, description="age-dependent failures and degradation (off by default)")
    site: Optional[str] = Field(
        None,
        description="data-centre site (a name in carbon.sites) whose PUE prices this "
        "group's energy (and its DSD draft GPU's); default: carbon.pue",
    )

    power_cap_frac: Optional[float] = Field(
        None,
        gt=0,
        le=1,
        description="per-GPU power cap as a fraction of TDP (nvidia-smi -pl; greensim.hardware.powercap): "
        "iterations that would draw more run at a lower SM clock (compute-bound time x 1/f); "
        "needs performance.model kernel; default none (uncapped)",
    )
    quantization: Optional[Quantization] = Field(
        None,
        description="this group's quantised weights / activations / KV cache (replaces the top-level quantization); "
        "default: the top-level one",
    )
    expert_parallel: bool = Field(
        False,
        description="mixture-of-experts models: spread whole experts over the tp GPUs (all-to-all dispatch and "
        "combine) instead of splitting every expert (tensor parallel); default false",
    )
    prefix_caching: bool = Field(
        False,
        description="automatic prefix caching (vLLM enable_prefix_caching): requests whose leading prefix "
        "blocks (workload prefix identity: Mooncake hash_ids, workload.prefix, workload.sessions) are cached "
        "here reuse their KV and prefill only the rest; unreferenced blocks are evicted least-recently-used "
        "first when memory runs out. Not with role decode or speculative decoding. Default false",
    )
    role: Literal["colocated", "prefill", "decode"] = Field(
        "colocated",
        description="colocated (prefill and decode), or prefill / decode for prefill-decode disaggregation (DPD)",
    )
    speculative: Optional["Speculative"] = Field(
        None, description="speculative decoding (draft model on this GPU or on draft_gpu, DSD)"
    )

    @model_validator(mode="after")
    def _speculative_mode(self):
        if self.speculative is not None and self.role != "colocated":
            raise ValueError(f"speculative decoding needs role colocated (got role {self.role})")
        if self.speculative is not None and self.speculative.pipeline and self.chunked_prefill:
            raise ValueError(
                "speculative.pipeline with chunked_prefill is not modelled (the draft GPU's pre-draft and "
                "its prefill of prompt chunks would contend); drop one of them"
            )
        if self.prefix_caching and self.speculative is not None:
            raise ValueError(
                "prefix_caching is not modelled with speculative decoding (the draft model's KV would need "
                "its own cache); drop one of them"
            )
        if self.prefix_caching and self.role == "decode":
            raise ValueError(
                "prefix_caching on a decode group: with disaggregation the cache lives on the prefill "
                "instances (a hit saves prefill compute; the full KV is still sent); set it on the prefill group"
            )
        if self.pp > 1 and self.speculative is not None:
            raise ValueError(
                "pp > 1 with speculative decoding is not modelled (a draft model and its verify pass "
                "over a pipeline); set pp: 1 or drop speculative"
            )
        if self.power_cap_frac is not None and self.speculative is not None:
            raise ValueError(
                "power_cap_frac is not supported with speculative decoding yet (the draft model's "
                "clock is not modelled under the cap); drop one of them"
            )
        return self


class LinkConfig(StrictModel):
    """The link KV caches (DPD) or draft tokens (DSD) travel over."""

    kind: Optional[str] = Field(
        None,
        description="link type (greensim.core.link.LINK_TYPES: pcie_gen3_x16, pcie_gen4_x16, pcie_gen5_x16, nvlink_v100, nvlink_a100, nvlink_h100, nvlink_b200, ethernet_10g, ethernet_25g, ethernet_100g, infiniband_hdr, infiniband_ndr, infiniband_xdr); or set bandwidth_gbs",
    )
    bandwidth_gbs: Optional[float] = Field(
        None,
        gt=0,
        allow_inf_nan=True,
        description="explicit bandwidth [GB/s = 1e9 bytes/s] instead of kind; .inf allowed",
    )
    efficiency_frac: float = Field(
        1.0, gt=0, le=1, description="fraction of the line rate achieved (protocol overhead); 1 = line rate"
    )
    latency_s: float = Field(
        ge=0, description="per-transfer latency [s]; required: depends on NIC, switch and software stack"
    )
    scope: Literal["shared", "per_prefill", "per_decode", "per_pair"] = Field(
        "per_pair",
        description="which transfers share a link's bandwidth: all, per prefill instance (its NIC), per decode instance, per (prefill, decode) pair",
    )

    @model_validator(mode="after")
    def _kind_or_bandwidth(self):
        from greensim.core.link import LINK_TYPES

        if (self.kind is None) == (self.bandwidth_gbs is None):
            raise ValueError("set exactly one of kind or bandwidth_gbs")
        if self.kind is not None and self.kind not in LINK_TYPES:
            close = difflib.get_close_matches(self.kind, list(LINK_TYPES), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown link kind '{self.kind}' (valid: {', '.join(sorted(LINK_TYPES))}).{hint}")
        return self


class StageLink(StrictModel):
    """The link between consecutive pipeline stages (``pp > 1``): one send per stage boundary."""

    kind: Optional[str] = Field(
        None,
        description="link type (greensim.core.link.LINK_TYPES, e.g. nvlink_h100, pcie_gen4_x16); or set bandwidth_gbs",
    )
    bandwidth_gbs: Optional[float] = Field(
        None, gt=0, description="explicit bandwidth per direction [GB/s = 1e9 bytes/s] instead of kind"
    )
    efficiency_frac: float = Field(
        1.0, gt=0, le=1, description="fraction of the line rate achieved (protocol overhead); 1 = line rate"
    )
    latency_s: float = Field(0.0, ge=0, description="latency of each stage-to-stage send [s]; default 0 (not modelled)")

    @model_validator(mode="after")
    def _kind_or_bandwidth(self):
        from greensim.core.link import LINK_TYPES

        if (self.kind is None) == (self.bandwidth_gbs is None):
            raise ValueError("set exactly one of kind or bandwidth_gbs")
        if self.kind is not None and self.kind not in LINK_TYPES:
            close = difflib.get_close_matches(self.kind, list(LINK_TYPES), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown link kind '{self.kind}' (valid: {', '.join(sorted(LINK_TYPES))}).{hint}")
        return self


class Speculative(StrictModel):
    """Speculative decoding: a draft model proposes gamma tokens, the target verifies them."""

    draft_model: str = Field(
        description="draft model name from the catalogue; same tokenizer as the target (its tokenizer family where both catalogue entries name one, else the same vocab_size)"
    )
    draft_gpu: Optional[str] = Field(
        None, description="GPU type running the draft (DSD split, with link); omit to run it on the target's GPU"
    )
    alpha: Optional[float] = Field(
        None,
        ge=0,
        lt=1,
        description="per-token acceptance probability of draft tokens in [0, 1); exactly one of alpha, alpha_by_position or acceptance is required: it depends on the draft/target pair and the workload (Leviathan et al. 2023 report 0.5-0.9)",
    )
    acceptance: Optional[str] = Field(
        None,
        description="name of a cited entry of profiles/acceptance.yaml (alpha per draft/target pair and task, "
        "e.g. llamacpp-llama3-8b-70b-mixed; assumed-0.7 is the marked assumption); instead of alpha. "
        "List them with greensim.api.catalog.acceptance_table()",
    )
    alpha_by_position: Optional[List[Annotated[float, Field(ge=0, lt=1)]]] = Field(
        None,
        description="per-position acceptance a_1..a_gamma in [0, 1) (draft token k accepted with a_k given the earlier ones were); instead of alpha",
    )
    gamma: int = Field(ge=1, le=32, description="draft tokens per iteration (the maximum, for adaptive gamma policies)")
    gamma_policy: str = Field("fixed", description="gamma policy (fixed, goodput)")
    probabilities: Literal["full_vocab", "top_k"] = Field(
        "full_vocab", description="draft probabilities sent per draft token: the whole vocabulary or the top_k entries"
    )
    top_k: Optional[int] = Field(None, ge=1, description="entries per draft token when probabilities is top_k")
    draft_vocab_size: Optional[int] = Field(
        None,
        ge=1,
        description="tokens the draft proposes from (FR-Spec, Zhao et al. 2025, arXiv 2502.14856: its LM head "
        "restricted to the most frequent tokens, e.g. 32768 of Llama-3's 128256); shrinks the draft's LM-head "
        "bytes and FLOPs and the full_vocab probabilities sent per draft token; acceptance stays alpha "
        "(lower it for the tokens the draft can no longer propose). Default: the draft's whole vocabulary",
    )
    token_id_bytes: int = Field(4, ge=1, description="bytes per token id (int32, paper.md section 5)")
    link: Optional[LinkConfig] = Field(None, description="link between draft and target GPU; required with draft_gpu")
    draft_gpu_age_years: float = Field(
        0.0, ge=0, description="age of the draft GPU at t = 0 [years] (its embodied scheme, e.g. sunk, depends on it)"
    )
    pipeline: bool = Field(
        False,
        description="pipelined drafting (needs draft_gpu): the draft GPU drafts step k+1 while the target "
        "verifies step k, assuming all of step k's tokens accepted; a request with a rejected token redrafts "
        "after the verify (the wasted pre-draft is charged to the draft GPU). Default false: draft, link, "
        "verify one after the other",
    )
    draft_aging: Optional["Aging"] = Field(
        None,
        description="age-dependent failures and degradation of the draft GPU (at draft_gpu_age_years); "
        "needs draft_gpu (a draft on the target's GPU fails and ages with it); off by default",
    )
    on_draft_failure: Literal["fallback", "stall"] = Field(
        "fallback",
        description="when the draft GPU fails: fallback (the target decodes plain autoregressively, one token "
        "per pass, until the repair) or stall (the instance waits for the repair); either way the draft KV of "
        "the running batch is rebuilt by one draft prefill after the repair",
    )

    @model_validator(mode="after")
    def _consistent(self):
        if sum(x is not None for x in (self.alpha, self.alpha_by_position, self.acceptance)) != 1:
            raise ValueError("set exactly one of alpha, alpha_by_position or acceptance")
        if self.acceptance is not None:
            acceptance_entry(self.acceptance, self.draft_model)  # the target is checked at assembly
        if self.alpha_by_position is not None and len(self.alpha_by_position) != self.gamma:
            raise ValueError(
                f"alpha_by_position has {len(self.alpha_by_position)} entries; it needs gamma = {self.gamma}"
            )
        if (self.draft_gpu is None) != (self.link is None):
            raise ValueError(
                "set draft_gpu and link together (split draft/target) or neither (draft on the target's GPU)"
            )
        if self.pipeline and self.draft_gpu is None:
            raise ValueError("pipeline needs draft_gpu and link (drafting overlaps verifying on another GPU)")
        if self.draft_aging is not None and self.draft_gpu is None:
            raise ValueError(
                "draft_aging needs draft_gpu: a draft on the target's GPU ages and fails with the target "
                "(use the group's aging)"
            )
        if (self.probabilities == "top_k") != (self.top_k is not None):
            raise ValueError("top_k is required with probabilities: top_k, and only then")
        return self

    @property
    def alpha_value(self) -> Optional[float]:
        """The scalar acceptance: ``alpha``, or the named entry's; None with ``alpha_by_position``."""
        if self.acceptance is not None:
            return acceptance_entry(self.acceptance, self.draft_model).alpha
        return self.alpha


class Disaggregation(StrictModel):
    """Prefill-decode disaggregation (DPD): how prefilled requests reach decode instances."""

    decode_router: str = Field(
        "least_loaded", description="decode-routing policy (round_robin, least_loaded, kv_capacity_aware)"
    )
    link: LinkConfig
    layerwise: bool = Field(
        False,
        description="send KV layer by layer during the prefill (decode KV reserved at the prefill's start when possible)",
    )
    on_decode_failure: Literal["reprefill", "resend"] = Field(
        "reprefill",
        description="when a decode instance fails (GPU aging), its requests lost their KV: reprefill (prompt and "
        "delivered tokens prefilled again on a prefill instance, as vLLM recomputes) or resend (the prefill "
        "instance that sent the KV kept a copy in host memory, capacity not modelled, until the request "
        "completes, and re-sends it after prefilling only the tokens generated since; falls back to reprefill "
        "if that instance has failed since)",
    )


class WeibullFailures(StrictModel):
    """Failures with a Weibull hazard h(a) = (k/lambda)(a/lambda)^(k-1) in GPU age a.

    No defaults: we found no published Weibull fit for datacentre GPUs in our sources
    (research/carbon.md), so shape and scale must be given by the experiment.
    """

    shape_k: float = Field(gt=0, description="Weibull shape k [-] (k > 1: hazard rises with age)")
    scale_years: float = Field(gt=0, description="Weibull scale lambda [years]")
    repair_s: float = Field(gt=0, description="time a failed instance stays down [s]")
    repair_dist: Literal["constant", "exponential"] = Field(
        "constant", description="repair time: constant, or exponential with mean repair_s"
    )
    repair_model: Literal["minimal", "renewal"] = Field(
        "minimal",
        description="after repair the hazard continues at the current age (minimal repair, Barlow & "
        "Hunter 1960) or restarts at age 0 (renewal, a replaced GPU)",
    )


class Aging(StrictModel):
    """Age-dependent effects of one instance group; each is off unless given (no cited defaults exist)."""

    failures: Optional[WeibullFailures] = None
    throughput_loss_frac_per_year: float = Field(
        0.0, ge=0, lt=1, description="iteration slowdown: time x 1/(1 - r x age) [1/year]"
    )
    power_increase_frac_per_year: float = Field(0.0, ge=0, description="power x (1 + r x age) [1/year]")


InstanceGroup.model_rebuild()
Speculative.model_rebuild()


class SchedulerClass(StrictModel):
    """A request class of the greenllm scheduler: requests matching every condition given (none = all)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="class name (appears in the plan history)")
    max_input_tokens: Optional[int] = Field(None, ge=1, description="requests with at most this many input tokens")
    slo_class: Optional[str] = Field(
        None,
        description="requests whose trace slo_class is this (a name in slo.classes, or '' for requests without one)",
    )


class Scheduler(StrictModel):
    """Per-request SLO-aware carbon scheduling (router greenllm): each request class goes to the mode
    (a set of instance groups) the current plan assigns it; the plan is re-made every
    replan_interval_s from the rate per class seen over window_s and the grid intensity."""

    classes: List[SchedulerClass] = Field(
        default_factory=lambda: [SchedulerClass(name="all")],
        min_length=1,
        description="request classes, matched in order (first match); default one class 'all'",
    )
    modes: Optional[Dict[str, List[int]]] = Field(
        None,
        description="mode name -> indices of cluster.instances forming it (decode groups join the mode "
        "holding the prefill groups); default one mode per serving mode: colocated, dpd, dsd, spec",
    )
    replan_interval_s: float = Field(gt=0, description="time between re-plans [s]; required (a policy choice)")
    window_s: float = Field(gt=0, description="sliding window of the observed arrival rate per class [s]; required")
    switch_s: float = Field(
        ge=0,
        description="warm-up of a mode that gets traffic again after having none "
        "(role switch / model load) [s]; required: no cited value (it depends on the "
        "model size, storage and serving stack)",
    )
    hysteresis_frac: float = Field(
        0.0,
        ge=0,
        description="switch only if the predicted carbon saving exceeds this "
        "fraction of the current plan's [-]; 0 = always take the best",
    )
    min_dwell_s: float = Field(0.0, ge=0, description="a plan holds at least this long before another switch [s]")
    inner_router: Literal["round_robin", "join_shortest_queue", "least_kv", "power_of_two"] = Field(
        "join_shortest_queue", description="load balancer among the instances of a mode"
    )
    objective: Literal["cluster", "attributed"] = Field(
        "cluster",
        description="cluster: predicted carbon of every provisioned instance (idle and embodied of "
        "modes without traffic included, as the simulator charges); attributed: only modes with traffic "
        "(their GPUs' carbon over their utilisation, as per-mode profiles do: GPUs without traffic are "
        "assumed released to other work)",
    )
    slo_headroom_frac: float = Field(
        1.0,
        gt=0,
        le=1,
        description="a mode is feasible if its predicted mean TTFT "
        "and TPOT are within this fraction of the SLO [-]; 1 = the SLO itself",
    )
    max_utilization_frac: float = Field(
        1.0,
        gt=0,
        le=1,
        description="a mode is feasible only below this "
        "predicted busy fraction of every GPU role [-]; 1 = stability only",
    )


class Cluster(StrictModel):
    instances: List[InstanceGroup] = Field(min_length=1)
    router: str = Field(
        "round_robin",
        description="router name (round_robin, join_shortest_queue, least_kv, power_of_two, carbon_aware, greenllm, "
        "class_affinity)",
    )
    router_options: Dict[str, Any] = Field(
        default_factory=dict,
        description="keyword options of the router, e.g. carbon_aware: {inner: join_shortest_queue}",
    )
    disaggregation: Optional[Disaggregation] = Field(
        None, description="required when an instance group has role prefill or decode"
    )
    scheduler: Optional[Scheduler] = Field(None, description="per-request carbon scheduling; needs router greenllm")

    @model_validator(mode="after")
    def _scheduler_router(self):
        if self.scheduler is not None and self.router != "greenllm":
            raise ValueError(
                f"cluster.scheduler is set but cluster.router is '{self.router}'; the scheduler is "
                f"the greenllm router's: set router: greenllm (or drop cluster.scheduler)"
            )
        if self.router == "greenllm" and self.scheduler is None:
            raise ValueError("router greenllm needs cluster.scheduler (at least replan_interval_s, window_s, switch_s)")
        return self

    @model_validator(mode="after")
    def _roles(self):
        roles = {g.role for g in self.instances}
        if ("prefill" in roles) != ("decode" in roles):
            have = "prefill" if "prefill" in roles else "decode"
            need = "decode" if have == "prefill" else "prefill"
            raise ValueError(
                f"instances has role '{have}' but none with role '{need}'; "
                f"DPD needs both (or set every role to colocated)"
            )
        if "prefill" in roles and self.disaggregation is None:
            raise ValueError(
                "instances have prefill/decode roles: add cluster.disaggregation with decode_router and link"
            )
        return self


class Reconfigure(StrictModel):
    """Per-window reconfiguration (``greensim replan``): at each window boundary pick, among named
    deployments of the same GPUs, the lowest predicted carbon per request that meets the SLO."""

    window_s: float = Field(gt=0, description="window length [s]; the deployment is re-chosen at each boundary")
    deployments: Dict[str, Cluster] = Field(
        min_length=1, description="name -> a cluster section (each one serving mode: colocated, DPD or DSD)"
    )
    switch_s: float = Field(
        ge=0,
        description="time a switch takes (role switch / model load) during which the "
        "deployment serves nothing [s]; required: no cited value",
    )
    initial: Optional[str] = Field(
        None, description="deployment of the first window (no rate observed yet); default: the first listed"
    )
    hysteresis_frac: float = Field(
        0.0, ge=0, description="switch only if the predicted saving exceeds this fraction [-]"
    )
    min_dwell_s: float = Field(0.0, ge=0, description="a deployment holds at least this long before a switch [s]")
    slo_headroom_frac: float = Field(
        1.0, gt=0, le=1, description="feasible if predicted mean TTFT and TPOT are within this fraction of the SLO [-]"
    )
    max_utilization_frac: float = Field(
        1.0, gt=0, le=1, description="feasible only below this predicted busy fraction of every GPU role [-]"
    )
    predictor: Literal["theory", "simulate"] = Field(
        "theory",
        description="how each deployment is scored at a boundary: 'theory' (greensim.carbon.theory closed forms "
        "at the observed rate and mean lengths; feasible by slo_headroom_frac / max_utilization_frac) or 'simulate' "
        "(a short simulation of predictor_requests requests resampled from the previous window at its rate; feasible "
        "if its SLO attainment >= attainment_target)",
    )
    predictor_requests: int = Field(
        300,
        ge=1,
        description="requests per short simulation of predictor 'simulate' "
        "(default: the planner's search.short_requests)",
    )
    attainment_target: float = Field(
        0.9,
        gt=0,
        le=1,
        description="predictor 'simulate': feasible if the predicted "
        "fraction of requests meeting both SLOs is at least this (paper.md section 3: "
        "90 % attainment)",
    )
    predictor_round_frac: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="predictor 'simulate': rate and intensity are "
        "rounded to a geometric grid of this relative step and simulated at the grid "
        "value, scores cached per (deployment, rate, intensity); 0: no rounding. A "
        "cache granularity, not a measurement",
    )

    @model_validator(mode="after")
    def _initial(self):
        if self.initial is not None and self.initial not in self.deployments:
            raise ValueError(f"initial '{self.initial}' is not a deployment (have: {', '.join(self.deployments)})")
        return self
