"""Command `greensim profile`: measure a model shape on the local GPU (needs the [profile] extra)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from greensim.base.errors import GreensimError
from greensim.cli.common import fail


@click.command("profile")
@click.argument("model")
@click.option("--gpu", "gpu", default="", help="Catalogue GPU name for the file (default: the device's name).")
@click.option(
    "--out",
    "out_dir",
    default="profiles/measured",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder: OUT/<gpu>/<model>_tp<N>.csv plus .meta.json.",
)
@click.option("--tp", default=1, show_default=True, help="Tensor-parallel degree (one process per GPU, NCCL).")
@click.option("--device", default="cuda", show_default=True, help="cuda, cuda:N, or cpu (smoke test).")
@click.option("--dtype", default="bfloat16", show_default=True, help="bfloat16, float16 or float32.")
@click.option("--quick", is_flag=True, help="Tiny grid (smoke test).")
@click.option("--window-s", default=0.3, show_default=True, help="Timed window per grid cell [s].")
def profile_cmd(model, gpu, out_dir, tp, device, dtype, quick, window_s):
    """Measure MODEL (a catalogue name; random weights) on the local GPU: prefill, decode (CUDA
    graphs), mixed iterations and NVML board power. Needs the [profile] extra (torch)."""
    import tempfile

    from greensim.api.catalog import model_shape
    from greensim.base.errors import ProfileError

    try:
        name, shape = model_shape(model)
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ProfileError(
                "greensim profile needs torch: pip install 'greensim[profile]' (simulating never does)."
            ) from None
    except GreensimError as exc:
        fail(exc)
    from greensim.tools import profiler

    with tempfile.TemporaryDirectory() as tmp:
        shapes = Path(tmp) / "shapes.json"
        shapes.write_text(json.dumps({name: shape}))
        argv = [
            "--shapes",
            str(shapes),
            "--models",
            name,
            "--out",
            out_dir,
            "--tp",
            str(tp),
            "--device",
            device,
            "--dtype",
            dtype,
            "--window-s",
            str(window_s),
        ]
        argv += ["--gpu", gpu] if gpu else []
        argv += ["--quick"] if quick else []
        profiler.main(argv)
