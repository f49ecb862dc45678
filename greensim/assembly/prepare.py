"""Turn an experiment into a wired simulation: catalogue names resolved, workload built,
performance, carbon and policy plug-ins bound (:func:`prepare`)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from greensim.base.errors import ConfigError, TraceError
from greensim.carbon.embodied import scoped_embodied_kgco2e
from greensim.carbon.registry import INTENSITY_SOURCES
from greensim.core.disagg import DisaggregationSpec
from greensim.core.instance import InstanceConfig
from greensim.core.link import link_bandwidth_bps
from greensim.core.memory import kv_capacity_blocks
from greensim.core.requests import RequestTable
from greensim.core.spec_instance import SpecSetup
from greensim.experiment.acceptance import acceptance_entry
from greensim.experiment.carbon import DEFAULT_SITE
from greensim.experiment.schema import Experiment
from greensim.experiment.settings import Performance
from greensim.hardware.catalog import load_catalog, same_tokenizer
from greensim.hardware.registry import PERFORMANCE_MODELS
from greensim.policies.registry import DECODE_ROUTERS, DEFER_POLICIES, GAMMA_POLICIES, ROUTERS
from greensim.results import InstanceCarbonSpec
from greensim.workloads import build_workload

log = logging.getLogger(__name__)

__all__ = [
    "Prepared",
    "context_limit",
    "GroupInfo",
    "prepare",
    "make_router",
    "router_extras",
    "slo_arrays",
    "deadline_array",
    "experiment_seeds",
    "draft_with_vocab",
    "experiment_workload",
    "performance_model",
    "group_model",
]


def slo_arrays(exp: Experiment, n: int, slo_class: Optional[np.ndarray]):
    """Per-request SLO pairs: the class's pair where a request names a class, else the default.

    A deferrable class (a deadline, no pair) gets its ``deadline_s`` as TTFT SLO and no TPOT
    bound (inf): its first token is due before its deadline.
    """
    ttft = np.full(n, exp.slo.ttft_s)
    tpot = np.full(n, exp.slo.tpot_s)
    if slo_class is None:
        return ttft, tpot
    for name in sorted(set(slo_class) - {""}):
        pair = exp.slo.classes.get(name)
        if pair is None:
            raise ConfigError(
                f"slo.classes: the workload names SLO class '{name}' but the experiment defines "
                f"{sorted(exp.slo.classes) or 'no classes'}. Add slo.classes.{name} with ttft_s and tpot_s "
                f"(or deferrable: true and deadline_s)."
            )
        m = slo_class == name
        if pair.deferrable:
            ttft[m], tpot[m] = pair.deadline_s, np.inf
        else:
            ttft[m], tpot[m] = pair.ttft_s, pair.tpot_s
    return ttft, tpot


def deadline_array(exp: Experiment, n: int, slo_class: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Per-request deadline after arrival [s] (NaN: interactive); None when no request is deferrable."""
    if slo_class is None:
        return None
    out = np.full(n, np.nan)
    for name, c in sorted(exp.slo.classes.items()):
        if c.deferrable:
            out[slo_class == name] = c.deadline_s
    return out if np.isfinite(out).any() else None


@dataclass
class Prepared:
    """Everything a run needs, resolved from the experiment (before simulating)."""

    experiment: Experiment
    table: RequestTable
    instances: List[Tuple[InstanceConfig, Any]]
    specs: List[InstanceCarbonSpec]
    router_factory: Any
    intensity: Any
    bin_s: float
    ttft_slo_s: np.ndarray
    tpot_slo_s: np.ndarray
    forecast: Any = None  # greensim.carbon.forecast.ForecastView (carbon.forecast), for policies
    failures: Any = None  # greensim.hardware.aging.WeibullFailureModel (GPU aging), or None
    policy_seeds: Any = None  # numpy SeedSequence of the policies' random streams (routers...)
    disaggregation: Optional[Callable[[], DisaggregationSpec]] = None  # DPD: fresh spec per run
    speculative: Optional[Callable[[], List[Optional[SpecSetup]]]] = None  # DSD: fresh setups per run
    sites: Any = None  # {site: greensim.carbon.sites.SiteInfo}, "default" included
    groups: Optional[List[Any]] = None  # per instance group: GroupInfo (for planners: router extras "groups")
    perf: Any = None  # the unbound performance model (its bands_used: uncertainty.yaml entries applied)
    deadline_s: Optional[np.ndarray] = None  # per request: deadline after arrival [s], NaN interactive; None: none
    defer_factory: Any = None  # release policy factory (defer.policy), None for 'none'


