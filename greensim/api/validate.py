"""Static checks of an experiment: everything that can fail before simulating."""

from __future__ import annotations

from pathlib import Path

from greensim.assembly.prepare import bind_group_pipeline, group_model, pipeline_kv_blocks_for
from greensim.carbon.registry import INTENSITY_SOURCES
from greensim.core.memory import kv_capacity_blocks
from greensim.experiment.load import load_experiment
from greensim.experiment.workload import EmpiricalLength, SyntheticWorkload, TraceWorkload
from greensim.hardware.catalog import load_catalog
from greensim.hardware.registry import PERFORMANCE_MODELS
from greensim.policies.registry import ROUTERS
from greensim.workloads.traces import read_trace_frame

__all__ = ["validate_experiment"]


def validate_experiment(path: str | Path) -> str:
    """Raise a GreensimError on the first problem; return a one-line OK message."""
    exp = load_experiment(path)
    cat = load_catalog(exp.catalog.gpu_dirs, exp.catalog.model_dirs)
    model = cat.model(exp.model, "model")
    ROUTERS.get(exp.cluster.router, field="cluster.router")
    PERFORMANCE_MODELS.get(exp.performance.model, field="performance.model")
    INTENSITY_SOURCES.get(exp.carbon.intensity.kind, field="carbon.intensity.kind")
    perf = PERFORMANCE_MODELS.get(exp.performance.model)()
    n_gpus = 0
    for i, g in enumerate(exp.cluster.instances):
        gpu = cat.gpu(g.gpu, f"cluster.instances.{i}.gpu")
        gpu.require_power(f"cluster.instances.{i}.gpu")
        gm = group_model(model, exp, g, f"cluster.instances.{i}", gpu)  # its quantization / expert_parallel
        if g.pp > 1:  # pipeline stages: each fits its layers, weights and KV; all of them bind
            pipeline_kv_blocks_for(gpu, gm, g, f"cluster.instances.{i}")
            bind_group_pipeline(lambda m: perf.bind(gpu, m, g.tp), gpu, gm, g, f"cluster.instances.{i}")
        else:
            kv_capacity_blocks(
                gpu.memory_bytes,
                g.tp,
                gm.weight_bytes,
                gm.kv_bytes_per_token,
                g.block_tokens,
                g.memory_reserve_frac,
                where=f"cluster.instances.{i} ({gm.name} on {g.tp}x{gpu.name})",
            )
            perf.bind(gpu, gm, g.tp)
        n_gpus += g.tp * g.pp * g.count
    for field in ("gpu_embodied_kgco2e", "gpu_lifetime_years", "embodied_schemes"):
        for key in getattr(exp.carbon, field):
            cat.gpu(key, f"carbon.{field}.{key}")
    ic = exp.carbon.intensity  # build it: checks region, start inside the series, gaps, NaN
    src = INTENSITY_SOURCES.get(ic.kind)(**{k: v for k, v in ic.model_dump().items() if k != "kind"})
    from greensim.carbon.sites import build_site_sources

    build_site_sources(exp, src)  # each site's region / intensity, and one shared clock
    wl = exp.workload
    if isinstance(wl, (TraceWorkload, SyntheticWorkload)):
        import numpy as np

        from greensim.assembly.prepare import context_limit
        from greensim.workloads import build_workload

        # vectorised: cheap, and checks every row (and each request against the model's context)
        context_limit(build_workload(wl, np.random.SeedSequence(exp.seed)), model, wl)
    else:
        for k in ("input_tokens", "output_tokens"):
            d = getattr(wl, k)
            if isinstance(d, EmpiricalLength):
                df = read_trace_frame(d.path, where=f"workload.{k}.path")
                if d.column not in df.columns:
                    from greensim.base.errors import TraceError

                    raise TraceError(f"workload.{k}.column: '{d.column}' is not a column of {d.path}.")
    return (
        f"{path}: OK ({exp.name}: {model.name} on {n_gpus} GPU(s) in "
        f"{sum(g.count for g in exp.cluster.instances)} instance(s), workload {wl.kind})"
    )
