"""Command `greensim sweep`: a thin wrapper over :func:`greensim.api.sweep.sweep`."""

from __future__ import annotations

from pathlib import Path

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import configure_output, fail, output_options

__all__ = ["sweep_cmd"]


@click.command("sweep")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option(
    "--grid",
    "grid_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="YAML grid: {grid: {dotted.key: [values]}, seeds: N} or a plain {dotted.key: [values]}.",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: processes on this machine; dask: a Dask distributed cluster.",
)
@click.option("--workers", type=int, default=None, help="Local worker processes (default: all cores).")
@click.option("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786.")
@click.option(
    "--scheduler-file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Dask scheduler file (dask scheduler --scheduler-file F).",
)
@click.option("--seeds", type=int, default=None, help="Replicates per grid point (overrides the grid file).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a base field (repeatable).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Parent folder (default: output.dir of the experiment).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Run cache folder (default: $GREENSIM_CACHE_DIR or the platform's cache folder, ~/.cache/greensim on Linux).",
)
@click.option(
    "--cache-max-mb",
    type=float,
    default=None,
    help="Size limit of the run cache; least recently used runs are dropped beyond it "
    "(default: $GREENSIM_CACHE_MAX_MB or 512).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the run cache.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for the Dask scheduler.",
)
@output_options
def sweep_cmd(
    experiment,
    grid_file,
    backend,
    workers,
    scheduler,
    scheduler_file,
    seeds,
    overrides,
    out_dir,
    cache_dir,
    cache_max_mb,
    no_cache,
    no_plots,
    timeout_s,
    quiet,
    verbose,
):
    """Run EXPERIMENT over a grid of overrides; write one parquet table and summary plots."""
    progress = configure_output(quiet, verbose) is not False  # a progress bar over runs unless -q
    import time

    from greensim.api.run import to_experiment
    from greensim.api.sweep import load_grid, sweep
    from greensim.base.version import provenance
    from greensim.results import check_writable
    from greensim.results.sweep_report import write_sweep

    t0 = time.perf_counter()
    try:
        spec = load_grid(grid_file)
        base = to_experiment(experiment, list(overrides))
        # before the runs (hours, maybe): a sweep that cannot be saved should not run first
        check_writable((Path(out_dir) if out_dir else Path(base.output.dir)) / base.name)
        df = sweep(
            experiment,
            grid=spec["grid"],
            seeds=spec["seeds"] if seeds is None else seeds,
            overrides=list(overrides),
            backend=backend,
            workers=workers,
            scheduler=scheduler,
            scheduler_file=scheduler_file,
            cache=not no_cache,
            cache_dir=cache_dir,
            cache_max_mb=cache_max_mb,
            common_random_numbers=spec["common_random_numbers"],
            timeout_s=timeout_s,
            progress=progress,
        )
    except GreensimError as exc:
        fail(exc)
    axes = list(spec["grid"]) if isinstance(spec["grid"], dict) else sorted({k for p in spec["grid"] for k in p})
    wall = time.perf_counter() - t0
    n_err = int((df["status"] == "error").sum())
    desc = {
        "base": base.model_dump(mode="json"),
        "grid": spec["grid"],
        "axes": axes,
        "seeds": spec["seeds"] if seeds is None else seeds,
        "common_random_numbers": spec["common_random_numbers"],
    }
    manifest = {
        **provenance(),
        "backend": backend,
        "n_runs": len(df),
        "n_failed": n_err,
        "n_cached": int(df["cached"].sum()),
        "wall_s": wall,
    }
    try:
        folder = write_sweep(
            Path(out_dir) if out_dir else Path(base.output.dir),
            base.name,
            df,
            desc,
            manifest,
            plots=not no_plots and base.output.plots,
        )
    except GreensimError as exc:  # e.g. the disk filled up while writing
        fail(exc)
    if quiet:  # failed runs are also logged as a warning by sweep()
        click.echo(f"results: {folder}")
        return
    click.echo(
        f"greensim sweep: {base.name}: {len(df)} runs ({int(df['cached'].sum())} from cache, "
        f"{n_err} failed) in {wall:.1f} s on backend {backend}"
    )
    if n_err:
        for err, n in df.loc[df["status"] == "error", "error"].value_counts().head(3).items():
            click.echo(f"  failed x{n}: {err}")
    click.echo(f"results: {folder}")