def experiment_seeds(exp: Experiment) -> Tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """The experiment's two root random streams: the workload's and the policies'."""
    s_workload, s_policies = np.random.SeedSequence(exp.seed).spawn(2)
    return s_workload, s_policies


def experiment_workload(exp: Experiment) -> RequestTable:
    """The requests a run of ``exp`` simulates (the same arrivals and lengths as :func:`prepare`)."""
    return build_workload(exp.workload, experiment_seeds(exp)[0])


def performance_model(p: Performance) -> Any:
    """The performance model an experiment's (or plan's) ``performance`` section names, unbound."""
    return PERFORMANCE_MODELS.get(p.model, field="performance.model")(
        eta_compute=p.eta_compute,
        eta_memory=p.eta_memory,
        iteration_overhead_s=p.iteration_overhead_s,
        band=p.band,
        profile_dirs=p.profile_dirs,
        decode_power=p.decode_power,
        engine=p.engine,
    )


def context_limit(table: RequestTable, model: Any, workload: Any) -> RequestTable:
    """Requests whose prompt + output exceed the model's context (``max_context_tokens``).

    A trace with ``drop_invalid: true`` drops them (noted); otherwise they stay, with a WARNING
    and a workload note (a serving engine would refuse them: vLLM's max_model_len), so that
    recorded results of generated workloads do not change. Every request over: an error.
    """
    lim = int(getattr(model, "max_context_tokens", 0) or 0)
    if not lim:
        return table
    total = table.n_input_tokens.astype(np.int64) + table.n_output_tokens.astype(np.int64)
    over = np.flatnonzero(total > lim)
    if over.size == 0:
        return table
    i = int(over[0])
    what = (
        f"{over.size} of {len(table)} request(s) need more than {model.name}'s context of {lim} tokens "
        f"(max_context_tokens, config.json max_position_embeddings), e.g. request {i}: "
        f"{int(table.n_input_tokens[i])} input + {int(table.n_output_tokens[i])} output tokens"
    )
    fix = "lower the length limits (e.g. workload.max_total_tokens, input_tokens.max), or pick a longer-context model"
    if over.size == len(table):
        raise TraceError(f"workload: every request is longer than the model's context: {what}. Fix: {fix}.")
    drop = bool(getattr(workload, "kind", "") == "trace" and getattr(workload, "drop_invalid", False))
    if drop:
        keep = total <= lim
        note = f"drop_invalid: dropped {what}."
        return table.select(keep, notes=tuple(table.notes) + (note,))
    note = f"{what}; a serving engine would refuse them, here they are simulated. To drop them: {fix}" + (
        ", or set workload.drop_invalid: true." if getattr(workload, "kind", "") == "trace" else "."
    )
    log.warning("workload: %s", note)
    return dataclasses.replace(table, notes=tuple(table.notes) + (note,))


def group_model(model: Any, exp: Any, g: Any, where: str, gpu: Any = None) -> Any:
    """The model as instance group ``g`` serves it: its ``quantization`` (else the experiment's
    top-level one) and ``expert_parallel`` applied; checks the GPU has the GEMM dtype's tensor cores."""
    q = g.quantization if getattr(g, "quantization", None) is not None else getattr(exp, "quantization", None)
    qfield = f"{where}.quantization" if getattr(g, "quantization", None) is not None else "quantization"
    m = model
    if q is not None:
        try:
            m = q.apply(m)
        except ValueError as exc:
            raise ConfigError(f"{qfield}: {exc}") from None
        if gpu is not None and m.compute_dtype != "fp16" and gpu.peak_ops(m.compute_dtype) is None:
            raise ConfigError(
                f"{qfield}.activations: {m.compute_dtype} GEMMs need {m.compute_dtype} tensor cores, which "
                f"{gpu.name} ({gpu.architecture or 'unknown architecture'}) lacks "
                f"({gpu.sources.get('int8_tops_dense_source') or gpu.sources.get('fp8_tflops_dense_source') or 'none in the GPU catalogue'}). "
                "Use weight-only quantisation (activations: fp16) or another GPU."
            )
    if getattr(g, "expert_parallel", False):
        if not model.is_moe:
            raise ConfigError(
                f"{where}.expert_parallel: '{model.name}' is a dense model (no experts to spread). "
                "Drop expert_parallel or pick a mixture-of-experts model (e.g. Mixtral-8x7B)."
            )
        m = m.with_expert_parallel()
    return m


