"""Experiment schema, ``workload`` section: lengths, arrival processes, trace and synthetic workloads."""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, Union

from pydantic import Field, model_validator
from typing_extensions import Annotated

from greensim.experiment.model import StrictModel

MAX_REQUESTS = 100_000_000  # a run's request table is held in memory: 1e8 rows is already many GB


# ------------------------------------------------------------------ lengths
class ConstantLength(StrictModel):
    """Every request has the same token count."""

    dist: Literal["constant"]
    value: int = Field(ge=1, description="token count [tokens]")


class UniformLength(StrictModel):
    """Integer token counts uniform on [low, high]."""

    dist: Literal["uniform"]
    low: int = Field(ge=1, description="smallest token count [tokens]")
    high: int = Field(ge=1, description="largest token count [tokens]")

    @model_validator(mode="after")
    def _order(self):
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self


class LognormalLength(StrictModel):
    """Lognormal token counts, rounded and clipped to [min, max]."""

    dist: Literal["lognormal"]
    median: float = Field(gt=0, description="median token count [tokens] (= exp(mu))")
    sigma: float = Field(ge=0, description="standard deviation of log(tokens)")
    min: int = Field(1, ge=1, description="clip below [tokens]")
    max: int = Field(32768, ge=1, description="clip above [tokens]")


class EmpiricalLength(StrictModel):
    """Token counts resampled (with replacement) from a column of a trace file."""

    dist: Literal["empirical"]
    path: str = Field(description="CSV or parquet file holding the column")
    column: str = Field(description="column name, e.g. input_tokens")


LengthDist = Annotated[
    Union[ConstantLength, UniformLength, LognormalLength, EmpiricalLength], Field(discriminator="dist")
]


# ------------------------------------------------------------------ workloads
SLO_CLASS_FRAC_DESC = (
    "tag a random share of requests with SLO classes (names in slo.classes), e.g. {batch: 0.3}; "
    "the rest keep the default SLO. Default: none. EcoServe (arXiv 2502.05043) reports up to 55 % of LLM "
    "serving capacity is offline batch work (a deferrable class)"
)


def _check_class_fracs(fracs: Dict[str, float]) -> None:
    """slo_class_frac: each share in [0, 1], their sum <= 1, no empty name."""
    for name, f in fracs.items():
        if not name:
            raise ValueError("slo_class_frac: '' is the default class; name a class of slo.classes")
        if not (0.0 <= f <= 1.0):
            raise ValueError(f"slo_class_frac.{name}: {f!r} must be in [0, 1]")
    if sum(fracs.values()) > 1.0 + 1e-12:
        raise ValueError(f"slo_class_frac: the shares sum to {sum(fracs.values()):g} > 1; lower them")


class PoissonWorkload(StrictModel):
    """Poisson arrivals with independent input/output length distributions."""

    kind: Literal["poisson"]
    rate_rps: float = Field(gt=0, description="mean arrival rate [requests/s]")
    n_requests: int = Field(ge=1, le=MAX_REQUESTS, description="number of requests to generate (at most 1e8)")
    input_tokens: LengthDist
    output_tokens: LengthDist
    slo_class_frac: Dict[str, float] = Field(
        default_factory=dict,
        description=SLO_CLASS_FRAC_DESC,
    )

    @model_validator(mode="after")
    def _fracs(self):
        _check_class_fracs(self.slo_class_frac)
        return self


