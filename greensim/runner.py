"""Build a simulation from an experiment, run it, and return (and optionally write) results."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from .carbon import INTENSITY_SOURCES
from .catalog import load_catalog
from .config import DEFAULT_SITE, Experiment, load_experiment, parse_experiment
from .core.disagg import DisaggregationSpec
from .core.instance import InstanceConfig
from .core.link import link_bandwidth_bps
from .core.spec_instance import SpecSetup
from .core.memory import kv_capacity_blocks
from .core.requests import RequestTable
from .core.simulation import Simulation
from .errors import ConfigError, TraceError
from .perf import PERFORMANCE_MODELS
from .policies import DECODE_ROUTERS, GAMMA_POLICIES, ROUTERS
from .results import InstanceCarbonSpec, Tables, build_tables, write_run
from .workloads import build_workload

__all__ = ["Result", "Prepared", "prepare", "simulate", "run", "default_experiment_path", "config_hash"]


@dataclass
class Result:
    """Outcome of one run: DataFrames, the summary and the run folder (if written)."""
    experiment: Experiment
    requests: pd.DataFrame
    instances: pd.DataFrame
    timeline: pd.DataFrame
    summary: Dict[str, Any]
    folder: Optional[Path]
    wall_s: float
    extra: Optional[Dict[str, pd.DataFrame]] = None   # policy tables (e.g. greenllm's "plans")

    def save_plots(self, folder: str | Path) -> List[Path]:
        """Write the run's PNG plots into ``folder`` (created if needed); return their paths.

        The same plots as a results folder: latency CDFs with SLO lines, carbon
        breakdown, queue/batch/power timeline and the carbon timeline. In a notebook,
        show one with ``IPython.display.Image(path)``.
        """
        from types import SimpleNamespace

        from .results.plots import plot_run
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        before = set(out.glob("*.png"))
        tables = SimpleNamespace(requests=self.requests, instances=self.instances,
                                 timeline=self.timeline, summary=self.summary)
        plot_run(out, tables, self.experiment.slo.ttft_s, self.experiment.slo.tpot_s, self.experiment.name)
        return sorted(set(out.glob("*.png")) | before)


def default_experiment_path() -> Path:
    """The bundled quickstart experiment."""
    return Path(str(resources.files("greensim._experiments") / "quickstart.yaml"))


def config_hash(exp: Experiment) -> str:
    blob = json.dumps(exp.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def _version() -> str:
    try:
        return metadata.version("greensim")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0+unknown"


def _slo_arrays(exp: Experiment, n: int, slo_class: Optional[np.ndarray]):
    """Per-request SLO pairs: the class's pair where a request names a class, else the default."""
    ttft = np.full(n, exp.slo.ttft_s)
    tpot = np.full(n, exp.slo.tpot_s)
    if slo_class is None:
        return ttft, tpot
    for name in sorted(set(slo_class) - {""}):
        pair = exp.slo.classes.get(name)
        if pair is None:
            raise ConfigError(
                f"slo.classes: the trace names SLO class '{name}' but the experiment defines "
                f"{sorted(exp.slo.classes) or 'no classes'}. Add slo.classes.{name} with ttft_s and tpot_s.")
        m = slo_class == name
        ttft[m], tpot[m] = pair.ttft_s, pair.tpot_s
    return ttft, tpot


def _to_experiment(experiment: Any, overrides) -> Experiment:
    if isinstance(experiment, Experiment):
        if overrides:
            from .config import apply_overrides
            from .overrides import check_override_keys
            data = apply_overrides(experiment.model_dump(mode="json"), overrides)
            check_override_keys(data, overrides)
            return parse_experiment(data)
        return experiment
    if isinstance(experiment, dict):
        from .config import apply_overrides
        from .overrides import check_override_keys
        data = apply_overrides(experiment, overrides or {})
        check_override_keys(data, overrides)
        return parse_experiment(data)
    return load_experiment(experiment, overrides)


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
    forecast: Any = None        # greensim.carbon.forecast.ForecastView (carbon.forecast), for policies
    failures: Any = None        # greensim.aging.WeibullFailureModel (GPU aging), or None
    policy_seeds: Any = None    # numpy SeedSequence of the policies' random streams (routers...)
    disaggregation: Optional[Callable[[], DisaggregationSpec]] = None   # DPD: fresh spec per run
    speculative: Optional[Callable[[], List[Optional[SpecSetup]]]] = None  # DSD: fresh setups per run
    sites: Any = None           # {site: greensim.carbon.sites.SiteInfo}, "default" included
    groups: Optional[List[Any]] = None   # per instance group: GroupInfo (for planners: router extras "groups")