def _check_pp(model: Any, g: Any, where: str) -> None:
    if g.pp > model.n_layers:
        raise ConfigError(
            f"{where}.pp: {g.pp} pipeline stages for {model.name}'s {model.n_layers} layers; each stage needs at "
            f"least one layer. Set pp <= {model.n_layers}."
        )


def pipeline_kv_blocks_for(gpu: Any, model: Any, g: Any, where: str) -> int:
    """KV blocks of one instance of group ``g`` with ``g.pp > 1`` pipeline stages
    (:func:`greensim.hardware.pipeline.pipeline_kv_blocks`)."""
    from greensim.hardware.pipeline import pipeline_kv_blocks

    _check_pp(model, g, where)
    return pipeline_kv_blocks(
        gpu.memory_bytes,
        g.tp,
        g.pp,
        model,
        g.block_tokens,
        g.memory_reserve_frac,
        where=f"{where} ({model.name} on {g.pp} stages of {g.tp}x{gpu.name})",
    )


def bind_group_pipeline(bind: Callable[[Any], Any], gpu: Any, model: Any, g: Any, where: str) -> Any:
    """The performance model of one instance of group ``g`` with ``g.pp > 1`` stages, each stage's
    model bound by ``bind`` on ``g.tp`` GPUs; the stage link from ``g.pp_link`` or the GPU's interconnect."""
    from greensim.hardware.pipeline import bind_pipeline, default_stage_link

    _check_pp(model, g, where)
    lk = g.pp_link
    if lk is None:
        bw, lat = default_stage_link(gpu, where)[1], 0.0
    else:
        bw, lat = link_bandwidth_bps(lk.kind, lk.bandwidth_gbs, lk.efficiency_frac), lk.latency_s
    return bind_pipeline(bind, model, g.pp, g.pp_microbatches, bw, lat)


