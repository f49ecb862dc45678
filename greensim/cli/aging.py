"""Command group `greensim aging`: runs of one experiment across the ages of a GPU group."""

from __future__ import annotations

from pathlib import Path

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import configure_output, fail, output_options


@click.group("aging")
def aging_group():
    """GPU aging: how SLO attainment and carbon per request move as a GPU group ages."""


@aging_group.command("sweep")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--group", default=0, show_default=True, help="Index of the aged group in cluster.instances.")
@click.option("--ages", default="0,1,2,3,4,5,6,7,8", show_default=True, help="Comma-separated ages [years].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a field (repeatable).")
@click.option("--out", "out_dir", default="results/aging", show_default=True, type=click.Path(file_okay=False))
@output_options
def aging_sweep_cmd(experiment, group, ages, overrides, out_dir, quiet, verbose):
    """Run EXPERIMENT once per age of one GPU group; write age_sweep.csv and age_sweep.png."""
    progress = bool(configure_output(quiet, verbose))  # a progress bar per run only with -v
    from greensim.api.aging import age_sweep
    from greensim.results.aging_plots import plot_age_sweep

    try:
        ages_l = [float(a) for a in ages.split(",") if a.strip()]
    except ValueError:
        fail(GreensimError(f"--ages {ages!r}: expected comma-separated numbers of years, e.g. 0,2,4."))
    try:
        df = age_sweep(experiment, group, ages_l, overrides=list(overrides), progress=progress)
    except GreensimError as exc:
        fail(exc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "age_sweep.csv", index=False, float_format="%.6g")
    plot_age_sweep(df, out / "age_sweep.png", f"{Path(experiment).stem}: group {group} aging")
    if not quiet:
        click.echo(df.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    click.echo(f"table: {out / 'age_sweep.csv'}  plot: {out / 'age_sweep.png'}")
