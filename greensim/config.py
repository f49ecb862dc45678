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
    path: Optional[str] = Field(None, description="trace file (.csv, .parquet, .jsonl); relative to the experiment file")
    format: str = Field("auto", description="trace reader name, or 'auto' from the file suffix")
    max_requests: Optional[int] = Field(None, ge=1, description="keep only the first N requests")
    time_scale: float = Field(1.0, gt=0, description="multiply arrival times by this factor")
    # issue 5: named traces, column mapping, experiment options
    name: Optional[str] = Field(None, description="a named trace (greensim trace list), instead of path")
    data_dir: Optional[str] = Field(None, description="folder holding named traces; default $GREENSIM_TRACE_DIR "
                                    "or ../shared/data/traces")
    columns: Dict[str, str] = Field(default_factory=dict, description="format 'columns': greensim column -> "
                                    "file column, e.g. {arrival_time_s: ts, input_tokens: prompt_len}")
    time_unit: Literal["s", "ms", "us", "ns", "datetime"] = Field(
        "s", description="unit of the file's time column (format 'columns'); 'datetime' parses timestamps")
    select: Dict[str, str] = Field(default_factory=dict, description="keep rows whose (normalised) column equals "
                                   "the value, e.g. {model: ChatGPT}")
    include_failed: bool = Field(False, description="BurstGPT: keep failed requests (0 response tokens)")
    window_start_s: Optional[float] = Field(None, ge=0, description="keep arrivals at or after this trace time [s]")
    window_end_s: Optional[float] = Field(None, gt=0, description="keep arrivals before this trace time [s]")
    rate_scale: float = Field(1.0, gt=0, description="multiply the arrival rate by k (arrival times / k)")
    min_input_tokens: Optional[int] = Field(None, ge=0, description="drop requests with fewer input tokens")
    max_input_tokens: Optional[int] = Field(None, ge=1, description="drop requests with more input tokens")
    min_output_tokens: Optional[int] = Field(None, ge=0, description="drop requests with fewer output tokens")
    max_output_tokens: Optional[int] = Field(None, ge=1, description="drop requests with more output tokens")
    max_total_tokens: Optional[int] = Field(None, ge=2, description="drop requests whose input+output exceeds this")
    repeat_until_s: Optional[float] = Field(None, gt=0, description="tile the (windowed, scaled) trace until "
                                            "this simulated time [s]")
    drop_invalid: bool = Field(False, description="drop rows with missing/invalid values (and report how many) "
                               "instead of failing")
    arrivals: Optional["Arrivals"] = Field(None, description="generate arrival times (needed for length-only "
                                           "traces; replaces a trace's own times)")

    @model_validator(mode="after")
    def _source(self):
        if (self.path is None) == (self.name is None):
            raise ValueError("set exactly one of path (a file) or name (a named trace, see `greensim trace list`)")
        if self.window_start_s is not None and self.window_end_s is not None and \
                self.window_end_s <= self.window_start_s:
            raise ValueError(f"window_end_s ({self.window_end_s}) must be > window_start_s ({self.window_start_s})")
        if self.time_scale != 1.0 and self.rate_scale != 1.0:
            raise ValueError("set time_scale or rate_scale, not both (rate_scale k = time_scale 1/k)")
        return self


# --- arrival processes, joint length models, synthetic workloads (issue 5) -------------
class PoissonArrivals(_Base):
    """Homogeneous Poisson arrivals (exponential inter-arrival gaps, CV = 1)."""
    process: Literal["poisson"]
    rate_rps: float = Field(gt=0, description="mean arrival rate [requests/s]")


class GammaArrivals(_Base):
    """Renewal process with Gamma inter-arrival gaps: CV > 1 is burstier than Poisson."""
    process: Literal["gamma"]
    rate_rps: float = Field(gt=0, description="mean arrival rate [requests/s]")
    cv: float = Field(gt=0, description="coefficient of variation of the inter-arrival gaps (1 = Poisson)")