def prepare(exp: Experiment) -> Prepared:
    """Resolve catalogue names, build the workload and bind performance models."""
    catalog = load_catalog(exp.catalog.gpu_dirs, exp.catalog.model_dirs)
    model = catalog.model(exp.model, "model")
    s_workload, s_policies = experiment_seeds(exp)
    table = build_workload(exp.workload, s_workload)
    if len(table) == 0:
        raise TraceError("workload: no requests to simulate.")
    table = context_limit(table, model, exp.workload)
    _check_prefix_caching(exp, table)
    perf = performance_model(exp.performance)
    instances, specs, roles, spec_parts, draft_specs, groups = [], [], [], [], [], []
    base_model, kv_per_token = model, []
    for gi, g in enumerate(exp.cluster.instances):
        where = f"cluster.instances.{gi}"
        gpu = catalog.gpu(g.gpu, f"{where}.gpu")
        gpu.require_power(f"{where}.gpu")
        gmodel = group_model(base_model, exp, g, where, gpu)
        model = gmodel
        kv_per_token.append(gmodel.kv_bytes_per_token)
        if g.speculative is not None:
            kv_blocks, part = _speculative_group(g, where, gpu, model, catalog, perf, exp)
        elif g.pp > 1:
            kv_blocks = pipeline_kv_blocks_for(gpu, model, g, where)
            part = None
        else:
            kv_blocks = kv_capacity_blocks(
                gpu.memory_bytes,
                g.tp,
                model.weight_bytes,
                model.kv_bytes_per_token,
                g.block_tokens,
                g.memory_reserve_frac,
                where=f"{where} ({model.name} on {g.tp}x{gpu.name})",
            )
            part = None
        if g.power_cap_frac is not None:
            from greensim.hardware.powercap import bind_capped

            _no_cap_with_degradation(g, where)
            if g.pp > 1:
                bound = bind_group_pipeline(
                    lambda m: bind_capped(perf, gpu, m, g.tp, g.power_cap_frac, where), gpu, model, g, where
                )
            else:
                bound = bind_capped(perf, gpu, model, g.tp, g.power_cap_frac, where)
        elif g.pp > 1:
            bound = bind_group_pipeline(lambda m: perf.bind(gpu, m, g.tp), gpu, model, g, where)
        else:
            bound = perf.bind(gpu, model, g.tp)
        if g.aging is not None:
            from greensim.hardware.aging import degrade

            bound = degrade(bound, g, where)
        life = exp.carbon.gpu_lifetime_years.get(gpu.name, exp.carbon.lifetime_years)
        gspec = _carbon_spec(exp, gpu, g, life)
        dspec = None
        if part is not None and part["split"]:
            dg = part["draft_gpu"]
            dspec = _carbon_spec(
                exp,
                dg,
                SimpleNamespace(tp=1, age_years=g.speculative.draft_gpu_age_years, site=g.site),
                exp.carbon.gpu_lifetime_years.get(dg.name, exp.carbon.lifetime_years),
            )
        groups.append(GroupInfo(gi, _mode_label(g), g, gpu.name, bound, gspec, part, dspec))
        for _ in range(g.count):
            cfg = InstanceConfig(
                name=g.name or (f"{gpu.name}x{g.tp}" if g.pp == 1 else f"{gpu.name}x{g.tp}-pp{g.pp}"),
                gpu=gpu.name,
                tp=g.tp,
                kv_blocks=kv_blocks,
                block_tokens=g.block_tokens,
                max_batch_size=g.max_batch_size,
                max_batched_tokens=g.max_batched_tokens,
                chunked_prefill=g.chunked_prefill,
                watermark_blocks=int(g.watermark_frac * kv_blocks),
                group=gi,
                site=g.site or DEFAULT_SITE,
                mode=_mode_label(g),
                network_delay_s=_one_way_s(exp, g.site),
                prefix_caching=g.prefix_caching,
            )
            instances.append((cfg, bound))
            specs.append(gspec)
            roles.append(g.role)
            spec_parts.append(part)
            if dspec is not None:
                draft_specs.append(dspec)
    specs += draft_specs  # draft GPUs of split pairs come after the other instances
    for key in (
        list(exp.carbon.gpu_embodied_kgco2e) + list(exp.carbon.gpu_lifetime_years) + list(exp.carbon.embodied_schemes)
    ):
        catalog.gpu(key, "carbon.gpu_embodied_kgco2e / carbon.gpu_lifetime_years key")
    router_factory = ROUTERS.get(exp.cluster.router, field="cluster.router")
    ic = exp.carbon.intensity
    intensity = INTENSITY_SOURCES.get(ic.kind, field="carbon.intensity.kind")(
        **{k: v for k, v in ic.model_dump().items() if k != "kind"}
    )
    from greensim.carbon.sites import build_site_sources, site_infos

    site_sources = build_site_sources(exp, intensity)
    specs = [dataclasses.replace(sp, intensity=site_sources[sp.site]) for sp in specs]
    if exp.carbon.compare_regions and ic.kind != "series":
        raise ConfigError(
            "carbon.compare_regions: needs carbon.intensity.kind 'series' (its start, timezone and "
            f"basis are reused), got kind '{ic.kind}'. Use a series intensity or drop compare_regions."
        )
    last = float(table.arrival_s[-1])
    bin_s = exp.simulation.timeline_bin_s or max(last / 400.0, 1e-3)
    ttft_slo, tpot_slo = slo_arrays(exp, len(table), table.slo_class)
    forecast = forecaster = None
    if exp.carbon.forecast is not None:
        from greensim.carbon.forecast import ForecastView, make_forecaster

        fo = exp.carbon.forecast
        if not any(hasattr(src, "series") for src in site_sources.values()):
            raise ConfigError(
                f"carbon.forecast: forecasts need a history, i.e. carbon.intensity.kind 'series' "
                f"(got '{ic.kind}') or a site with a series. Use a series or drop carbon.forecast."
            )
        kw = {"lag_h": fo.lag_h} if fo.kind == "seasonal_naive" else {}
        forecaster = make_forecaster(fo.kind, **kw)
        if ic.kind == "series":
            forecast = ForecastView(intensity, forecaster, oracle=fo.oracle)
    sites = site_infos(exp, site_sources, forecaster)
    from greensim.hardware.aging import failure_model_for

    failures = failure_model_for(exp)
    model = base_model
    if "prefill" in roles and len(set(kv_per_token)) > 1:
        raise ConfigError(
            "cluster.instances[*].quantization: with prefill-decode disaggregation every group needs the same KV "
            f"dtype (the KV cache travels between them as is); got KV bytes per token {sorted(set(kv_per_token))}. "
            "Set the same quantization.kv on all groups (or the top-level quantization only)."
        )
    dpd = _disaggregation(exp, roles, kv_per_token[0], model.n_layers)
    spec = _speculative(exp, spec_parts, s_policies, failable=failures is not None)
    if failures is not None:
        for i, g in enumerate(exp.cluster.instances):
            if g.speculative is not None and (g.speculative.pipeline or g.chunked_prefill):
                raise ConfigError(
                    f"cluster.instances[{i}]: GPU failures (aging.failures) are not modelled together with "
                    "speculative.pipeline or chunked_prefill on a speculative group. Drop the failures or "
                    "those options."
                )
    if failures is not None and any(s.rtt_s for s in exp.carbon.sites.values()):
        raise ConfigError(
            "cluster.instances[*].aging.failures: GPU failures are not supported together with network "
            "delays (carbon.sites.*.rtt_s > 0) yet (requests in transit are not re-routed). Drop "
            "aging.failures or the sites' rtt_s."
        )
    check = getattr(router_factory, "check_experiment", None)
    if check is not None:
        check(exp, sites)
    _check_router_options(router_factory, exp)
    defer_factory = _defer_factory(exp)
    return Prepared(
        exp,
        table,
        instances,
        specs,
        router_factory,
        intensity,
        bin_s,
        ttft_slo,
        tpot_slo,
        forecast,
        failures,
        policy_seeds=s_policies,
        disaggregation=dpd,
        speculative=spec,
        sites=sites,
        groups=groups,
        perf=perf,
        deadline_s=deadline_array(exp, len(table), table.slo_class),
        defer_factory=defer_factory,
    )


