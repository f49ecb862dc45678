"""Command group `greensim theory`: closed-form carbon per request, break-even points, heatmaps
(:mod:`greensim.api.theory`)."""

from __future__ import annotations

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import fail


@click.group("theory")
def theory_group():
    """Closed-form carbon per request: colocated-new vs DPD vs DSD, break-even points, heatmaps."""


@theory_group.command("heatmap")
@click.option("--model", default="Llama-2-7B", show_default=True)
@click.option("--new", "new_gpu", default="A100-80GB", show_default=True)
@click.option("--old", "old_gpu", default="V100-32GB", show_default=True)
@click.option("--draft-model", default=None, help="Draft model for DSD (omit: no DSD).")
@click.option("--mode", default="DPD", type=click.Choice(["DPD", "DSD"]), show_default=True)
@click.option("--gamma", default=None, type=int, help="DSD: draft tokens per iteration (required for DSD).")
@click.option("--alpha", default=None, type=float, help="DSD: per-token acceptance rate in [0, 1) (required for DSD).")
@click.option("--in-tokens", default=512, show_default=True)
@click.option("--out-tokens", default=128, show_default=True)
@click.option("--rate", default=1.0, show_default=True, help="Arrival rate per instance [req/s].")
@click.option("--old-embodied", default="sunk", type=click.Choice(["sunk", "linear"]), show_default=True)
@click.option("--lifetime-old", default=5.0, show_default=True, help="Old GPU lifetime [years] (linear only).")
@click.option("--pue", default=1.1, show_default=True)
@click.option(
    "--old-per-new",
    default=None,
    type=int,
    help="DPD: old decode instances per new prefill instance "
    "(default: as many as keep the new GPU no busier than colocated).",
)
@click.option("--out", "out_dir", default="results/theory", show_default=True, type=click.Path(file_okay=False))
def theory_heatmap_cmd(
    model,
    new_gpu,
    old_gpu,
    draft_model,
    mode,
    gamma,
    alpha,
    in_tokens,
    out_tokens,
    rate,
    old_embodied,
    lifetime_old,
    pue,
    old_per_new,
    out_dir,
):
    """Saving of MODE over colocated-new across (intensity x new-GPU lifetime), with break-even points."""
    from greensim.api.theory import break_even_intensity, break_even_lifetime, carbon_per_request, savings_heatmap

    if mode == "DSD" and not draft_model:
        fail(GreensimError("--mode DSD needs --draft-model (the small model run on the old GPU)."))
    try:
        hm = savings_heatmap(
            model,
            new_gpu,
            old_gpu,
            mode,
            draft_model=draft_model,
            gamma=gamma,
            alpha=alpha,
            in_tokens=in_tokens,
            out_tokens=out_tokens,
            rate=rate,
            old_embodied=old_embodied,
            lifetime_old=lifetime_old,
            pue=pue,
            old_per_new=old_per_new,
            out_dir=out_dir,
        )
    except GreensimError as exc:
        fail(exc)
    base, alt, path = hm.base, hm.alt, hm.path
    for m in (base, alt):
        click.echo(
            f"{m.name:>10}: "
            + ", ".join(
                f"{u.role} busy {u.busy_s:.3f} s / {u.busy_j:.0f} J / util {u.utilization_frac:.2f}" for u in m.uses
            )
            + f"; at 300 g/kWh, LT 5 y: {float(carbon_per_request(m, 300.0, pue)):.4f} gCO2e/request"
        )
    click.echo(f"break-even intensity (LT_new 5 y): {break_even_intensity(base, alt, pue):.0f} gCO2e/kWh")
    for c in (100.0, 300.0, 600.0):
        click.echo(
            f"break-even new-GPU lifetime at {c:g} g/kWh: {break_even_lifetime(base, alt, 'new', c, pue):.2f} years"
        )
    click.echo(f"plot: {path}")