class DiurnalArrivals(_Base):
    """Time-varying rate mean*(1 + a*cos(2*pi*(t - peak_s)/period_s)), a from peak_to_trough."""
    process: Literal["diurnal"]
    mean_rate_rps: float = Field(gt=0, description="time-averaged arrival rate [requests/s]")
    peak_to_trough: float = Field(1.45, ge=1, description="ratio of the highest to the lowest rate; default 1.45, "
                                  "the ratio of the busiest to the quietest hourly mean of ServeGen m-large "
                                  "(shared/research/traces.md section 4)")
    peak_s: float = Field(19 * 3600.0, ge=0, description="time of the peak within the period [s]; default 19:00, "
                          "ServeGen m-large's busiest hour (shared/research/traces.md section 4)")
    period_s: float = Field(86400.0, gt=0, description="period of the cycle [s] (one day)")
    start_s: float = Field(0.0, ge=0, description="time of day of simulated t=0 [s]")
    cv: float = Field(1.0, gt=0, description="inter-arrival CV in operational time (1 = Poisson)")
    step_s: float = Field(60.0, gt=0, description="the cosine is held constant over steps of this length [s]")


class RateSeriesArrivals(_Base):
    """Piecewise-constant rate: rates_rps[i] holds on [i*bin_s, (i+1)*bin_s); repeats periodically."""
    process: Literal["rate_series"]
    rates_rps: List[float] = Field(min_length=1, description="rate of each bin [requests/s], >= 0")
    bin_s: float = Field(gt=0, description="length of each bin [s]")
    rate_scale: float = Field(1.0, gt=0, description="multiply every rate by this factor")
    mean_rate_rps: Optional[float] = Field(None, gt=0, description="rescale the series to this mean rate [requests/s]")
    start_s: float = Field(0.0, ge=0, description="offset into the series of simulated t=0 [s]")
    cv: float = Field(1.0, gt=0, description="inter-arrival CV in operational time (1 = Poisson)")


class ServeGenArrivals(_Base):
    """Rate series of one model of the ServeGen per-10-minute profile (Alibaba Bailian)."""
    process: Literal["servegen"]
    path: Optional[str] = Field(None, description="servegen_rate_profile_10min.csv; default: found by name "
                                "like a named trace (workload data_dir, $GREENSIM_TRACE_DIR, ../shared/data/traces)")
    model: str = Field("m-large", description="ServeGen model: m-large, m-mid, m-small, deepseek-r1, mm-image; "
                       "default m-large (no collection gaps, shared/research/traces.md section 4)")
    rate_scale: float = Field(1.0, gt=0, description="multiply every rate by this factor")
    mean_rate_rps: Optional[float] = Field(None, gt=0, description="rescale the profile so its mean over all its "
                                           "windows (14 days for language models) is this rate [requests/s]")
    start_s: float = Field(0.0, ge=0, description="offset into the profile of simulated t=0 [s] (0 = midnight of day 1)")
    cv: float = Field(1.0, gt=0, description="inter-arrival CV in operational time; default 1: a superposition of "
                      "many independent clients tends to Poisson (Palm-Khintchine theorem)")


class FittedArrivals(_Base):
    """Gamma renewal arrivals with the mean rate and inter-arrival CV fitted to a named trace."""
    process: Literal["fitted"]
    trace: str = Field(description="name of a fitted trace (traces/fitted/<name>.yaml)")
    rate_rps: Optional[float] = Field(None, gt=0, description="mean rate [requests/s]; default: the trace's")
    cv: Optional[float] = Field(None, gt=0, description="inter-arrival CV; default: the trace's")


Arrivals = Annotated[Union[PoissonArrivals, GammaArrivals, DiurnalArrivals, RateSeriesArrivals,
                           ServeGenArrivals, FittedArrivals], Field(discriminator="process")]


class IndependentLengths(_Base):
    """Input and output lengths drawn independently from two distributions."""
    kind: Literal["independent"]
    input_tokens: LengthDist
    output_tokens: LengthDist


class FittedLengths(_Base):
    """Joint input/output lengths from a model fitted to a named trace (marginal quantiles + empirical copula)."""
    kind: Literal["fitted"]
    trace: str = Field(description="name of a fitted trace (traces/fitted/<name>.yaml), e.g. azure_llm_2023_conv")