def _check_prefix_caching(exp: Experiment, table: RequestTable) -> None:
    """prefix_caching needs prefix identity in the workload, in blocks the KV blocks divide."""
    for gi, g in enumerate(exp.cluster.instances):
        if not g.prefix_caching:
            continue
        where = f"cluster.instances.{gi}.prefix_caching"
        if table.prefix_ids is None:
            raise ConfigError(
                f"{where}: the workload carries no prefix identity, so nothing could hit the cache. Use a "
                f"trace with hash_ids (e.g. workload.name: mooncake_fast25_conversation), or give a synthetic "
                f"workload a shared prefix (workload.prefix) or multi-turn sessions (workload.sessions)."
            )
        H = table.prefix_block_tokens
        if H % g.block_tokens:
            raise ConfigError(
                f"{where}: the workload's prefix blocks of {H} tokens are not a whole number of this group's "
                f"KV blocks (block_tokens {g.block_tokens}); a cache hit covers whole prefix blocks. Set "
                f"block_tokens to a divisor of {H} (e.g. 16), or workload.prefix_block_tokens to a multiple of it."
            )


def _defer_factory(exp: Experiment) -> Any:
    """The release policy factory of ``defer.policy`` (None for 'none'), its options checked."""
    d = exp.defer
    if d.policy == "none":
        if d.options:
            raise ConfigError(
                f"defer.options: {sorted(d.options)} given but defer.policy is 'none'. "
                f"Set defer.policy (e.g. carbon_aware) or drop defer.options."
            )
        return None
    factory = DEFER_POLICIES.get(d.policy, field="defer.policy")
    check = getattr(factory, "check_experiment", None)
    if check is not None:
        check(exp)
    _check_options(factory, d.options, "defer.options", f"defer policy '{d.policy}'")
    make_router(factory, None, d.options)  # the policy checks the values (errors name the option)
    return factory


def _one_way_s(exp: Experiment, site: Optional[str]) -> Optional[float]:
    """One-way network delay of a group's site: rtt_s / 2 (None where no rtt is modelled)."""
    rtt = exp.carbon.sites[site].rtt_s if site is not None else None
    return rtt / 2 if rtt is not None else None


def _check_router_options(factory: Any, exp: Experiment) -> None:
    """cluster.router_options must be keyword parameters of the router's constructor."""
    opts = exp.cluster.router_options
    if not opts:
        return
    _check_options(factory, opts, "cluster.router_options", f"router '{exp.cluster.router}'")
    make_router(factory, None, opts)  # the router checks the values (errors name the option)


