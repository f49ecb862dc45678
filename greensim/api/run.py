"""``greensim.run``: run one experiment, return its tables and optionally write a results folder."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.assembly.uncertainty import RELEASE_AFTER_REQUESTS, band_corners
from greensim.base.errors import ConfigError
from greensim.base.lazy import lazy_module
from greensim.base.memory import release_free_memory
from greensim.base.paths import bundled
from greensim.base.version import provenance
from greensim.experiment.load import config_hash, to_experiment
from greensim.experiment.schema import Experiment
from greensim.results import check_writable, write_run

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = ["Result", "run", "to_experiment", "default_experiment_path", "config_hash"]

log = logging.getLogger(__name__)


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
    extra: Optional[Dict[str, pd.DataFrame]] = None  # policy tables (e.g. greenllm's "plans")

    @property
    def bands(self) -> pd.DataFrame:
        """The headline metrics' uncertainty bands (``summary["bands"]``): one row per metric,
        columns ``low``, ``point``, ``high``, ``optimistic``, ``pessimistic``; empty without bands
        (``performance.uncertainty: none``, or a run at a corner band)."""
        b = self.summary.get("bands") or {}
        cols = ["low", "point", "high", "optimistic", "pessimistic"]
        return pd.DataFrame.from_dict(b, orient="index", columns=cols) if b else pd.DataFrame(columns=cols)

    @property
    def iterations(self) -> Optional[pd.DataFrame]:
        """One row per engine iteration, speculative pass and KV transfer (``iterations.parquet``,
        columns :data:`greensim.results.iterations.COLUMNS`); None unless ``output.iterations`` was on.
        ``greensim.results.iterations.write_trace(res.iterations, "trace.json")`` writes its Perfetto trace."""
        return (self.extra or {}).get("iterations")

    def save_plots(self, folder: str | Path) -> List[Path]:
        """Write the run's PNG plots into ``folder`` (created if needed); return their paths.

        The same plots as a results folder: latency CDFs with SLO lines, carbon
        breakdown, queue/batch/power timeline, the carbon timeline, bands, (greenllm) plan and,
        for a run with speculative instances, speculative.png. In a notebook,
        show one with ``IPython.display.Image(path)``.
        """
        from greensim.results.plots import plot_run

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        before = set(out.glob("*.png"))
        tables = SimpleNamespace(
            requests=self.requests,
            instances=self.instances,
            timeline=self.timeline,
            summary=self.summary,
            extra=self.extra,
        )
        plot_run(out, tables, self.experiment.slo.ttft_s, self.experiment.slo.tpot_s, self.experiment.name)
        return sorted(set(out.glob("*.png")) | before)


def default_experiment_path() -> Path:
    """The bundled quickstart experiment."""
    return bundled("experiments") / "quickstart.yaml"


def check_not_all_rejected(summary: Dict[str, Any], requests: pd.DataFrame) -> None:
    """Stop with the reason when every request was rejected (the summary would be all nan)."""
    n = int(summary.get("n_requests", 0) or 0)
    if n and int(summary.get("n_rejected", 0) or 0) == n:
        reasons = requests["reject_reason"].astype(str) if "reject_reason" in requests else pd.Series([], dtype=str)
        given = reasons[reasons != ""]
        why = f" (e.g. request {given.index[0]}: {given.iloc[0]})" if len(given) else ""
        raise ConfigError(
            f"every one of the {n} requests was rejected{why}, so the run has no results. Change the "
            f"cluster (e.g. cluster.instances.N.max_batched_tokens, chunked_prefill, GPU or tp) or the workload."
        )


def run(
    experiment: Any = None,
    overrides: Any = None,
    write: bool = True,
    out_dir: str | Path | None = None,
    progress: Optional[bool] = None,
) -> Result:
    """Run one experiment.

    Parameters
    ----------
    experiment : path to a YAML file, a dict, or an :class:`Experiment`; default: the
        bundled quickstart.
    overrides : ``{"dotted.key": value}`` or ``["dotted.key=value", ...]``.
    write : write the results folder (``<output.dir>/<name>/<hash8>/``).
    out_dir : overrides ``output.dir``.
    progress : show a progress bar (default: ``simulation.progress``).

    With ``performance.uncertainty: corners`` (the default, at ``performance.band: nominal``) the
    experiment is also simulated at the two band corners (same seed) and the summary gains
    ``bands`` (``{metric: {"low", "point", "high", "optimistic", "pessimistic"}}``, also
    :attr:`Result.bands`) and ``uncertainty`` (how they were obtained:
    :mod:`greensim.assembly.uncertainty`); tables, plots and point values are the nominal run's.
    """
    t_wall = time.perf_counter()
    exp = to_experiment(default_experiment_path() if experiment is None else experiment, overrides)
    if write:  # before simulating: a run that cannot be saved should not run for hours first
        check_writable((Path(out_dir) if out_dir is not None else Path(exp.output.dir)) / exp.name)
    show = exp.simulation.progress if progress is None else progress

    def run_one(prep, label: Optional[str] = None):
        bar = cb = None
        if show:
            from tqdm import tqdm

            last = float(prep.table.arrival_s[-1])
            desc = exp.name if label is None else f"{exp.name} ({label})"
            bar = tqdm(total=round(last, 1), unit="sim-s", desc=desc, delay=2.0, leave=False)

            def cb(now: float) -> None:
                bar.update(round(now, 1) - bar.n)

        try:
            return simulate(prep, progress=cb)
        finally:
            if bar is not None:
                bar.close()

    # The band corners run first and keep only their summaries, so that their engines and tables
    # are freed before the nominal tables are built: peak memory is one run's, not two. The nominal
    # run is prepared after them, so that its workload is not held while they run (1M requests:
    # ~40 MB less; the corners prepare the same experiment, so a bad one fails there just as early).
    t_corners = time.perf_counter()
    with_bands = band_corners(exp, run_one=run_one)
    corners_wall = time.perf_counter() - t_corners
    p = prepare(exp)
    log.info(
        "%s: %d requests, %s on %d instance(s), seed %d",
        exp.name,
        len(p.table),
        exp.model,
        sum(g.count for g in exp.cluster.instances),
        exp.seed,
    )
    tables = run_one(p)
    if len(p.table) >= RELEASE_AFTER_REQUESTS:
        release_free_memory()  # the engine (reference cycles) before the tables are written: 1M, ~70 MB
    check_not_all_rejected(tables.summary, tables.requests)
    wall = time.perf_counter() - t_wall - corners_wall
    tables.summary["sim_wall_s"] = wall
    log.info("%s: simulated %.1f s in %.2f s wall", exp.name, tables.summary["duration_s"], wall)
    with_bands(tables.summary)
    if "bands" in tables.summary:
        log.info("%s: band corners in %.2f s wall", exp.name, tables.summary["uncertainty"]["corners_wall_s"])
    wall = time.perf_counter() - t_wall
    folder = None
    if write:
        h = config_hash(exp)
        base = Path(out_dir) if out_dir is not None else Path(exp.output.dir)
        manifest = {
            **provenance(),
            "config_sha256": h,
            "seed": exp.seed,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "wall_s": wall,
            "n_requests": len(p.table),
            "workload_notes": list(p.table.notes),
        }
        if "quantization_note" in tables.summary:
            manifest["quantization_note"] = tables.summary["quantization_note"]
        if exp.output.iterations:  # the export's size guard: say whether it cut the trace
            s = tables.summary
            manifest["iterations"] = {
                "rows": s["iterations_rows"],
                "max_rows": s["iterations_max"],
                "truncated": s["iterations_truncated"],
                "dropped_rows": s["iterations_dropped_rows"],
                "recorded_until_s": s["iterations_recorded_until_s"],
                "note": (
                    f"output.iterations_max {s['iterations_max']} reached: recording stopped at "
                    f"t = {s['iterations_recorded_until_s']:.3f} s, {s['iterations_dropped_rows']} later rows not written"
                    if s["iterations_truncated"]
                    else "every iteration recorded"
                ),
            }
        plot = None
        if exp.output.plots:
            from greensim.results.plots import plot_run

            def plot(folder: Path) -> None:
                plot_run(folder, tables, exp.slo.ttft_s, exp.slo.tpot_s, exp.name)

        folder = write_run(
            base / exp.name / h[:8], exp.model_dump(mode="json"), tables, manifest, exp.output.table_format, plot
        )
        log.info("%s: wrote %s", exp.name, folder)
    return Result(
        exp,
        tables.requests,
        tables.instances,
        tables.timeline,
        tables.summary,
        folder,
        wall,
        extra=getattr(tables, "extra", None) or {},
    )
