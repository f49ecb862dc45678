"""Commands `greensim run`, `validate`, `check` and `schema`: one experiment at a time."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import configure_output, fail, output_options


def _v(s, key: str, fmt: str, scale: float = 1.0) -> str:
    """A summary value, with its uncertainty band ``[low, high]`` when the summary has one."""
    text = format(scale * s[key], fmt)
    b = (s.get("bands") or {}).get(key)
    if b is not None:
        text += f" [{format(scale * b['low'], fmt)}, {format(scale * b['high'], fmt)}]"
    return text


SUMMARY_ROWS = [
    ("requests (completed / rejected)", lambda s: f"{s['n_completed']} / {s['n_rejected']}"),
    ("simulated duration", lambda s: f"{_v(s, 'duration_s', '.1f')} s"),
    (
        "throughput",
        lambda s: f"{_v(s, 'throughput_rps', '.2f')} req/s, {_v(s, 'output_tokens_per_s', '.0f')} tok/s",
    ),
    ("SLO attainment (TTFT and TPOT)", lambda s: _v(s, "slo_attainment_frac", ".1%")),
    (
        "TTFT p50 / p90 / p99",
        lambda s: " / ".join(_v(s, f"ttft_s_p{q}", ".3f") for q in (50, 90, 99)) + " s",
    ),
    (
        "TPOT p50 / p90 / p99",
        lambda s: " / ".join(_v(s, f"tpot_s_p{q}", ".1f", 1e3) for q in (50, 90, 99)) + " ms",
    ),
    ("preemptions", lambda s: f"{s['n_preemptions']}"),
    ("energy", lambda s: f"{_v(s, 'energy_kwh', '.4f')} kWh"),
    (
        "carbon operational / embodied",
        lambda s: f"{_v(s, 'operational_gco2', '.1f')} / {_v(s, 'embodied_gco2', '.1f')} gCO2e",
    ),
    (
        "carbon per request",
        lambda s: f"{_v(s, 'carbon_gco2_per_request', '.4f')} gCO2e ({s.get('accounting', 'provisioned')} accounting)",
    ),
    (
        "  provisioned / busy accounting",
        lambda s: (
            f"{_v(s, 'carbon_gco2_per_request_provisioned', '.4f')} / "
            f"{_v(s, 'carbon_gco2_per_request_busy', '.4f')} gCO2e per request"
        ),
    ),
    ("carbon per 1k output tokens", lambda s: f"{_v(s, 'carbon_gco2_per_1k_output_tokens', '.4f')} gCO2e"),
]


#: shown only when the run had GPU failures (summary keys present)
FAILURE_ROWS = [
    (
        "GPU failures (down time)",
        lambda s: f"{s.get('n_failures', 0)} ({_v(s, 'failure_down_s', '.0f')} s down)",
    ),
    (
        "  restarted requests, lost work",
        lambda s: (
            f"{s.get('failure_restarted_requests', 0)}, {s.get('failure_lost_tokens', 0)} tokens, "
            f"{_v(s, 'failure_lost_energy_kwh', '.4f')} kWh, {_v(s, 'failure_lost_gco2', '.2f')} gCO2e"
        ),
    ),
    (
        "  SLO attainment restarted / untouched",
        lambda s: (
            f"{_v(s, 'failure_restarted_slo_attainment_frac', '.1%')} / "
            f"{_v(s, 'failure_untouched_slo_attainment_frac', '.1%')}"
        ),
    ),
]


#: shown only when an instance had a prefix cache
PREFIX_ROWS = [
    (
        "prefix cache hits (tokens / requests)",
        lambda s: f"{_v(s, 'prefix_hit_tokens_frac', '.1%')} / {_v(s, 'prefix_hit_requests_frac', '.1%')}",
    ),
]


def bands_footer(s) -> str:
    """What the [low, high] brackets mean (or why there are none)."""
    u = s.get("uncertainty") or {}
    if not s.get("bands"):
        return f"no uncertainty bands: {u['note']}" if u.get("note") else ""
    fr = u.get("fractions")
    used = (
        "; ".join(
            f"{g} latency +/-{e['latency_frac']:.1%}, power +/-{e['power_frac']:.1%} ({e['entry']})"
            for g, e in fr.items()
        )
        if isinstance(fr, dict)
        else str(fr)
    )
    return (
        "[low, high]: min and max over the nominal run and the performance.band corners optimistic and "
        f"pessimistic, same seed (profiles/uncertainty.yaml: {used}); summary.json 'bands'"
    )


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
@click.option(
    "--iterations",
    is_flag=True,
    help="Also write iterations.parquet and trace.json (per-iteration trace, opens in ui.perfetto.dev); "
    "same as --set output.iterations=true.",
)
@output_options
def run_cmd(experiment, overrides, out_dir, no_plots, iterations, quiet, verbose):
    """Run EXPERIMENT (a YAML file; default: the bundled quickstart) and write a results folder."""
    progress = configure_output(quiet, verbose)  # None: the experiment's simulation.progress
    from greensim.api.run import run

    ov = (
        list(overrides)
        + (["output.plots=false"] if no_plots else [])
        + (["output.iterations=true"] if iterations else [])
    )
    try:
        res = run(experiment, overrides=ov, out_dir=out_dir, progress=progress)
    except GreensimError as exc:
        fail(exc)
    if quiet:
        click.echo(f"results: {res.folder}")
        return
    s = res.summary
    click.echo(f"greensim: {res.experiment.name} (model {res.experiment.model}, seed {res.experiment.seed})")
    rows = SUMMARY_ROWS + (FAILURE_ROWS if "failure_down_s" in s else [])
    rows += PREFIX_ROWS if "prefix_hit_tokens_frac" in s else []
    w = max(len(k) for k, _ in rows)
    for k, f in rows:
        click.echo(f"  {k:<{w}}  {f(s)}")
    click.echo(f"  {'wall time':<{w}}  {res.wall_s:.2f} s")
    footer = bands_footer(s)
    if footer:
        click.echo(footer)
    if "iterations_rows" in s:
        click.echo(f"iterations: {s['iterations_rows']} rows in iterations.parquet and trace.json (ui.perfetto.dev)")
        if s["iterations_truncated"]:
            click.echo(
                f"  truncated at output.iterations_max = {s['iterations_max']}: recording stopped at "
                f"t = {s['iterations_recorded_until_s']:.3f} s, {s['iterations_dropped_rows']} later rows left out"
            )
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
