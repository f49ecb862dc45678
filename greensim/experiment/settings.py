"""Experiment schema: SLOs, performance model, output, catalogue folders, simulation options, reconfiguration."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional

from pydantic import Field, model_validator

from greensim.experiment.model import StrictModel


# ------------------------------------------------------------------ SLO, carbon, perf
class SLOPair(StrictModel):
    ttft_s: float = Field(gt=0, description="time-to-first-token SLO [s]")
    tpot_s: float = Field(gt=0, description="time-per-output-token SLO [s/token]")


class SLOClass(StrictModel):
    """A request class's SLO: a TTFT/TPOT pair (interactive), or a completion deadline (deferrable).

    A deferrable request is judged by its deadline alone (``slo_met`` = completed within
    ``deadline_s`` of its arrival) and may be held back by ``defer.policy``; routers see
    ``deadline_s`` as its TTFT SLO and no TPOT bound.
    """

    ttft_s: Optional[float] = Field(None, gt=0, description="time-to-first-token SLO [s]; interactive classes")
    tpot_s: Optional[float] = Field(None, gt=0, description="time-per-output-token SLO [s/token]; interactive classes")
    deferrable: bool = Field(
        False,
        description="offline batch work that may be delayed until its deadline (EcoServe, arXiv 2502.05043: "
        "up to 55 % of LLM serving capacity is offline batch work)",
    )
    deadline_s: Optional[float] = Field(
        None, gt=0, description="latest completion, after arrival [s]; required by (and only for) deferrable classes"
    )

    @model_validator(mode="after")
    def _kind(self):
        if self.deferrable:
            if self.deadline_s is None:
                raise ValueError("deferrable: true needs deadline_s (latest completion after arrival [s])")
            if self.ttft_s is not None or self.tpot_s is not None:
                raise ValueError(
                    "a deferrable class is judged by deadline_s alone; drop ttft_s and tpot_s (or set deferrable: false)"
                )
        else:
            if self.deadline_s is not None:
                raise ValueError("deadline_s applies to deferrable classes; set deferrable: true or drop deadline_s")
            if self.ttft_s is None or self.tpot_s is None:
                raise ValueError("an interactive class needs ttft_s and tpot_s (or deferrable: true with deadline_s)")
        return self


class SLO(SLOPair):
    """Default SLO pair, plus optional per-class SLOs for requests that name a class (slo_class)."""

    classes: Dict[str, SLOClass] = Field(
        default_factory=dict,
        description="per-class SLOs by name: {ttft_s, tpot_s} (interactive) or {deferrable: true, deadline_s}",
    )


class Defer(StrictModel):
    """When deferrable requests are released to the router (carbon-aware time shifting)."""

    policy: str = Field(
        "none",
        description="none (route every request at arrival; the default) or carbon_aware (hold deferrable "
        "requests until the cleanest forecast hour that still meets their deadline; needs carbon.forecast), "
        "or a plug-in",
    )
    options: Dict[str, Any] = Field(
        default_factory=dict,
        description="keyword options of the policy, e.g. carbon_aware: {margin_s, spread, max_requests_per_hour, "
        "output_tokens}",
    )


class Performance(StrictModel):
    model: str = Field(
        "kernel",
        description="performance model: kernel (the default: per-operator kernel time calibrated on kernel-level "
        "measurements, profiles/kernel.yaml, plus the engine overhead of performance.engine), roofline (the "
        "previous default), profiled (measured profiles on their grid), or a plug-in",
    )
    engine: Optional[str] = Field(
        None,
        description="serving-engine overhead preset of profiles/engines.yaml (per-iteration and per-sequence CPU "
        "time, CUDA graphs); 'none' gives kernel-only times; default: the file's default preset. Kernel model only",
    )
    eta_compute: Optional[float] = Field(None, gt=0, le=1, description="override compute efficiency")
    eta_memory: Optional[float] = Field(None, gt=0, le=1, description="override memory-bandwidth efficiency")
    iteration_overhead_s: Optional[float] = Field(None, ge=0, description="override per-iteration overhead [s]")
    band: Literal["pessimistic", "nominal", "optimistic"] = Field(
        "nominal", description="uncertainty band: times and powers x (1 +/- u), u from profiles/uncertainty.yaml"
    )
    uncertainty: Literal["corners", "none"] = Field(
        "corners",
        description="corners (default): greensim run and sweep also simulate the two band corners (band "
        "optimistic and pessimistic, same seed and requests) and report every headline metric as low / point / "
        "high (min / nominal / max over the three runs; summary.json 'bands'); tables and plots stay the nominal "
        "run's. none: the nominal run only (3x faster). Applies only with band: nominal (a run at a corner band "
        "is itself a corner and gets no bands)",
    )
    profile_dirs: List[str] = Field(
        default_factory=list, description="extra folders of measured profiles <GPU>/<model>_tp<N>.csv (model: profiled)"
    )
    decode_power: Literal["constant", "utilization"] = Field(
        "constant",
        description="decode power of the roofline: constant (gpus.yaml decode_power_frac x TDP, "
        "splitwise-sim; the default) or utilization (idle + (TDP - idle) x (a + b u_mem + c u_compute) of the "
        "iteration's achieved bandwidth and FLOP utilisation, profiles/decode_power.yaml fitted on our H100/H200 "
        "decode measurements; an extrapolation of that shape on other GPUs). Colocated instances only; measured "
        "profiles (model: profiled) keep their measured power",
    )


class Output(StrictModel):
    dir: str = Field("results", description="parent folder of run folders")
    plots: bool = True
    table_format: Literal["parquet", "csv"] = "parquet"
    iterations: bool = Field(
        False,
        description="per-iteration trace export: write iterations.parquet (one row per engine iteration, "
        "speculative pass and KV transfer: instance, start, duration, prefill tokens, decode batch and context, "
        "power, energy) and trace.json (Chrome / Perfetto trace: open it at ui.perfetto.dev). Off by default: "
        "the engine then records nothing",
    )
    iterations_max: int = Field(
        1_000_000,
        ge=1,
        description="size guard of the iteration export: at most this many rows are recorded, in the order "
        "the engine completes them; beyond it recording stops (summary iterations_truncated, "
        "iterations_dropped_rows, iterations_recorded_until_s say so). The default keeps trace.json to about "
        "0.26 GB (measured: greensim run --iterations on the quickstart writes 256 bytes of JSON per row), "
        "which ui.perfetto.dev opens in a browser",
    )


class CatalogDirs(StrictModel):
    gpu_dirs: List[str] = Field(default_factory=list, description="extra folders of GPU YAML files")
    model_dirs: List[str] = Field(default_factory=list, description="extra folders of model YAML files")


class SimulationOpts(StrictModel):
    timeline_bin_s: Optional[float] = Field(None, gt=0, description="timeline bin [s]; default horizon/400")
    progress: bool = True