Lengths = Annotated[Union[IndependentLengths, FittedLengths], Field(discriminator="kind")]


class SyntheticWorkload(_Base):
    """Generated requests: an arrival process and a length model; stops at n_requests or duration_s."""
    kind: Literal["synthetic"]
    arrivals: Arrivals
    lengths: Lengths
    n_requests: Optional[int] = Field(None, ge=1, description="number of requests to generate")
    duration_s: Optional[float] = Field(None, gt=0, description="generate arrivals in [0, duration_s) [s]")

    @model_validator(mode="after")
    def _stop(self):
        if self.n_requests is None and self.duration_s is None:
            raise ValueError("set n_requests or duration_s (or both: whichever comes first)")
        return self


Workload = Annotated[Union[PoissonWorkload, TraceWorkload, SyntheticWorkload], Field(discriminator="kind")]
TraceWorkload.model_rebuild()   # resolve the forward reference to Arrivals


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
    age_years: float = Field(0.0, ge=0, description="GPU age at simulated t = 0 [years]; drives aging and embodied schemes")
    aging: Optional["Aging"] = Field(None, description="age-dependent failures and degradation (off by default)")
    site: Optional[str] = Field(None, description="data-centre site (a name in carbon.sites) whose PUE prices this "
                                "group's energy (and its DSD draft GPU's); default: carbon.pue")

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
    draft_gpu_age_years: float = Field(0.0, ge=0, description="age of the draft GPU at t = 0 [years] (its embodied scheme, e.g. sunk, depends on it)")

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


class WeibullFailures(_Base):
    """Failures with a Weibull hazard h(a) = (k/lambda)(a/lambda)^(k-1) in GPU age a.

    No defaults: we found no published Weibull fit for datacentre GPUs in our sources
    (research/carbon.md), so shape and scale must be given by the experiment.
    """
    shape_k: float = Field(gt=0, description="Weibull shape k [-] (k > 1: hazard rises with age)")
    scale_years: float = Field(gt=0, description="Weibull scale lambda [years]")
    repair_s: float = Field(gt=0, description="time a failed instance stays down [s]")
    repair_dist: Literal["constant", "exponential"] = Field("constant", description="repair time: constant, or exponential with mean repair_s")
    repair_model: Literal["minimal", "renewal"] = Field(
        "minimal", description="after repair the hazard continues at the current age (minimal repair, Barlow & "
        "Hunter 1960) or restarts at age 0 (renewal, a replaced GPU)")


class Aging(_Base):
    """Age-dependent effects of one instance group; each is off unless given (no cited defaults exist)."""
    failures: Optional[WeibullFailures] = None
    throughput_loss_frac_per_year: float = Field(0.0, ge=0, lt=1, description="iteration slowdown: time x 1/(1 - r x age) [1/year]")
    power_increase_frac_per_year: float = Field(0.0, ge=0, description="power x (1 + r x age) [1/year]")



InstanceGroup.model_rebuild()


class SchedulerClass(_Base):
    """A request class of the greenllm scheduler: requests matching every condition given (none = all)."""
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="class name (appears in the plan history)")
    max_input_tokens: Optional[int] = Field(None, ge=1, description="requests with at most this many input tokens")
    slo_class: Optional[str] = Field(None, description="requests whose trace slo_class is this (a name in slo.classes, "
                                     "or '' for requests without one)")


