"""Run a prepared experiment on the engine and build its tables."""

from __future__ import annotations

from typing import Callable, Optional

from greensim.assembly.prepare import Prepared, make_router, router_extras
from greensim.core.recorder import IterationRecorder
from greensim.core.simulation import Simulation
from greensim.experiment.quantization import QUALITY_NOTE, quantization_on
from greensim.results import Tables, build_tables
from greensim.results.deferral import add_deadlines

__all__ = ["simulate"]


def simulate(
    p: Prepared, progress: Optional[Callable[[float], None]] = None, max_run_iterations: Optional[int] = None
) -> Tables:
    """Run a prepared experiment and build its tables."""
    router = make_router(p.router_factory, p.policy_seeds, p.experiment.cluster.router_options)
    out_opts = p.experiment.output
    recorder = IterationRecorder(out_opts.iterations_max) if out_opts.iterations else None
    sim = Simulation(
        p.table,
        p.instances,
        router,
        p.bin_s,
        progress=progress,
        max_run_iterations=max_run_iterations,
        failures=p.failures,
        disaggregation=p.disaggregation() if p.disaggregation is not None else None,
        speculative=p.speculative() if p.speculative is not None else None,
        router_extras=router_extras(p),
        release=make_router(p.defer_factory, p.policy_seeds, p.experiment.defer.options)
        if p.defer_factory is not None
        else None,
        recorder=recorder,
    )
    out = sim.run()
    tables = build_tables(
        out,
        p.specs,
        p.intensity,
        p.experiment.carbon.pue,
        p.ttft_slo_s,
        p.tpot_slo_s,
        accounting=p.experiment.carbon.accounting,
        consume=True,  # the record is not read after this
    )
    if out.links:  # DPD: the KV links' totals and utilisation over time
        from greensim.results.links import link_tables

        lt, ltl, ls = link_tables(out.links, out.horizon_s, out.bin_s)
        tables.extra = {**(tables.extra or {}), "links": lt, "link_timeline": ltl}
        tables.summary.update(ls)
    if p.failures is not None:  # GPU failures: when each GPU was down (failures.parquet, timeline.png)
        from greensim.results.failures import failure_table

        tables.extra = {**(tables.extra or {}), "failures": failure_table(out.instances, out.horizon_s)}
    if recorder is not None:  # output.iterations: iterations.parquet and trace.json
        _add_iterations(tables, recorder, out)
    if p.deadline_s is not None:  # deferrable requests: judged by their deadline
        add_deadlines(tables, p.deadline_s, p.specs, p.intensity, p.experiment.carbon.pue)
    if p.experiment.carbon.compare_regions:
        from greensim.carbon.regions import add_region_totals

        add_region_totals(tables, p.experiment, out.bin_s)
    if quantization_on(p.experiment):
        tables.summary["quantization_note"] = QUALITY_NOTE
    report = getattr(router, "report", None)  # optional: a policy's own tables and summary values
    if report is not None:
        extra_tables, extra_summary = report()
        tables.extra = {**(tables.extra or {}), **dict(extra_tables)}
        tables.summary.update(extra_summary)
    return tables


def _add_iterations(tables: Tables, rec: IterationRecorder, out) -> None:
    """The per-iteration table (an extra table: ``iterations.parquet``), trace.json and the summary values."""
    from greensim.results.iterations import iteration_summary, iteration_table, write_trace

    df = iteration_table(rec, out.instances)
    summ = iteration_summary(rec)
    idle = {inst.index: float(inst.perf.idle_power_w) for inst in out.instances}
    meta = {"source": "greensim output.iterations", **summ}
    tables.extra = {**(tables.extra or {}), "iterations": df}
    tables.files = {**(tables.files or {}), "trace.json": lambda path: write_trace(df, path, idle, meta)}
    tables.summary.update(summ)