def _check_options(factory: Any, opts: Dict[str, Any], field: str, label: str) -> None:
    """Every key of ``opts`` must be a keyword parameter of ``factory`` (``rng`` excluded)."""
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    valid = sorted(k for k, v in params.items() if k != "rng" and v.kind in (v.KEYWORD_ONLY, v.POSITIONAL_OR_KEYWORD))
    for k in opts:
        if k not in valid:
            import difflib

            close = difflib.get_close_matches(k, valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{field}.{k}: {label} has no option '{k}' (valid: {', '.join(valid) or 'none'}).{hint}")


@dataclass(frozen=True)
class GroupInfo:
    """What a planner may know of one instance group: its config, bound performance model and
    carbon accounting inputs (``part``: static speculative parts, with ``draft_perf``; ``draft_spec``:
    the DSD draft GPU's carbon inputs)."""

    index: int
    mode: str
    config: Any
    gpu: str
    perf: Any
    carbon: InstanceCarbonSpec
    part: Optional[Dict[str, Any]] = None
    draft_carbon: Optional[InstanceCarbonSpec] = None


def _mode_label(g) -> str:
    """An instance's serving mode as routers see it (InstanceConfig.mode)."""
    if g.speculative is not None:
        return "dsd" if g.speculative.draft_gpu is not None else "spec"
    return g.role


def router_extras(p: "Prepared") -> Dict[str, Any]:
    """What routers may read besides instances (RouterContext.extras).

    ``experiment``; ``intensity`` (carbon.intensity's source); ``forecast`` (its forecast
    view with carbon.forecast, else None); ``sites`` ({site: SiteInfo with intensity,
    forecast, pue, rtt_s}, ``default`` included); ``instance_perf`` (bound performance
    model per instance index); ``groups`` (per instance group: :class:`GroupInfo`);
    ``table`` (the workload: a router must read only requests that have arrived);
    ``ttft_slo_s`` / ``tpot_slo_s`` (SLO per request id [s]); ``mean_output_tokens`` (the
    workload's mean output length, standing for the operator's historical mean);
    ``deadline_s`` (per request id: deadline after arrival [s], NaN for interactive requests;
    None when no request is deferrable); ``forecast_horizon_h`` (carbon.forecast.horizon_h,
    None without forecasts). Release policies (``defer.policy``) read the same extras.
    """
    return {
        "experiment": p.experiment,
        "intensity": p.intensity,
        "forecast": p.forecast,
        "sites": p.sites,
        "instance_perf": [b for _, b in p.instances],
        "groups": p.groups,
        "table": p.table,
        "ttft_slo_s": p.ttft_slo_s,
        "tpot_slo_s": p.tpot_slo_s,
        "mean_output_tokens": float(np.mean(p.table.n_output_tokens)),
        "deadline_s": p.deadline_s,
        "forecast_horizon_h": p.experiment.carbon.forecast.horizon_h if p.experiment.carbon.forecast else None,
    }


def make_router(factory: Any, seeds: Any = None, options: Optional[Dict[str, Any]] = None):
    """Instantiate a router with ``options`` (cluster.router_options) as keyword arguments;
    routers that draw random numbers take ``rng`` (a Generator from the policies' seed
    stream, so they never shift the arrival stream)."""
    import inspect

    options = dict(options or {})
    try:
        takes_rng = "rng" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_rng = False
    if not takes_rng:
        return factory(**options)
    ss = seeds if seeds is not None else np.random.SeedSequence(0)
    # a fixed child key (not ss.spawn(), which is stateful): every run of a prepared
    # experiment gets the same router stream, distinct from the other policies' children
    child = np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (1 << 20,))
    return factory(rng=np.random.default_rng(child), **options)


def draft_with_vocab(draft, draft_vocab_size: Optional[int], field: str):
    """``draft`` with its LM head restricted to ``draft_vocab_size`` tokens (FR-Spec), or as is."""
    if draft_vocab_size is None:
        return draft
    if not 1 <= draft_vocab_size <= draft.vocab_size:
        raise ConfigError(
            f"{field}: {draft_vocab_size} tokens, but the draft '{draft.name}' has a vocabulary of "
            f"{draft.vocab_size}. Set a value in 1..{draft.vocab_size} (e.g. 32768, FR-Spec's 32k) or omit it."
        )
    return draft.with_draft_vocab(draft_vocab_size)