class Scheduler(_Base):
    """Per-request SLO-aware carbon scheduling (router greenllm): each request class goes to the mode
    (a set of instance groups) the current plan assigns it; the plan is re-made every
    replan_interval_s from the rate per class seen over window_s and the grid intensity."""
    classes: List[SchedulerClass] = Field(default_factory=lambda: [SchedulerClass(name="all")], min_length=1,
                                          description="request classes, matched in order (first match); "
                                          "default one class 'all'")
    modes: Optional[Dict[str, List[int]]] = Field(
        None, description="mode name -> indices of cluster.instances forming it (decode groups join the mode "
        "holding the prefill groups); default one mode per serving mode: colocated, dpd, dsd, spec")
    replan_interval_s: float = Field(gt=0, description="time between re-plans [s]; required (a policy choice)")
    window_s: float = Field(gt=0, description="sliding window of the observed arrival rate per class [s]; required")
    switch_s: float = Field(ge=0, description="warm-up of a mode that gets traffic again after having none "
                            "(role switch / model load) [s]; required: no cited value (it depends on the "
                            "model size, storage and serving stack)")
    hysteresis_frac: float = Field(0.0, ge=0, description="switch only if the predicted carbon saving exceeds this "
                                   "fraction of the current plan's [-]; 0 = always take the best")
    min_dwell_s: float = Field(0.0, ge=0, description="a plan holds at least this long before another switch [s]")
    inner_router: Literal["round_robin", "join_shortest_queue", "least_kv", "power_of_two"] = Field(
        "join_shortest_queue", description="load balancer among the instances of a mode")
    objective: Literal["cluster", "attributed"] = Field(
        "cluster", description="cluster: predicted carbon of every provisioned instance (idle and embodied of "
        "modes without traffic included, as the simulator charges); attributed: only modes with traffic "
        "(their GPUs' carbon over their utilisation, as per-mode profiles do: GPUs without traffic are "
        "assumed released to other work)")
    slo_headroom_frac: float = Field(1.0, gt=0, le=1, description="a mode is feasible if its predicted mean TTFT "
                                     "and TPOT are within this fraction of the SLO [-]; 1 = the SLO itself")
    max_utilization_frac: float = Field(1.0, gt=0, le=1, description="a mode is feasible only below this "
                                        "predicted busy fraction of every GPU role [-]; 1 = stability only")


class Cluster(_Base):
    instances: List[InstanceGroup] = Field(min_length=1)
    router: str = Field("round_robin", description="router name (round_robin, join_shortest_queue, least_kv, "
                        "power_of_two, carbon_aware, greenllm)")
    router_options: Dict[str, Any] = Field(default_factory=dict, description="keyword options of the router, e.g. "
                                           "carbon_aware: {inner: join_shortest_queue}")
    disaggregation: Optional[Disaggregation] = Field(None, description="required when an instance group has role prefill or decode")
    scheduler: Optional[Scheduler] = Field(None, description="per-request carbon scheduling; needs router greenllm")

    @model_validator(mode="after")
    def _scheduler_router(self):
        if self.scheduler is not None and self.router != "greenllm":
            raise ValueError(f"cluster.scheduler is set but cluster.router is '{self.router}'; the scheduler is "
                             f"the greenllm router's: set router: greenllm (or drop cluster.scheduler)")
        if self.router == "greenllm" and self.scheduler is None:
            raise ValueError("router greenllm needs cluster.scheduler (at least replan_interval_s, window_s, switch_s)")
        return self

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


class SeriesIntensity(_Base):
    """Hourly (or finer) regional series; simulated t = 0 is wall-clock ``start`` in ``timezone``."""
    kind: Literal["series"]
    region: str = Field(description="zone code, e.g. US-CAL-CISO, FR, GB, PJM (see ../shared/data/carbon/PROVENANCE.md)")
    start: str = Field(description="ISO 8601 wall-clock time of simulated t = 0, e.g. 2023-06-01T08:00 (naive: read in timezone)")
    timezone: str = Field("UTC", description="IANA time zone of start, e.g. America/Los_Angeles")
    path: Optional[str] = Field(None, description="CSV (timestamp_utc, region, gco2_per_kwh[, gco2_per_kwh_direct]); "
                                "default: the shared files in ../shared/data/carbon or $GREENSIM_DATA_DIR")
    basis: Literal["lifecycle", "direct"] = Field("lifecycle", description="life-cycle (LCA) or direct (combustion) "
                                                  "factors; both files are average, not marginal, intensities")
    gap_fill: Literal["error", "linear", "ffill"] = Field("error", description="missing/NaN values: error, or fill "
                                                          "(the count is reported as intensity_n_filled)")


