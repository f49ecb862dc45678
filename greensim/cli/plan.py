"""Commands `greensim plan` (offline: the lowest-carbon deployment meeting the SLO) and
`greensim replan` (online: re-choose the deployment per time window)."""

from __future__ import annotations

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import configure_output, fail, output_options

__all__ = ["plan_cmd", "replan_cmd"]


@click.command("plan")
@click.argument("plan_file", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Parent folder (default: output.dir of the plan); writes <out>/<name>/plan/.",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a plan field (repeatable).")
@click.option("--brute-force", is_flag=True, help="Fully simulate every candidate (no pruning).")
@click.option("--rows", type=int, default=15, show_default=True, help="Frontier rows to print.")
@click.option("--no-plots", is_flag=True, help="Skip frontier.png.")
@click.option(
    "--confidence",
    type=click.Choice(["nominal", "pessimistic"]),
    default=None,
    help="Performance the SLO target must hold at: nominal, or also the pessimistic corner of the "
    "uncertainty bands (default: the plan's confidence, nominal).",
)
@output_options
def plan_cmd(plan_file, out_dir, overrides, brute_force, rows, no_plots, confidence, quiet, verbose):
    """Find the lowest-carbon deployment of PLAN_FILE's GPUs that meets the SLO attainment target.

    With -q the frontier table is left out; the search, winner and baseline lines remain."""
    progress = configure_output(quiet, verbose) is not False  # a progress bar over simulations unless -q
    from pathlib import Path

    from greensim.api.plan import load_plan_spec, plan, write_plan
    from greensim.results import check_writable

    try:
        # before the search (minutes): a plan that cannot be saved should not run first
        spec = load_plan_spec(plan_file, list(overrides))
        check_writable((Path(out_dir) if out_dir is not None else Path(spec.output.dir)) / spec.name)
        res = plan(
            plan_file, overrides=list(overrides), progress=progress, prune=not brute_force, confidence=confidence
        )
        folder = write_plan(res, out_dir, plots=not no_plots and res.spec.output.plots)
    except GreensimError as exc:
        fail(exc)
    df = res.frontier
    cols = [
        "candidate",
        "stage",
        "predicted_carbon_g_per_request",
        "carbon_g_per_request",
        "slo_attainment_frac",
        "feasible",
    ]
    if st_conf(res) == "pessimistic":
        cols.insert(-1, "slo_attainment_frac_pessimistic")
    if not quiet:
        with_pd_opts(lambda: click.echo(df[cols].head(rows).to_string(index=False, float_format=lambda x: f"{x:.5g}")))
        click.echo()
    st = res.stats
    extra = ""
    if st.get("n_pessimistic_simulations"):
        extra += f", each with its pessimistic-corner twin ({st['n_pessimistic_simulations']})"
    if st.get("n_band_simulations"):
        extra += f", {st['n_band_simulations']} band-corner runs of the winner/baseline"
    click.echo(
        f"{st['n_candidates']} candidates: {st['n_short_simulations']} short and "
        f"{st['n_full_simulations']} full simulations{extra} in {res.wall_s:.1f} s "
        f"({'brute force' if brute_force else 'pruned'}); stages {st['stages']}"
    )
    if "planning_intensity_gco2_per_kwh" in st:
        click.echo(
            f"scored at {st['planning_intensity_gco2_per_kwh']:.1f} gCO2e/kWh: mean {st['planning_forecast']} "
            f"forecast over hours {st['plan_start_h']:g}-{st['plan_start_h'] + st['plan_horizon_h']:g}"
        )
    b = res.best
    at = " (nominal and pessimistic corner)" if st_conf(res) == "pessimistic" else ""
    if b is None:
        click.echo("no candidate could be simulated (see the reason column)")
    else:
        verdict = "meets" if res.feasible else "MISSES (nothing feasible; highest attainment)"
        click.echo(
            f"winner: {b.name} - {b.carbon_g_per_request:.5g}{_band(b, 'carbon_gco2_per_request', '.5g')} "
            f"gCO2e/request, SLO attainment {b.slo_attainment_frac:.1%}{_band(b, 'slo_attainment_frac', '.1%')} "
            f"({verdict} the {res.spec.attainment_target:.0%} target{at})"
        )
    if res.baseline is not None:
        sb = st.get("saving_frac_band")
        click.echo(
            f"baseline (colocated, new GPUs): {res.baseline.name} - "
            f"{res.baseline.carbon_g_per_request:.5g}{_band(res.baseline, 'carbon_gco2_per_request', '.5g')} "
            f"gCO2e/request; saving {res.saving_frac:.1%}" + (f" [{sb['low']:.1%}, {sb['high']:.1%}]" if sb else "")
        )
    if b is not None and res.baseline is not None and b.summary and res.baseline.summary:
        acc = res.spec.carbon.accounting
        parts = []
        for a in ("provisioned", "busy"):
            x, y = (
                b.summary.get(f"carbon_gco2_per_request_{a}"),
                res.baseline.summary.get(f"carbon_gco2_per_request_{a}"),
            )
            if x is not None and y:
                parts.append(f"{a}{' (optimised)' if a == acc else ''} {x:.5g} vs {y:.5g} ({1 - x / y:.1%})")
        if parts:
            click.echo("winner vs baseline by accounting: " + "; ".join(parts))
    u = st.get("uncertainty") or {}
    if b is not None and b.bands:
        click.echo(
            "[low, high]: min and max over the nominal run and the performance.band corners (same seed; "
            "profiles/uncertainty.yaml), see plan.json"
        )
    elif u.get("note"):
        click.echo(f"no uncertainty bands: {u['note']}")
    click.echo(f"results: {folder}")
    if b is not None:
        click.echo(f"reproduce the winner: greensim run {folder / 'winner.yaml'}")