def prepare(exp: Experiment) -> Prepared:
    """Resolve catalogue names, build the workload and bind performance models."""
    catalog = load_catalog(exp.catalog.gpu_dirs, exp.catalog.model_dirs)
    model = catalog.model(exp.model, "model")
    root = np.random.SeedSequence(exp.seed)
    s_workload, s_policies = root.spawn(2)
    table = build_workload(exp.workload, s_workload)
    if len(table) == 0:
        raise TraceError("workload: no requests to simulate.")
    perf_cls = PERFORMANCE_MODELS.get(exp.performance.model, field="performance.model")
    perf = perf_cls(eta_compute=exp.performance.eta_compute, eta_memory=exp.performance.eta_memory,
                    iteration_overhead_s=exp.performance.iteration_overhead_s,
                    band=exp.performance.band, profile_dirs=exp.performance.profile_dirs,
                    decode_power=exp.performance.decode_power)
    instances, specs, roles, spec_parts, draft_specs, groups = [], [], [], [], [], []
    for gi, g in enumerate(exp.cluster.instances):
        where = f"cluster.instances.{gi}"
        gpu = catalog.gpu(g.gpu, f"{where}.gpu")
        gpu.require_power(f"{where}.gpu")
        if g.speculative is not None:
            kv_blocks, part = _speculative_group(g, where, gpu, model, catalog, perf, exp)
        else:
            kv_blocks = kv_capacity_blocks(gpu.memory_bytes, g.tp, model.weight_bytes, model.kv_bytes_per_token,
                                           g.block_tokens, g.memory_reserve_frac,
                                           where=f"{where} ({model.name} on {g.tp}x{gpu.name})")
            part = None
        bound = perf.bind(gpu, model, g.tp)
        if g.aging is not None:
            from .aging import degrade
            bound = degrade(bound, g, where)
        emb = exp.carbon.gpu_embodied_kgco2e.get(gpu.name, gpu.embodied_kgco2e)
        life = exp.carbon.gpu_lifetime_years.get(gpu.name, exp.carbon.lifetime_years)
        gspec = _carbon_spec(exp, gpu.name, g, emb, life)
        dspec = None
        if part is not None and part["split"]:
            dg = part["draft_gpu"]
            dspec = _carbon_spec(
                exp, dg.name, SimpleNamespace(tp=1, age_years=g.speculative.draft_gpu_age_years, site=g.site),
                exp.carbon.gpu_embodied_kgco2e.get(dg.name, dg.embodied_kgco2e),
                exp.carbon.gpu_lifetime_years.get(dg.name, exp.carbon.lifetime_years))
        groups.append(GroupInfo(gi, _mode_label(g), g, gpu.name, bound, gspec, part, dspec))
        for _ in range(g.count):
            cfg = InstanceConfig(name=g.name or f"{gpu.name}x{g.tp}", gpu=gpu.name, tp=g.tp,
                                 kv_blocks=kv_blocks, block_tokens=g.block_tokens,
                                 max_batch_size=g.max_batch_size, max_batched_tokens=g.max_batched_tokens,
                                 chunked_prefill=g.chunked_prefill,
                                 watermark_blocks=int(g.watermark_frac * kv_blocks),
                                 group=gi, site=g.site or DEFAULT_SITE, mode=_mode_label(g),
                                 network_delay_s=_one_way_s(exp, g.site))
            instances.append((cfg, bound))
            specs.append(gspec)
            roles.append(g.role)
            spec_parts.append(part)
            if dspec is not None:
                draft_specs.append(dspec)
    specs += draft_specs      # draft GPUs of split pairs come after the other instances
    for key in list(exp.carbon.gpu_embodied_kgco2e) + list(exp.carbon.gpu_lifetime_years) + list(exp.carbon.embodied_schemes):
        catalog.gpu(key, "carbon.gpu_embodied_kgco2e / carbon.gpu_lifetime_years key")
    router_factory = ROUTERS.get(exp.cluster.router, field="cluster.router")
    ic = exp.carbon.intensity
    intensity = INTENSITY_SOURCES.get(ic.kind, field="carbon.intensity.kind")(
        **{k: v for k, v in ic.model_dump().items() if k != "kind"})
    from .carbon.sites import build_site_sources, site_infos
    site_sources = build_site_sources(exp, intensity)
    specs = [dataclasses.replace(sp, intensity=site_sources[sp.site]) for sp in specs]
    if exp.carbon.compare_regions and ic.kind != "series":
        raise ConfigError("carbon.compare_regions: needs carbon.intensity.kind 'series' (its start, timezone and "
                          f"basis are reused), got kind '{ic.kind}'. Use a series intensity or drop compare_regions.")
    last = float(table.arrival_s[-1])
    bin_s = exp.simulation.timeline_bin_s or max(last / 400.0, 1e-3)
    ttft_slo, tpot_slo = _slo_arrays(exp, len(table), table.slo_class)
    forecast = forecaster = None
    if exp.carbon.forecast is not None:
        from .carbon.forecast import ForecastView, make_forecaster
        fo = exp.carbon.forecast
        if not any(hasattr(src, "series") for src in site_sources.values()):
            raise ConfigError(f"carbon.forecast: forecasts need a history, i.e. carbon.intensity.kind 'series' "
                              f"(got '{ic.kind}') or a site with a series. Use a series or drop carbon.forecast.")
        kw = {"lag_h": fo.lag_h} if fo.kind == "seasonal_naive" else {}
        forecaster = make_forecaster(fo.kind, **kw)
        if ic.kind == "series":
            forecast = ForecastView(intensity, forecaster, oracle=fo.oracle)
    sites = site_infos(exp, site_sources, forecaster)
    from .aging import failure_model_for
    failures = failure_model_for(exp)
    dpd = _disaggregation(exp, roles, model.kv_bytes_per_token, model.n_layers)
    spec = _speculative(exp, spec_parts, s_policies)
    if failures is not None and any(s.rtt_s for s in exp.carbon.sites.values()):
        raise ConfigError("cluster.instances[*].aging.failures: GPU failures are not supported together with network "
                          "delays (carbon.sites.*.rtt_s > 0) yet (requests in transit are not re-routed). Drop "
                          "aging.failures or the sites' rtt_s.")
    check = getattr(router_factory, "check_experiment", None)
    if check is not None:
        check(exp, sites)
    _check_router_options(router_factory, exp)
    if failures is not None and (dpd is not None or spec is not None):
        raise ConfigError("cluster.instances[*].aging.failures: GPU failures are not supported together with "
                          "disaggregation roles or speculative decoding yet (in-flight KV transfers and draft "
                          "GPUs are not re-routed). Drop aging.failures or run colocated instances.")
    return Prepared(exp, table, instances, specs, router_factory, intensity, bin_s, ttft_slo, tpot_slo, forecast,
                    failures, policy_seeds=s_policies, disaggregation=dpd, speculative=spec, sites=sites,
                    groups=groups)