class DiurnalIntensity(_Base):
    """Synthetic daily cycle mean x (1 + amplitude_frac cos(2 pi (h - peak_hour)/24)); no defaults (not data)."""
    kind: Literal["diurnal"]
    mean_gco2_per_kwh: float = Field(ge=0, description="daily mean [gCO2e/kWh]")
    amplitude_frac: float = Field(ge=0, le=1, description="half of (max - min) / mean [-]")
    peak_hour: float = Field(ge=0, lt=24, description="hour of the daily maximum [h]")
    start_hour: float = Field(0.0, ge=0, lt=24, description="hour of day at simulated t = 0 [h]")


Intensity = Annotated[Union[ConstantIntensity, SeriesIntensity, DiurnalIntensity], Field(discriminator="kind")]


class HostShare(_Base):
    """The host server's embodied carbon, shared among its GPUs (no default: sources differ 4x)."""
    embodied_kgco2e: float = Field(gt=0, description="embodied carbon of one host server without GPUs [kgCO2e]; "
                                   "HPE PCF sheets give 848-3,880 kg (../shared/data/carbon/embodied_gpu.csv host rows)")
    gpus_per_host: int = Field(ge=1, description="GPUs sharing one host (e.g. 8 in an HGX/DGX server)")


class EmbodiedScheme(_Base):
    """How a GPU type's embodied carbon is amortised (paper.md 6.2: same / extended / sunk)."""
    scheme: Literal["linear", "extended", "sunk"] = Field(
        "linear", description="linear: E x T / LT whatever the age ('as if new'); extended: E x T / (LT + "
        "extended_years) (a reused GPU's life is extended); sunk: 0 once age >= LT (already amortised)")
    extended_years: Optional[float] = Field(None, gt=0, description="extra service years beyond the lifetime "
                                            "[years]; required by scheme extended")


class ForecastOpts(_Base):
    """Carbon-intensity forecasts that policies read (never future actuals unless oracle)."""
    kind: str = Field("seasonal_naive", description="forecaster name (persistence, seasonal_naive, ets)")
    horizon_h: int = Field(24, ge=1, le=168, description="forecast horizon [h]")
    lag_h: int = Field(24, ge=1, description="seasonal lag of seasonal_naive [h] (24 = same hour yesterday, 168 = last week)")
    oracle: bool = Field(False, description="give policies the future actuals instead (comparison only)")


class Site(_Base):
    """A data-centre site: its PUE, optionally its own grid intensity and its network round trip.

    Grid intensity: ``region: ZONE`` (a series reusing carbon.intensity's start, timezone, path,
    basis and gap_fill, so every site shares simulated t = 0), or ``intensity:`` (any
    carbon.intensity kind), or neither (carbon.intensity).
    """
    pue: float = Field(description="power usage effectiveness of the site [-], >= 1; no default (sites differ): "
                       "Google fleet 1.10 (2021), Meta 1.08 (2023), industry average 1.57 (Uptime 2021), "
                       "../shared/data/carbon/pue_lifetime.csv")
    region: Optional[str] = Field(None, description="grid zone of the site (e.g. FR, GB, US-CAL-CISO): an hourly "
                                  "series with carbon.intensity's start, timezone, path, basis and gap_fill "
                                  "(carbon.intensity must be kind series); default: carbon.intensity")
    intensity: Optional[Intensity] = Field(None, description="the site's own grid intensity (constant, series or "
                                           "diurnal), instead of region; default: carbon.intensity")
    rtt_s: Optional[float] = Field(None, ge=0, description="network round trip between the users' front end and "
                                   "the site [s]; no default (it depends on where users and sites are): Azure "
                                   "measured monthly mean inter-region round trips of 3-28 ms within Europe and "
                                   "5-72 ms within North America (Oct 2019, learn.microsoft.com/azure/networking/"
                                   "azure-network-latency). A request pays rtt_s/2 before it reaches the instance "
                                   "and rtt_s/2 after its first and last tokens. If any site sets it, every instance "
                                   "group needs a site that sets it")

    @model_validator(mode="after")
    def _one_intensity(self):
        if self.region is not None and self.intensity is not None:
            raise ValueError("set region (a zone reusing carbon.intensity's start/timezone) or intensity, not both")
        return self

    @field_validator("pue")
    @classmethod
    def _pue_at_least_one(cls, v: float):
        if not (v >= 1.0):
            raise ValueError(f"PUE {v} is below 1, but PUE = facility power / IT power >= 1. Use e.g. 1.1 "
                             f"(hyperscale) or 1.57 (industry average, Uptime 2021)")
        return v


