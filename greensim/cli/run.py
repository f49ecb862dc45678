"""Commands `greensim run`, `validate`, `check` and `schema`: one experiment at a time."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import configure_output, fail, output_options

SUMMARY_ROWS = [
    ("requests (completed / rejected)", lambda s: f"{s['n_completed']} / {s['n_rejected']}"),
    ("simulated duration", lambda s: f"{s['duration_s']:.1f} s"),
    ("throughput", lambda s: f"{s['throughput_rps']:.2f} req/s, {s['output_tokens_per_s']:.0f} tok/s"),
    ("SLO attainment (TTFT and TPOT)", lambda s: f"{s['slo_attainment_frac']:.1%}"),
    ("TTFT p50 / p90 / p99", lambda s: f"{s['ttft_s_p50']:.3f} / {s['ttft_s_p90']:.3f} / {s['ttft_s_p99']:.3f} s"),
    (
        "TPOT p50 / p90 / p99",
        lambda s: f"{1e3 * s['tpot_s_p50']:.1f} / {1e3 * s['tpot_s_p90']:.1f} / {1e3 * s['tpot_s_p99']:.1f} ms",
    ),
    ("preemptions", lambda s: f"{s['n_preemptions']}"),
    ("energy", lambda s: f"{s['energy_kwh']:.4f} kWh"),
    ("carbon operational / embodied", lambda s: f"{s['operational_gco2']:.1f} / {s['embodied_gco2']:.1f} gCO2e"),
    ("carbon per request", lambda s: f"{s['carbon_gco2_per_request']:.4f} gCO2e"),
    ("carbon per 1k output tokens", lambda s: f"{s['carbon_gco2_per_1k_output_tokens']:.4f} gCO2e"),
]


@click.command("run")
@click.argument("experiment", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a field, e.g. --set workload.rate_rps=3 (repeatable).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Parent folder for results (default: output.dir of the experiment).",
)
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@output_options
def run_cmd(experiment, overrides, out_dir, no_plots, quiet, verbose):
    """Run EXPERIMENT (a YAML file; default: the bundled quickstart) and write a results folder."""
    progress = configure_output(quiet, verbose)  # None: the experiment's simulation.progress
    from greensim.api.run import run

    ov = list(overrides) + (["output.plots=false"] if no_plots else [])
    try:
        res = run(experiment, overrides=ov, out_dir=out_dir, progress=progress)
    except GreensimError as exc:
        fail(exc)
    if quiet:
        click.echo(f"results: {res.folder}")
        return
    s = res.summary
    click.echo(f"greensim: {res.experiment.name} (model {res.experiment.model}, seed {res.experiment.seed})")
    w = max(len(k) for k, _ in SUMMARY_ROWS)
    for k, f in SUMMARY_ROWS:
        click.echo(f"  {k:<{w}}  {f(s)}")
    click.echo(f"  {'wall time':<{w}}  {res.wall_s:.2f} s")
    click.echo(f"results: {res.folder}")


@click.command("validate")
@click.argument("experiment", type=click.Path(dir_okay=False))
def validate_cmd(experiment):
    """Check EXPERIMENT without running it: schema, names of GPUs/models/plug-ins, paths."""
    from greensim.api.validate import validate_experiment

    try:
        msg = validate_experiment(experiment)
    except GreensimError as exc:
        fail(exc)
    click.echo(msg)


@click.command("check")
@click.option(
    "--record", is_flag=True, help="Re-record the values (and seed-spread tolerances); commit them with the reason."
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of check experiments with recorded.json (default: the bundled experiments/check).",
)
@output_options
def check_cmd(record, folder, quiet, verbose):
    """Regression check: re-run small experiments, compare with recorded values (exit 1 on a change).

    With -q only the metrics out of tolerance and the count are printed."""
    configure_output(quiet, verbose)
    from greensim.api.check import check_experiments, record_experiments

    try:
        if record:
            out = record_experiments(folder)
            click.echo(f"recorded {len(out)} experiment(s)")
            return
        rows = check_experiments(folder)
    except GreensimError as exc:
        fail(exc)
    bad = [r for r in rows if not r.ok]
    for r in bad if quiet else rows:
        flag = "ok  " if r.ok else "FAIL"
        click.echo(
            f"{flag} {r.experiment:<28} {r.metric:<26} recorded {r.recorded:<12.6g} now {r.value:<12.6g} tol {r.tolerance:.3g}"
        )
    click.echo(f"{len(rows) - len(bad)}/{len(rows)} metrics within tolerance")
    if bad:
        sys.exit(1)


@click.command("schema")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to a file instead of stdout.")
def schema_cmd(out):
    """Print the JSON Schema of the experiment format (for editors)."""
    from greensim.api.schema import schema_text

    text = schema_text()
    if out:
        Path(out).write_text(text + "\n")
    else:
        click.echo(text)
