"""Run a prepared experiment on the engine and build its tables."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any, Callable, Optional, Tuple

from greensim.assembly.prepare import Prepared, make_router, router_extras
from greensim.base.errors import ConfigError
from greensim.core.recorder import IterationRecorder
from greensim.core.simulation import Simulation
from greensim.experiment.quantization import QUALITY_NOTE, quantization_on
from greensim.results import Tables, build_tables
from greensim.results.deferral import add_deadlines

__all__ = ["simulate", "EngineMemo"]

#: carbon-section fields that reach the engine (network delays come from the sites' rtt_s)
_ENGINE_CARBON_FIELDS = ("sites",)


class EngineMemo:
    """Engine runs kept by the content of what the engine reads, for callers that simulate one
    deployment again under other carbon or SLO accounting.

    The engine (:class:`~greensim.core.simulation.Simulation`) sees grid intensity, embodied
    carbon, PUE and SLOs only through policies bound to the run's context (routers with a
    ``bind`` method, release policies): without those, two experiments that differ only in
    ``name``, ``slo``, ``output`` or the carbon accounting (every ``carbon`` field but
    ``sites``) give the same engine outcome, and only the tables built from it differ. The
    planner's reproduction of the paper (``experiments/paper``) re-plans each deployment under
    3 grids x 5 lifetimes x 4 SLO scales; with a memo each distinct engine run is simulated once.
    Runs with bound policies, release policies or per-iteration traces are never memoised.

    Keep a memo for one batch of work (it does not notice catalogue or trace files edited
    meanwhile); ``max_entries`` bounds it (least recently used out first).
    """

    def __init__(self, max_entries: int = 512):
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"EngineMemo(max_entries={max_entries!r}): give a whole number >= 1 (default 512).")
        self.max_entries = max_entries
        self._runs: "OrderedDict[str, Tuple[Any, Any]]" = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(p: Prepared, router: Any) -> Optional[str]:
        """Content key of the engine run of ``p`` (None: this run must not be memoised)."""
        exp = p.experiment
        if getattr(router, "bind", None) is not None or p.defer_factory is not None or exp.output.iterations:
            return None
        d = exp.model_dump(mode="json")
        for k in ("name", "slo", "output"):
            d.pop(k, None)
        d["carbon"] = {k: v for k, v in (d.get("carbon") or {}).items() if k in _ENGINE_CARBON_FIELDS}
        d["_bin_s"] = float(p.bin_s).hex()
        text = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> Optional[Tuple[Any, Any]]:
        hit = self._runs.get(key)
        if hit is None:
            self.misses += 1
            return None
        self._runs.move_to_end(key)
        self.hits += 1
        return hit

    def put(self, key: str, out: Any, router: Any) -> None:
        self._runs[key] = (out, router)
        while len(self._runs) > self.max_entries:
            self._runs.popitem(last=False)


def simulate(
    p: Prepared,
    progress: Optional[Callable[[float], None]] = None,
    max_run_iterations: Optional[int] = None,
    memo: Optional[EngineMemo] = None,
) -> Tables:
    """Run a prepared experiment and build its tables.

    ``memo``: reuse the engine's outcome of an earlier run that read the same inputs
    (:class:`EngineMemo`); the tables are always built from this experiment's accounting."""
    router = make_router(p.router_factory, p.policy_seeds, p.experiment.cluster.router_options)
    key = EngineMemo.key(p, router) if memo is not None and max_run_iterations is None else None
    hit = memo.get(key) if memo is not None and key is not None else None
    if hit is not None:
        out, router = hit
        return _tables(p, out, router, None, consume=False)
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
    if memo is not None and key is not None:
        memo.put(key, out, router)
    # building the tables may reuse the record's arrays (less memory) unless the memo keeps them
    return _tables(p, out, router, recorder, consume=memo is None or key is None)


def _tables(p: Prepared, out: Any, router: Any, recorder: Optional[IterationRecorder], consume: bool) -> Tables:
    """The run's tables from the engine's outcome ``out`` and this experiment's accounting
    (``consume``: ``out.record`` may be overwritten, as nothing reads it afterwards)."""
    tables = build_tables(
        out,
        p.specs,
        p.intensity,
        p.experiment.carbon.pue,
        p.ttft_slo_s,
        p.tpot_slo_s,
        accounting=p.experiment.carbon.accounting,
        consume=consume,
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