class Carbon(_Base):
    intensity: Intensity = Field(default_factory=lambda: ConstantIntensity(kind="constant", gco2_per_kwh=260.7),
                                 description="default: US-CAL-CISO 2023 mean LCA intensity, Electricity Maps")
    pue: float = Field(1.1, ge=1.0, description="power usage effectiveness; default 1.1 (Chien et al. HotCarbon'23; LLMCarbon)")
    lifetime_years: float = Field(5.0, gt=0, description="GPU service lifetime [years]; default 5 (Meta, Amazon 10-K FY2022)")
    gpu_lifetime_years: Dict[str, float] = Field(default_factory=dict, description="per-GPU lifetime overrides [years]")
    gpu_embodied_kgco2e: Dict[str, float] = Field(default_factory=dict, description="per-GPU embodied overrides [kgCO2e]")
    embodied_schemes: Dict[str, EmbodiedScheme] = Field(default_factory=dict, description="per-GPU amortisation "
                                                         "scheme (default linear for every GPU)")
    host_share: Optional[HostShare] = Field(None, description="add the host server's embodied share per GPU (off by default)")
    compare_regions: List[str] = Field(default_factory=list, description="also report operational carbon of the same "
                                       "energy timeline under these regions' series (same start/timezone/basis)")
    forecast: Optional[ForecastOpts] = Field(None, description="intensity forecasts offered to policies")
    sites: Dict[str, Site] = Field(default_factory=dict, description="named sites with their own PUE; an instance "
                                   "group picks one with site: NAME (groups without one use carbon.pue)")

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
    band: Literal["pessimistic", "nominal", "optimistic"] = Field(
        "nominal", description="uncertainty band: times and powers x (1 +/- u), u from profiles/uncertainty.yaml")
    profile_dirs: List[str] = Field(default_factory=list,
                                    description="extra folders of measured profiles <GPU>/<model>_tp<N>.csv (model: profiled)")
    decode_power: Literal["constant", "utilization"] = Field(
        "constant", description="decode power of the roofline: constant (gpus.yaml decode_power_frac x TDP, "
        "splitwise-sim; the default) or utilization (idle + (TDP - idle) x (a + b u_mem + c u_compute) of the "
        "iteration's achieved bandwidth and FLOP utilisation, profiles/decode_power.yaml fitted on our H100/H200 "
        "decode measurements; an extrapolation of that shape on other GPUs). Colocated instances only; measured "
        "profiles (model: profiled) keep their measured power")


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