class TraceWorkload(StrictModel):
    """Replay of a trace with columns arrival_time_s, input_tokens, output_tokens."""

    kind: Literal["trace"]
    path: Optional[str] = Field(
        None, description="trace file (.csv, .parquet, .jsonl); relative to the experiment file"
    )
    format: str = Field("auto", description="trace reader name, or 'auto' from the file suffix")
    max_requests: Optional[int] = Field(None, ge=1, description="keep only the first N requests")
    time_scale: float = Field(1.0, gt=0, description="multiply arrival times by this factor")
    # issue 5: named traces, column mapping, experiment options
    name: Optional[str] = Field(None, description="a named trace (greensim trace list), instead of path")
    data_dir: Optional[str] = Field(
        None,
        description="folder holding named traces; default the traces/ folder "
        "of the shared data ($GREENSIM_DATA_DIR, else ../shared/data)",
    )
    columns: Dict[str, str] = Field(
        default_factory=dict,
        description="format 'columns': greensim column -> "
        "file column, e.g. {arrival_time_s: ts, input_tokens: prompt_len}",
    )
    time_unit: Literal["s", "ms", "us", "ns", "datetime"] = Field(
        "s", description="unit of the file's time column (format 'columns'); 'datetime' parses timestamps"
    )
    select: Dict[str, str] = Field(
        default_factory=dict, description="keep rows whose (normalised) column equals the value, e.g. {model: ChatGPT}"
    )
    include_failed: bool = Field(False, description="BurstGPT: keep failed requests (0 response tokens)")
    window_start_s: Optional[float] = Field(None, ge=0, description="keep arrivals at or after this trace time [s]")
    window_end_s: Optional[float] = Field(None, gt=0, description="keep arrivals before this trace time [s]")
    rate_scale: float = Field(1.0, gt=0, description="multiply the arrival rate by k (arrival times / k)")
    min_input_tokens: Optional[int] = Field(None, ge=0, description="drop requests with fewer input tokens")
    max_input_tokens: Optional[int] = Field(None, ge=1, description="drop requests with more input tokens")
    min_output_tokens: Optional[int] = Field(None, ge=0, description="drop requests with fewer output tokens")
    max_output_tokens: Optional[int] = Field(None, ge=1, description="drop requests with more output tokens")
    max_total_tokens: Optional[int] = Field(None, ge=2, description="drop requests whose input+output exceeds this")
    repeat_until_s: Optional[float] = Field(
        None, gt=0, description="tile the (windowed, scaled) trace until this simulated time [s]"
    )
    drop_invalid: bool = Field(
        False, description="drop rows with missing/invalid values (and report how many) instead of failing"
    )
    arrivals: Optional["Arrivals"] = Field(
        None, description="generate arrival times (needed for length-only traces; replaces a trace's own times)"
    )

    @model_validator(mode="after")
    def _source(self):
        if (self.path is None) == (self.name is None):
            raise ValueError("set exactly one of path (a file) or name (a named trace, see `greensim trace list`)")
        if (
            self.window_start_s is not None
            and self.window_end_s is not None
            and self.window_end_s <= self.window_start_s
        ):
            raise ValueError(f"window_end_s ({self.window_end_s}) must be > window_start_s ({self.window_start_s})")
        if self.time_scale != 1.0 and self.rate_scale != 1.0:
            raise ValueError("set time_scale or rate_scale, not both (rate_scale k = time_scale 1/k)")
        return self


# --- arrival processes, joint length models, synthetic workloads (issue 5) -------------
class PoissonArrivals(StrictModel):
    """Homogeneous Poisson arrivals (exponential inter-arrival gaps, CV = 1)."""

    process: Literal["poisson"]
    rate_rps: float = Field(gt=0, description="mean arrival rate [requests/s]")


class GammaArrivals(StrictModel):
    """Renewal process with Gamma inter-arrival gaps: CV > 1 is burstier than Poisson."""

    process: Literal["gamma"]
    rate_rps: float = Field(gt=0, description="mean arrival rate [requests/s]")
    cv: float = Field(gt=0, description="coefficient of variation of the inter-arrival gaps (1 = Poisson)")


class DiurnalArrivals(StrictModel):
    """Time-varying rate mean*(1 + a*cos(2*pi*(t - peak_s)/period_s)), a from peak_to_trough."""

    process: Literal["diurnal"]
    mean_rate_rps: float = Field(gt=0, description="time-averaged arrival rate [requests/s]")
    peak_to_trough: float = Field(
        1.45,
        ge=1,
        description="ratio of the highest to the lowest rate; default 1.45, "
        "the ratio of the busiest to the quietest hourly mean of ServeGen m-large "
        "(shared/research/traces.md section 4)",
    )
    peak_s: float = Field(
        19 * 3600.0,
        ge=0,
        description="time of the peak within the period [s]; default 19:00, "
        "ServeGen m-large's busiest hour (shared/research/traces.md section 4)",
    )
    period_s: float = Field(86400.0, gt=0, description="period of the cycle [s] (one day)")
    start_s: float = Field(0.0, ge=0, description="time of day of simulated t=0 [s]")
    cv: float = Field(1.0, gt=0, description="inter-arrival CV in operational time (1 = Poisson)")
    step_s: float = Field(60.0, gt=0, description="the cosine is held constant over steps of this length [s]")


class RateSeriesArrivals(StrictModel):
    """Piecewise-constant rate: rates_rps[i] holds on [i*bin_s, (i+1)*bin_s); repeats periodically."""

    process: Literal["rate_series"]
    rates_rps: List[float] = Field(min_length=1, description="rate of each bin [requests/s], >= 0")
    bin_s: float = Field(gt=0, description="length of each bin [s]")
    rate_scale: float = Field(1.0, gt=0, description="multiply every rate by this factor")
    mean_rate_rps: Optional[float] = Field(None, gt=0, description="rescale the series to this mean rate [requests/s]")
    start_s: float = Field(0.0, ge=0, description="offset into the series of simulated t=0 [s]")
    cv: float = Field(1.0, gt=0, description="inter-arrival CV in operational time (1 = Poisson)")


