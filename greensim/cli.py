"""Command line: thin wrappers over the library."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import GreensimError

SUMMARY_ROWS = [
    ("requests (completed / rejected)", lambda s: f"{s['n_completed']} / {s['n_rejected']}"),
    ("simulated duration", lambda s: f"{s['duration_s']:.1f} s"),
    ("throughput", lambda s: f"{s['throughput_rps']:.2f} req/s, {s['output_tokens_per_s']:.0f} tok/s"),
    ("SLO attainment (TTFT and TPOT)", lambda s: f"{s['slo_attainment_frac']:.1%}"),
    ("TTFT p50 / p90 / p99", lambda s: f"{s['ttft_s_p50']:.3f} / {s['ttft_s_p90']:.3f} / {s['ttft_s_p99']:.3f} s"),
    ("TPOT p50 / p90 / p99", lambda s: f"{1e3 * s['tpot_s_p50']:.1f} / {1e3 * s['tpot_s_p90']:.1f} / {1e3 * s['tpot_s_p99']:.1f} ms"),
    ("preemptions", lambda s: f"{s['n_preemptions']}"),
    ("energy", lambda s: f"{s['energy_kwh']:.4f} kWh"),
    ("carbon operational / embodied", lambda s: f"{s['operational_gco2']:.1f} / {s['embodied_gco2']:.1f} gCO2e"),
    ("carbon per request", lambda s: f"{s['carbon_gco2_per_request']:.4f} gCO2e"),
    ("carbon per 1k output tokens", lambda s: f"{s['carbon_gco2_per_1k_output_tokens']:.4f} gCO2e"),
]


def _fail(exc: GreensimError) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group()
@click.version_option(package_name="greensim")
def main() -> None:
    """greensim: simulate carbon-aware LLM serving on heterogeneous GPUs."""


@main.command("run")
@click.argument("experiment", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field, e.g. --set workload.rate_rps=3 (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Parent folder for results (default: output.dir of the experiment).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
def run_cmd(experiment, overrides, out_dir, no_plots):
    """Run EXPERIMENT (a YAML file; default: the bundled quickstart) and write a results folder."""
    from .runner import run
    ov = list(overrides) + (["output.plots=false"] if no_plots else [])
    try:
        res = run(experiment, overrides=ov, out_dir=out_dir)
    except GreensimError as exc:
        _fail(exc)
    s = res.summary
    click.echo(f"greensim: {res.experiment.name} (model {res.experiment.model}, seed {res.experiment.seed})")
    w = max(len(k) for k, _ in SUMMARY_ROWS)
    for k, f in SUMMARY_ROWS:
        click.echo(f"  {k:<{w}}  {f(s)}")
    click.echo(f"  {'wall time':<{w}}  {res.wall_s:.2f} s")
    click.echo(f"results: {res.folder}")


@main.command("validate")
@click.argument("experiment", type=click.Path(dir_okay=False))
def validate_cmd(experiment):
    """Check EXPERIMENT without running it: schema, names of GPUs/models/plug-ins, paths."""
    from .validate import validate_experiment
    try:
        msg = validate_experiment(experiment)
    except GreensimError as exc:
        _fail(exc)
    click.echo(msg)


@main.command("schema")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to a file instead of stdout.")
def schema_cmd(out):
    """Print the JSON Schema of the experiment format (for editors)."""
    from .config import json_schema
    text = json.dumps(json_schema(), indent=2)
    if out:
        Path(out).write_text(text + "\n")
    else:
        click.echo(text)


@main.command("sweep")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--grid", "grid_file", required=True, type=click.Path(dir_okay=False),
              help="YAML grid: {grid: {dotted.key: [values]}, seeds: N} or a plain {dotted.key: [values]}.")
@click.option("--backend", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: processes on this machine; dask: a Dask distributed cluster.")
@click.option("--workers", type=int, default=None, help="Local worker processes (default: all cores).")
@click.option("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786.")
@click.option("--scheduler-file", default=None, type=click.Path(dir_okay=False),
              help="Dask scheduler file (dask scheduler --scheduler-file F).")
@click.option("--seeds", type=int, default=None, help="Replicates per grid point (overrides the grid file).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a base field (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Parent folder (default: output.dir of the experiment).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Run cache folder (default: $GREENSIM_CACHE_DIR or ~/.cache/greensim).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the run cache.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True,
              help="Seconds to wait for the Dask scheduler.")
def sweep_cmd(experiment, grid_file, backend, workers, scheduler, scheduler_file, seeds, overrides,
              out_dir, cache_dir, no_cache, no_plots, timeout_s):
    """Run EXPERIMENT over a grid of overrides; write one parquet table and summary plots."""
    import time

    from .results.sweep_report import write_sweep
    from .runner import _version
    from .sweeps import load_grid, sweep
    t0 = time.perf_counter()
    try:
        spec = load_grid(grid_file)
        df = sweep(experiment, grid=spec["grid"], seeds=spec["seeds"] if seeds is None else seeds,
                   overrides=list(overrides), backend=backend, workers=workers, scheduler=scheduler,
                   scheduler_file=scheduler_file, cache=not no_cache, cache_dir=cache_dir,
                   common_random_numbers=spec["common_random_numbers"], timeout_s=timeout_s)
        from .runner import _to_experiment
        base = _to_experiment(experiment, list(overrides))
    except GreensimError as exc:
        _fail(exc)
    axes = list(spec["grid"]) if isinstance(spec["grid"], dict) else sorted({k for p in spec["grid"] for k in p})
    wall = time.perf_counter() - t0
    n_err = int((df["status"] == "error").sum())
    desc = {"base": base.model_dump(mode="json"), "grid": spec["grid"], "axes": axes,
            "seeds": spec["seeds"] if seeds is None else seeds,
            "common_random_numbers": spec["common_random_numbers"]}
    manifest = {"greensim_version": _version(), "backend": backend, "n_runs": len(df), "n_failed": n_err,
                "n_cached": int(df["cached"].sum()), "wall_s": wall}
    folder = write_sweep(Path(out_dir) if out_dir else Path(base.output.dir), base.name, df, desc, manifest,
                         plots=not no_plots and base.output.plots)
    click.echo(f"greensim sweep: {base.name}: {len(df)} runs ({int(df['cached'].sum())} from cache, "
               f"{n_err} failed) in {wall:.1f} s on backend {backend}")
    if n_err:
        for err, n in df.loc[df["status"] == "error", "error"].value_counts().head(3).items():
            click.echo(f"  failed x{n}: {err}")
    click.echo(f"results: {folder}")


if __name__ == "__main__":  # pragma: no cover
    main()