class Reconfigure(_Base):
    """Per-window reconfiguration (``greensim replan``): at each window boundary pick, among named
    deployments of the same GPUs, the lowest predicted carbon per request that meets the SLO."""
    window_s: float = Field(gt=0, description="window length [s]; the deployment is re-chosen at each boundary")
    deployments: Dict[str, Cluster] = Field(min_length=1, description="name -> a cluster section (each one serving "
                                            "mode: colocated, DPD or DSD)")
    switch_s: float = Field(ge=0, description="time a switch takes (role switch / model load) during which the "
                            "deployment serves nothing [s]; required: no cited value")
    initial: Optional[str] = Field(None, description="deployment of the first window (no rate observed yet); "
                                   "default: the first listed")
    hysteresis_frac: float = Field(0.0, ge=0, description="switch only if the predicted saving exceeds this fraction [-]")
    min_dwell_s: float = Field(0.0, ge=0, description="a deployment holds at least this long before a switch [s]")
    slo_headroom_frac: float = Field(1.0, gt=0, le=1, description="feasible if predicted mean TTFT and TPOT are "
                                     "within this fraction of the SLO [-]")
    max_utilization_frac: float = Field(1.0, gt=0, le=1, description="feasible only below this predicted busy "
                                        "fraction of every GPU role [-]")
    predictor: Literal["theory", "simulate"] = Field(
        "theory", description="how each deployment is scored at a boundary: 'theory' (greensim.theory closed forms "
        "at the observed rate and mean lengths; feasible by slo_headroom_frac / max_utilization_frac) or 'simulate' "
        "(a short simulation of predictor_requests requests resampled from the previous window at its rate; feasible "
        "if its SLO attainment >= attainment_target)")
    predictor_requests: int = Field(300, ge=1, description="requests per short simulation of predictor 'simulate' "
                                    "(default: the planner's search.short_requests)")
    attainment_target: float = Field(0.9, gt=0, le=1, description="predictor 'simulate': feasible if the predicted "
                                     "fraction of requests meeting both SLOs is at least this (paper.md section 3: "
                                     "90 % attainment)")
    predictor_round_frac: float = Field(0.05, ge=0, lt=1, description="predictor 'simulate': rate and intensity are "
                                        "rounded to a geometric grid of this relative step and simulated at the grid "
                                        "value, scores cached per (deployment, rate, intensity); 0: no rounding. A "
                                        "cache granularity, not a measurement")

    @model_validator(mode="after")
    def _initial(self):
        if self.initial is not None and self.initial not in self.deployments:
            raise ValueError(f"initial '{self.initial}' is not a deployment (have: {', '.join(self.deployments)})")
        return self


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
    reconfigure: Optional[Reconfigure] = Field(None, description="per-window reconfiguration among deployments "
                                               "(greensim replan); greensim run ignores it")


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
        for fname in ("dist", "kind", "process"):
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


_TAGS = ("constant", "uniform", "lognormal", "empirical", "poisson", "trace",
         "synthetic", "gamma", "diurnal", "rate_series", "servegen", "fitted", "independent", "series")


def _format_errors(exc: ValidationError, where: str, root: Optional[type] = None, noun: str = "experiment",
                   plain_value_errors: bool = False) -> str:
    """One line per validation error: dotted path, what is wrong, the fix. ``root`` is the
    validated model (default :class:`Experiment`), for the valid keys of an unknown one;
    with ``plain_value_errors`` a model validator's message stands alone (it names its fields)."""
    root = root or Experiment
    lines = []
    for e in exc.errors():
        loc = tuple(e["loc"])
        # drop discriminator tags (a tag follows a field name; a field named like a tag, e.g.
        # lengths.fitted.trace, follows a tag and stays)
        path = ".".join(str(p) for i, p in enumerate(loc)
                        if not (p in _TAGS and (i == 0 or loc[i - 1] not in _TAGS))) or "(top level)"
        val = e.get("input")
        sval = repr(val) if not isinstance(val, dict) else "{...}"
        if len(sval) > 60:
            sval = sval[:57] + "..."
        if e["type"] == "extra_forbidden":
            parent = _model_at(root, loc[:-1])
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
        elif e["type"] == "value_error" and plain_value_errors:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{msg}." if not loc else f"{path}: {msg}.")
        else:
            lines.append(f"{path}: {e['msg']} (got {sval}). Fix the value.")
    return f"{where}: invalid {noun} ({len(lines)} problem{'s' if len(lines) > 1 else ''}):\n  - " + "\n  - ".join(lines)


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
    _check_sites(exp, where)
    if base_dir is not None:
        exp = _resolve_paths(exp, base_dir)
    return exp


DEFAULT_SITE = "default"   # the site of groups without ``site``: carbon.pue