class ServeGenArrivals(StrictModel):
    """Rate series of one model of the ServeGen per-10-minute profile (Alibaba Bailian)."""

    process: Literal["servegen"]
    path: Optional[str] = Field(
        None,
        description="servegen_rate_profile_10min.csv; default: found by name "
        "like a named trace (workload data_dir, else <shared data>/traces: $GREENSIM_DATA_DIR or ../shared/data)",
    )
    model: str = Field(
        "m-large",
        description="ServeGen model: m-large, m-mid, m-small, deepseek-r1, mm-image; "
        "default m-large (no collection gaps, shared/research/traces.md section 4)",
    )
    rate_scale: float = Field(1.0, gt=0, description="multiply every rate by this factor")
    mean_rate_rps: Optional[float] = Field(
        None,
        gt=0,
        description="rescale the profile so its mean over all its "
        "windows (14 days for language models) is this rate [requests/s]",
    )
    start_s: float = Field(
        0.0, ge=0, description="offset into the profile of simulated t=0 [s] (0 = midnight of day 1)"
    )
    cv: float = Field(
        1.0,
        gt=0,
        description="inter-arrival CV in operational time; default 1: a superposition of "
        "many independent clients tends to Poisson (Palm-Khintchine theorem)",
    )


class FittedArrivals(StrictModel):
    """Gamma renewal arrivals with the mean rate and inter-arrival CV fitted to a named trace."""

    process: Literal["fitted"]
    trace: str = Field(description="name of a fitted trace (traces/fitted/<name>.yaml)")
    rate_rps: Optional[float] = Field(None, gt=0, description="mean rate [requests/s]; default: the trace's")
    cv: Optional[float] = Field(None, gt=0, description="inter-arrival CV; default: the trace's")


Arrivals = Annotated[
    Union[PoissonArrivals, GammaArrivals, DiurnalArrivals, RateSeriesArrivals, ServeGenArrivals, FittedArrivals],
    Field(discriminator="process"),
]


class IndependentLengths(StrictModel):
    """Input and output lengths drawn independently from two distributions."""

    kind: Literal["independent"]
    input_tokens: LengthDist
    output_tokens: LengthDist


class FittedLengths(StrictModel):
    """Joint input/output lengths from a model fitted to a named trace (marginal quantiles + empirical copula)."""

    kind: Literal["fitted"]
    trace: str = Field(description="name of a fitted trace (traces/fitted/<name>.yaml), e.g. azure_llm_2023_conv")


Lengths = Annotated[Union[IndependentLengths, FittedLengths], Field(discriminator="kind")]


class SharedPrefix(StrictModel):
    """System prompts: every request (every chat session) starts with one of ``n_prefixes``
    shared prompts of ``shared_tokens`` tokens, picked uniformly at random."""

    shared_tokens: int = Field(
        ge=1, description="tokens of each shared prompt, prepended: input_tokens = shared_tokens + the sampled length"
    )
    n_prefixes: int = Field(1, ge=1, description="number of distinct shared prompts")


class Sessions(StrictModel):
    """Multi-turn chat: the arrival process starts sessions; turn t+1 of a session arrives
    ``think_time_s`` after turn t (open loop: it does not wait for turn t's answer) and its
    prompt is the whole conversation so far (every earlier prompt and output) plus new user
    tokens (lengths.input_tokens); its output follows lengths.output_tokens."""

    turns: int = Field(ge=1, le=10_000, description="turns (requests) per session")
    think_time_s: float = Field(
        gt=0,
        description="time between the arrivals of consecutive turns of a session [s]; choose it above the "
        "response time, else a turn arrives before the previous answer is cached",
    )


class SyntheticWorkload(StrictModel):
    """Generated requests: an arrival process and a length model; stops at n_requests or duration_s."""

    kind: Literal["synthetic"]
    arrivals: Arrivals
    lengths: Lengths
    n_requests: Optional[int] = Field(
        None, ge=1, le=MAX_REQUESTS, description="number of requests to generate (at most 1e8)"
    )
    duration_s: Optional[float] = Field(None, gt=0, description="generate arrivals in [0, duration_s) [s]")
    slo_class_frac: Dict[str, float] = Field(
        default_factory=dict,
        description=SLO_CLASS_FRAC_DESC,
    )
    prefix: Optional[SharedPrefix] = Field(
        None, description="shared system prompts (prefix identity for cluster prefix_caching); default none"
    )
    sessions: Optional[Sessions] = Field(
        None,
        description="multi-turn chat sessions (arrivals then start sessions; n_requests counts turns); default none",
    )
    prefix_block_tokens: int = Field(
        16,
        ge=1,
        description="tokens per prefix-identity block (a cache hit covers whole blocks; a multiple of the "
        "instances' block_tokens); default 16, vLLM's KV block size",
    )

    @model_validator(mode="after")
    def _stop(self):
        if self.n_requests is None and self.duration_s is None:
            raise ValueError("set n_requests or duration_s (or both: whichever comes first)")
        _check_class_fracs(self.slo_class_frac)
        return self


Workload = Annotated[Union[PoissonWorkload, TraceWorkload, SyntheticWorkload], Field(discriminator="kind")]
TraceWorkload.model_rebuild()  # resolve the forward reference to Arrivals