def _speculative_group(g, where: str, gpu, model, catalog, perf, exp) -> Tuple[int, Dict[str, Any]]:
    """KV blocks and static parts of a speculative group; checks vocabulary and memory."""
    sp = g.speculative
    w = f"{where}.speculative"
    draft = catalog.model(sp.draft_model, f"{w}.draft_model")
    if not same_tokenizer(draft, model):
        if draft.tokenizer and model.tokenizer:
            what = f"tokenizer '{draft.tokenizer}' but the target '{model.name}' has '{model.tokenizer}'"
        else:
            what = f"vocabulary {draft.vocab_size} but the target '{model.name}' has {model.vocab_size}"
        raise ConfigError(
            f"{w}.draft_model: '{draft.name}' has {what}; speculative decoding needs the same tokenizer. "
            f"Pick a draft from the target's family."
        )
    if sp.acceptance is not None:
        try:
            acceptance_entry(sp.acceptance, draft.name, model.catalog_name)
        except ValueError as exc:
            raise ConfigError(f"{w}.acceptance: {exc}") from None
    draft = draft_with_vocab(draft, sp.draft_vocab_size, f"{w}.draft_vocab_size")
    if sp.probabilities == "top_k" and sp.top_k is not None and sp.top_k > draft.head_vocab:
        raise ConfigError(
            f"{w}.top_k: {sp.top_k} entries per draft token but the draft proposes from {draft.head_vocab} "
            f"tokens. Set top_k <= {draft.head_vocab}."
        )
    gp = GAMMA_POLICIES.get(sp.gamma_policy, field=f"{w}.gamma_policy")
    per_token = (
        sp.token_id_bytes
        + (
            draft.head_vocab
            if sp.probabilities == "full_vocab"
            else sp.top_k * (1 + sp.token_id_bytes / draft.dtype_bytes)
        )
        * draft.dtype_bytes
    )
    part: Dict[str, Any] = {
        "split": sp.draft_gpu is not None,
        "gamma_policy": gp,
        "alpha": sp.alpha_value if sp.alpha_value is not None else 0.0,
        "alpha_by_position": tuple(sp.alpha_by_position) if sp.alpha_by_position else None,
        "gamma": sp.gamma,
        "bytes_per_draft_token": per_token,
        "draft_gpu": None,
        "bandwidth_bps": float("inf"),
        "latency_s": 0.0,
        "pipeline": sp.pipeline,
        "on_draft_failure": sp.on_draft_failure,
    }
    if sp.draft_gpu is None:
        # both models' weights and KV on the target GPU(s)
        blocks = kv_capacity_blocks(
            gpu.memory_bytes,
            g.tp,
            model.weight_bytes + draft.weight_bytes,
            model.kv_bytes_per_token + draft.kv_bytes_per_token,
            g.block_tokens,
            g.memory_reserve_frac,
            where=f"{where} ({model.name} + draft {draft.name} on {g.tp}x{gpu.name})",
        )
        part["draft_perf"] = perf.bind(gpu, draft, g.tp)
        part["draft_name"] = f"{draft.name}@{gpu.name}"
        return blocks, part
    dgpu = catalog.gpu(sp.draft_gpu, f"{w}.draft_gpu")
    blocks = kv_capacity_blocks(
        gpu.memory_bytes,
        g.tp,
        model.weight_bytes,
        model.kv_bytes_per_token,
        g.block_tokens,
        g.memory_reserve_frac,
        where=f"{where} ({model.name} on {g.tp}x{gpu.name})",
    )
    d_blocks = kv_capacity_blocks(
        dgpu.memory_bytes,
        1,
        draft.weight_bytes,
        draft.kv_bytes_per_token,
        g.block_tokens,
        g.memory_reserve_frac,
        where=f"{w}.draft_gpu (draft {draft.name} on {dgpu.name})",
    )
    lk = sp.link
    draft_perf = perf.bind(dgpu, draft, 1)
    if sp.draft_aging is not None:
        from greensim.hardware.aging import degrade

        draft_perf = degrade(
            draft_perf, SimpleNamespace(aging=sp.draft_aging, age_years=sp.draft_gpu_age_years), f"{w}.draft"
        )
    part.update(
        draft_perf=draft_perf,
        draft_name=f"{draft.name}@{dgpu.name}",
        draft_gpu=dgpu,
        bandwidth_bps=link_bandwidth_bps(lk.kind, lk.bandwidth_gbs, lk.efficiency_frac),
        latency_s=lk.latency_s,
    )
    return min(blocks, d_blocks), part