def _check_sites(exp: Experiment, where: str) -> None:
    """Every instance group's site is defined in carbon.sites; 'default' is reserved."""
    if DEFAULT_SITE in exp.carbon.sites:
        raise ConfigError(f"{where}: carbon.sites.{DEFAULT_SITE}: the name '{DEFAULT_SITE}' is reserved for groups "
                          f"without a site (they use carbon.pue). Rename the site or set carbon.pue.")
    for i, g in enumerate(exp.cluster.instances):
        if g.site is not None and g.site not in exp.carbon.sites:
            close = difflib.get_close_matches(g.site, list(exp.carbon.sites), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            have = ", ".join(sorted(exp.carbon.sites)) or "none"
            raise ConfigError(f"{where}: cluster.instances.{i}.site: unknown site '{g.site}' (carbon.sites "
                              f"defines: {have}).{hint} Add carbon.sites.{g.site}: {{pue: ...}} or fix the name.")
    timed = sorted(n for n, s in exp.carbon.sites.items() if s.rtt_s is not None)
    if timed:
        for i, g in enumerate(exp.cluster.instances):
            if g.site is None:
                raise ConfigError(f"{where}: cluster.instances.{i}.site: carbon.sites.{timed[0]} sets rtt_s (network "
                                  f"round trip), so every instance group needs a site with rtt_s; this group has no "
                                  f"site (it would pay no network delay). Add site: NAME.")
            if exp.carbon.sites[g.site].rtt_s is None:
                raise ConfigError(f"{where}: carbon.sites.{g.site}.rtt_s: required because carbon.sites.{timed[0]} "
                                  f"sets rtt_s and cluster.instances.{i} runs at site '{g.site}' (requests to it "
                                  f"would pay no network delay). Add rtt_s [s].")


def _resolve_paths(exp: Experiment, base: Path) -> Experiment:
    def fix(p: str) -> str:
        pp = Path(p).expanduser()
        return str(pp if pp.is_absolute() else (base / pp).resolve())

    wl = exp.workload
    if isinstance(wl, TraceWorkload):
        wl = wl.model_copy(update={k: fix(getattr(wl, k)) for k in ("path", "data_dir") if getattr(wl, k)})
        if isinstance(wl.arrivals, ServeGenArrivals) and wl.arrivals.path:
            wl = wl.model_copy(update={"arrivals": wl.arrivals.model_copy(update={"path": fix(wl.arrivals.path)})})
    elif isinstance(wl, SyntheticWorkload):
        upd = {}
        if isinstance(wl.arrivals, ServeGenArrivals) and wl.arrivals.path:
            upd["arrivals"] = wl.arrivals.model_copy(update={"path": fix(wl.arrivals.path)})
        if isinstance(wl.lengths, IndependentLengths):
            lupd = {k: getattr(wl.lengths, k).model_copy(update={"path": fix(getattr(wl.lengths, k).path)})
                    for k in ("input_tokens", "output_tokens") if isinstance(getattr(wl.lengths, k), EmpiricalLength)}
            upd["lengths"] = wl.lengths.model_copy(update=lupd)
        wl = wl.model_copy(update=upd)
    else:
        upd = {}
        for k in ("input_tokens", "output_tokens"):
            d = getattr(wl, k)
            if isinstance(d, EmpiricalLength):
                upd[k] = d.model_copy(update={"path": fix(d.path)})
        wl = wl.model_copy(update=upd)
    ci = exp.carbon.intensity
    if isinstance(ci, SeriesIntensity) and ci.path is not None:
        exp = exp.model_copy(update={"carbon": exp.carbon.model_copy(
            update={"intensity": ci.model_copy(update={"path": fix(ci.path)})})})
    sites = {n: s.model_copy(update={"intensity": s.intensity.model_copy(update={"path": fix(s.intensity.path)})})
             if isinstance(s.intensity, SeriesIntensity) and s.intensity.path is not None else s
             for n, s in exp.carbon.sites.items()}
    if sites != dict(exp.carbon.sites):
        exp = exp.model_copy(update={"carbon": exp.carbon.model_copy(update={"sites": sites})})
    cat = exp.catalog.model_copy(update={"gpu_dirs": [fix(d) for d in exp.catalog.gpu_dirs],
                                         "model_dirs": [fix(d) for d in exp.catalog.model_dirs]})
    perf = exp.performance.model_copy(update={"profile_dirs": [fix(d) for d in exp.performance.profile_dirs]})
    return exp.model_copy(update={"workload": wl, "catalog": cat, "performance": perf})


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
        from .overrides import check_override_keys  # unknown override keys fail here, naming the key
        check_override_keys(data, overrides)
    return parse_experiment(data, where=str(path), base_dir=Path(path).resolve().parent)


def json_schema() -> Dict[str, Any]:
    """JSON Schema of the experiment format (for editors)."""
    return Experiment.model_json_schema()