def _one_way_s(exp: Experiment, site: Optional[str]) -> Optional[float]:
    """One-way network delay of a group's site: rtt_s / 2 (None where no rtt is modelled)."""
    rtt = exp.carbon.sites[site].rtt_s if site is not None else None
    return rtt / 2 if rtt is not None else None


def _check_router_options(factory: Any, exp: Experiment) -> None:
    """cluster.router_options must be keyword parameters of the router's constructor."""
    import inspect
    opts = exp.cluster.router_options
    if not opts:
        return
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
            raise ConfigError(f"cluster.router_options.{k}: router '{exp.cluster.router}' has no option '{k}' "
                              f"(valid: {', '.join(valid) or 'none'}).{hint}")
    make_router(factory, None, opts)          # the router checks the values (errors name the option)


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
    workload's mean output length, standing for the operator's historical mean).
    """
    return {"experiment": p.experiment, "intensity": p.intensity, "forecast": p.forecast,
            "sites": p.sites, "instance_perf": [b for _, b in p.instances], "groups": p.groups,
            "table": p.table, "ttft_slo_s": p.ttft_slo_s, "tpot_slo_s": p.tpot_slo_s,
            "mean_output_tokens": float(np.mean(p.table.n_output_tokens))}


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


def _speculative_group(g, where: str, gpu, model, catalog, perf, exp) -> Tuple[int, Dict[str, Any]]:
    """KV blocks and static parts of a speculative group; checks vocabulary and memory."""
    sp = g.speculative
    w = f"{where}.speculative"
    draft = catalog.model(sp.draft_model, f"{w}.draft_model")
    if draft.vocab_size != model.vocab_size:
        raise ConfigError(
            f"{w}.draft_model: '{draft.name}' has vocabulary {draft.vocab_size} but the target "
            f"'{model.name}' has {model.vocab_size}; speculative decoding needs the same tokenizer. "
            f"Pick a draft from the target's family.")
    gp = GAMMA_POLICIES.get(sp.gamma_policy, field=f"{w}.gamma_policy")
    per_token = sp.token_id_bytes + (draft.vocab_size if sp.probabilities == "full_vocab" else
                                     sp.top_k * (1 + sp.token_id_bytes / draft.dtype_bytes)) * draft.dtype_bytes
    part: Dict[str, Any] = {"split": sp.draft_gpu is not None, "gamma_policy": gp,
                            "alpha": sp.alpha if sp.alpha is not None else 0.0,
                            "alpha_by_position": tuple(sp.alpha_by_position) if sp.alpha_by_position else None,
                            "gamma": sp.gamma, "bytes_per_draft_token": per_token, "draft_gpu": None,
                            "bandwidth_bps": float("inf"), "latency_s": 0.0}
    if sp.draft_gpu is None:
        # both models' weights and KV on the target GPU(s)
        blocks = kv_capacity_blocks(gpu.memory_bytes, g.tp, model.weight_bytes + draft.weight_bytes,
                                    model.kv_bytes_per_token + draft.kv_bytes_per_token, g.block_tokens,
                                    g.memory_reserve_frac,
                                    where=f"{where} ({model.name} + draft {draft.name} on {g.tp}x{gpu.name})")
        part["draft_perf"] = perf.bind(gpu, draft, g.tp)
        part["draft_name"] = f"{draft.name}@{gpu.name}"
        return blocks, part
    dgpu = catalog.gpu(sp.draft_gpu, f"{w}.draft_gpu")
    blocks = kv_capacity_blocks(gpu.memory_bytes, g.tp, model.weight_bytes, model.kv_bytes_per_token,
                                g.block_tokens, g.memory_reserve_frac,
                                where=f"{where} ({model.name} on {g.tp}x{gpu.name})")
    d_blocks = kv_capacity_blocks(dgpu.memory_bytes, 1, draft.weight_bytes, draft.kv_bytes_per_token,
                                  g.block_tokens, g.memory_reserve_frac,
                                  where=f"{w}.draft_gpu (draft {draft.name} on {dgpu.name})")
    lk = sp.link
    part.update(draft_perf=perf.bind(dgpu, draft, 1), draft_name=f"{draft.name}@{dgpu.name}", draft_gpu=dgpu,
                bandwidth_bps=link_bandwidth_bps(lk.kind, lk.bandwidth_gbs, lk.efficiency_frac),
                latency_s=lk.latency_s)
    return min(blocks, d_blocks), part


def _speculative(exp: Experiment, parts: List[Optional[Dict[str, Any]]], seed: np.random.SeedSequence):
    """A factory of per-instance :class:`SpecSetup` (fresh generators and policies per run), or None."""
    if all(p is None for p in parts):
        return None
    children = seed.spawn(len(parts))     # one generator per instance, whatever its mode

    def make() -> List[Optional[SpecSetup]]:
        out: List[Optional[SpecSetup]] = []
        for p, child in zip(parts, children):
            if p is None:
                out.append(None)
                continue
            out.append(SpecSetup(
                draft_perf=p["draft_perf"], split=p["split"], draft_name=p["draft_name"],
                draft_gpu=p["draft_gpu"].name if p["draft_gpu"] is not None else "",
                alpha=p["alpha"], gamma_max=p["gamma"], gamma_policy=p["gamma_policy"](),
                bytes_per_draft_token=p["bytes_per_draft_token"], bandwidth_bps=p["bandwidth_bps"],
                latency_s=p["latency_s"], rng=np.random.default_rng(child),
                alpha_by_position=p["alpha_by_position"]))
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
        return DisaggregationSpec(tuple(roles), router_factory(), bw, lk.latency_s, lk.scope, kv_bytes_per_token,
                                  layerwise=d.layerwise, n_layers=n_layers)
    return make


def simulate(p: Prepared, progress: Optional[Callable[[float], None]] = None,
             max_run_iterations: Optional[int] = None) -> Tables:
    """Run a prepared experiment and build its tables."""
    router = make_router(p.router_factory, p.policy_seeds, p.experiment.cluster.router_options)
    sim = Simulation(p.table, p.instances, router, p.bin_s, progress=progress,
                     max_run_iterations=max_run_iterations, failures=p.failures,
                     disaggregation=p.disaggregation() if p.disaggregation is not None else None,
                     speculative=p.speculative() if p.speculative is not None else None,
                     router_extras=router_extras(p))
    out = sim.run()
    tables = build_tables(out, p.specs, p.intensity, p.experiment.carbon.pue, p.ttft_slo_s, p.tpot_slo_s)
    if p.experiment.carbon.compare_regions:
        from .carbon.regions import add_region_totals
        add_region_totals(tables, p.experiment, out.bin_s)
    report = getattr(router, "report", None)    # optional: a policy's own tables and summary values
    if report is not None:
        extra_tables, extra_summary = report()
        tables.extra = dict(extra_tables)
        tables.summary.update(extra_summary)
    return tables


def _carbon_spec(exp: Experiment, gpu: str, g, emb: float, life: float) -> InstanceCarbonSpec:
    """Carbon accounting inputs of one instance group (scheme, age, host share)."""
    if not (life > 0):
        raise ConfigError(f"carbon.gpu_lifetime_years.{gpu}: lifetime {life!r} years; it must be > 0 "
                          f"(embodied carbon is amortised over it). Set a positive value.")
    sch = exp.carbon.embodied_schemes.get(gpu)
    if sch is not None and sch.scheme == "extended" and sch.extended_years is None:
        raise ConfigError(f"carbon.embodied_schemes.{gpu}.extended_years: scheme 'extended' needs the extra "
                          f"service years (> 0). Add extended_years.")
    hs = exp.carbon.host_share
    return InstanceCarbonSpec(gpu, g.tp, emb, life, scheme=sch.scheme if sch else "linear", age_years=g.age_years,
                              extended_years=sch.extended_years if sch else None,
                              host_kgco2e_per_gpu=hs.embodied_kgco2e / hs.gpus_per_host if hs else 0.0,
                              site=g.site or DEFAULT_SITE,
                              pue=exp.carbon.sites[g.site].pue if g.site else exp.carbon.pue)


def run(experiment: Any = None, overrides: Any = None, write: bool = True,
        out_dir: str | Path | None = None, progress: Optional[bool] = None) -> Result:
    """Run one experiment.

    Parameters
    ----------
    experiment : path to a YAML file, a dict, or an :class:`Experiment`; default: the
        bundled quickstart.
    overrides : ``{"dotted.key": value}`` or ``["dotted.key=value", ...]``.
    write : write the results folder (``<output.dir>/<name>/<hash8>/``).
    out_dir : overrides ``output.dir``.
    progress : show a progress bar (default: ``simulation.progress``).
    """
    t_wall = time.perf_counter()
    exp = _to_experiment(default_experiment_path() if experiment is None else experiment, overrides)
    p = prepare(exp)
    show = exp.simulation.progress if progress is None else progress
    bar = cb = None
    if show:
        from tqdm import tqdm
        last = float(p.table.arrival_s[-1])
        bar = tqdm(total=round(last, 1), unit="sim-s", desc=exp.name, delay=2.0, leave=False)

        def cb(now: float) -> None:
            bar.update(round(now, 1) - bar.n)
    try:
        tables = simulate(p, progress=cb)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t_wall
    tables.summary["sim_wall_s"] = wall
    folder = None
    if write:
        h = config_hash(exp)
        base = Path(out_dir) if out_dir is not None else Path(exp.output.dir)
        manifest = {
            "greensim_version": _version(), "config_sha256": h, "seed": exp.seed,
            "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
            "wall_s": wall, "n_requests": len(p.table), "workload_notes": list(p.table.notes),
        }
        plot = None
        if exp.output.plots:
            from .results.plots import plot_run

            def plot(folder: Path) -> None:
                plot_run(folder, tables, exp.slo.ttft_s, exp.slo.tpot_s, exp.name)
                plans = (getattr(tables, "extra", None) or {}).get("plans")
                if plans is not None and len(plans):        # router greenllm's plan history
                    from .online import plot_class_plan
                    plot_class_plan(plans, folder / "plan.png", exp.name)
        folder = write_run(base / exp.name / h[:8], exp.model_dump(mode="json"), tables, manifest,
                           exp.output.table_format, plot)
    return Result(exp, tables.requests, tables.instances, tables.timeline, tables.summary, folder, wall,
                  extra=getattr(tables, "extra", None) or {})