@click.command("replan")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a field (repeatable).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Parent folder for results (default: output.dir of the experiment).",
)
@click.option("--no-plots", is_flag=True, help="Skip plan.png.")
@output_options
def replan_cmd(experiment, overrides, out_dir, no_plots, quiet, verbose):
    """Online scheduling per window: re-choose among EXPERIMENT's reconfigure.deployments at each
    window boundary (predicted carbon per request, SLO, hysteresis); compare with static deployments."""
    progress = configure_output(quiet, verbose) is not False  # a line per simulated window unless -q
    from greensim.api.plan import run_windows

    ov = list(overrides) + (["output.plots=false"] if no_plots else [])
    try:
        res = run_windows(experiment, overrides=ov, out_dir=out_dir, progress=progress)
    except GreensimError as exc:
        fail(exc)
    if quiet:
        click.echo(f"results: {res.folder}")
        return
    click.echo(res.comparison.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    pr = res.prediction
    extra = (
        f", {pr['n_simulations']} short simulations, {pr['n_cache_hits']} cache hits" if "n_simulations" in pr else ""
    )
    click.echo(f"predictor {pr['predictor']}: {pr['wall_s']:.2f} s{extra}; total wall {res.wall_s:.1f} s")
    click.echo(f"results: {res.folder}")


def st_conf(res) -> str:
    return res.stats.get("confidence", "nominal")


def _band(c, key: str, fmt: str) -> str:
    """`` [low, high]`` of a chosen candidate's metric, or nothing without bands."""
    b = (c.bands or {}).get(key)
    if not b:
        return ""
    if key == "carbon_gco2_per_request":  # the candidate's carbon may add charge_unused to the summary's
        off = c.carbon_g_per_request - b["point"]
        return f" [{format(b['low'] + off, fmt)}, {format(b['high'] + off, fmt)}]"
    return f" [{format(b['low'], fmt)}, {format(b['high'], fmt)}]"


def with_pd_opts(f):
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20):
        return f()