def _speculative(
    exp: Experiment, parts: List[Optional[Dict[str, Any]]], seed: np.random.SeedSequence, failable: bool = False
):
    """A factory of per-instance :class:`SpecSetup` (fresh generators and policies per run), or None."""
    if all(p is None for p in parts):
        return None
    children = seed.spawn(len(parts))  # one generator per instance, whatever its mode

    def make() -> List[Optional[SpecSetup]]:
        out: List[Optional[SpecSetup]] = []
        for p, child in zip(parts, children):
            if p is None:
                out.append(None)
                continue
            out.append(
                SpecSetup(
                    draft_perf=p["draft_perf"],
                    split=p["split"],
                    draft_name=p["draft_name"],
                    draft_gpu=p["draft_gpu"].name if p["draft_gpu"] is not None else "",
                    alpha=p["alpha"],
                    gamma_max=p["gamma"],
                    gamma_policy=p["gamma_policy"](),
                    bytes_per_draft_token=p["bytes_per_draft_token"],
                    bandwidth_bps=p["bandwidth_bps"],
                    latency_s=p["latency_s"],
                    rng=np.random.default_rng(child),
                    alpha_by_position=p["alpha_by_position"],
                    pipeline=p["pipeline"],
                    on_draft_failure=p["on_draft_failure"],
                    failable=failable,
                )
            )
        return out

    return make


def _disaggregation(exp: Experiment, roles: List[str], kv_bytes_per_token: float, n_layers: int):
    """A factory of the DPD spec (decode routers hold state: one per run), or None."""
    d = exp.cluster.disaggregation
    if "prefill" not in roles:
        return None
    router_factory = DECODE_ROUTERS.get(d.decode_router, field="cluster.disaggregation.decode_router")
    lk = d.link
    bw = link_bandwidth_bps(lk.kind, lk.bandwidth_gbs, lk.efficiency_frac)

    def make() -> DisaggregationSpec:
        return DisaggregationSpec(
            tuple(roles),
            router_factory(),
            bw,
            lk.latency_s,
            lk.scope,
            kv_bytes_per_token,
            layerwise=d.layerwise,
            n_layers=n_layers,
            on_decode_failure=d.on_decode_failure,
        )

    return make


def _no_cap_with_degradation(g, where: str) -> None:
    """A power cap bounds the GPU's power; aging's power factor would multiply the capped power."""
    ag = g.aging
    if ag is not None and (ag.throughput_loss_frac_per_year or ag.power_increase_frac_per_year):
        raise ConfigError(
            f"{where}.power_cap_frac: not supported together with aging degradation "
            f"(throughput_loss_frac_per_year {ag.throughput_loss_frac_per_year}, power_increase_frac_per_year "
            f"{ag.power_increase_frac_per_year}): the degraded power would exceed the cap. Drop one of them."
        )


def _carbon_spec(exp: Experiment, gspec_gpu, g, life: float) -> InstanceCarbonSpec:
    """Carbon accounting inputs of one instance group (embodied scope, scheme, age, host share)."""
    gpu = gspec_gpu.name
    if not (life > 0):
        raise ConfigError(
            f"carbon.gpu_lifetime_years.{gpu}: lifetime {life!r} years; it must be > 0 "
            f"(embodied carbon is amortised over it). Set a positive value."
        )
    sch = exp.carbon.embodied_schemes.get(gpu)
    if sch is not None and sch.scheme == "extended" and sch.extended_years is None:
        raise ConfigError(
            f"carbon.embodied_schemes.{gpu}.extended_years: scheme 'extended' needs the extra "
            f"service years (> 0). Add extended_years."
        )
    hs = exp.carbon.host_share
    emb, host = scoped_embodied_kgco2e(
        gspec_gpu,
        exp.carbon.embodied_scope,
        exp.carbon.gpu_embodied_kgco2e.get(gpu),
        hs.embodied_kgco2e if hs else None,
        hs.gpus_per_host if hs else None,
        where="carbon.embodied_scope",
    )
    return InstanceCarbonSpec(
        gpu,
        g.tp,
        emb,
        life,
        scheme=sch.scheme if sch else "linear",
        age_years=g.age_years,
        extended_years=sch.extended_years if sch else None,
        host_kgco2e_per_gpu=host,
        site=g.site or DEFAULT_SITE,
        pue=exp.carbon.sites[g.site].pue if g.site else exp.carbon.pue,
        power_cap_w=None if getattr(g, "power_cap_frac", None) is None else g.power_cap_frac * gspec_gpu.tdp_w,
        pp=getattr(g, "pp", 1),
    )
