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


@main.command("profile")
@click.argument("model")
@click.option("--gpu", "gpu", default="", help="Catalogue GPU name for the file (default: the device's name).")
@click.option("--out", "out_dir", default="profiles/measured", show_default=True, type=click.Path(file_okay=False),
              help="Output folder: OUT/<gpu>/<model>_tp<N>.csv plus .meta.json.")
@click.option("--tp", default=1, show_default=True, help="Tensor-parallel degree (one process per GPU, NCCL).")
@click.option("--device", default="cuda", show_default=True, help="cuda, cuda:N, or cpu (smoke test).")
@click.option("--dtype", default="bfloat16", show_default=True, help="bfloat16, float16 or float32.")
@click.option("--quick", is_flag=True, help="Tiny grid (smoke test).")
@click.option("--window-s", default=0.3, show_default=True, help="Timed window per grid cell [s].")
def profile_cmd(model, gpu, out_dir, tp, device, dtype, quick, window_s):
    """Measure MODEL (a catalogue name; random weights) on the local GPU: prefill, decode (CUDA
    graphs), mixed iterations and NVML board power. Needs the [profile] extra (torch)."""
    import tempfile

    from .catalog import load_catalog
    from .errors import ProfileError
    try:
        spec = load_catalog().model(model, "model")
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ProfileError("greensim profile needs torch: pip install 'greensim[profile]' "
                               "(simulating never does).") from None
    except GreensimError as exc:
        _fail(exc)
    from .perf import profiler
    with tempfile.TemporaryDirectory() as tmp:
        shapes = Path(tmp) / "shapes.json"
        shapes.write_text(json.dumps({spec.name: spec.shape()}))
        argv = ["--shapes", str(shapes), "--models", spec.name, "--out", out_dir, "--tp", str(tp),
                "--device", device, "--dtype", dtype, "--window-s", str(window_s)]
        argv += ["--gpu", gpu] if gpu else []
        argv += ["--quick"] if quick else []
        profiler.main(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
