"""Fit the utilisation decode power curve, ``profiles/decode_power.yaml``, on our measured profiles.

    python -m greensim.tools.power_fit --out profiles/decode_power.yaml

Per decode row (phase ``decode``) of ``profiles/measured/{H100-SXM,H200}/*.csv`` (measured here with
``greensim profile``; provenance in the ``.meta.json`` files), the shipped roofline of that GPU x model x TP
gives the iteration's time ``t``, bytes ``M`` and FLOPs ``F``; the achieved utilisations are
``u_mem = M / (t * tp * BW_peak)`` and ``u_compute = F / (t * tp * F_peak)``. The measured power per GPU
is expressed as a fraction of the catalogue's ``tdp_w - idle_w`` above ``idle_w``::

    frac = (P_measured / tp - idle_w) / (tdp_w - idle_w) ~ a + b * u_mem + c * u_compute

fitted by bounded least squares (``a`` in [0, 1], ``b, c >= 0``: monotone in both utilisations). Errors are
relative errors of the predicted watts, in-sample and leave-one-model-out (the model's rows on both GPUs
left out of the fit). Applying the curve to other GPUs (V100, A100, T4) extrapolates the H100/H200 shape.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import lsq_linear

from greensim.base.paths import bundled
from greensim.hardware.catalog import load_catalog
from greensim.hardware.roofline import RooflineModel

COMMAND = "python -m greensim.tools.power_fit --out profiles/decode_power.yaml"
FOLDERS = ("H100-SXM", "H200")  # profiles/measured/<folder> = catalogue GPU name


def _measured_root() -> Path:
    return bundled("profiles") / "measured"


def decode_rows(root: Path | None = None) -> pd.DataFrame:
    """Decode rows of every measured profile with the roofline features.

    Columns: gpu, model, tp, file, batch, ctx_tokens, power_w (measured, whole instance), t_s (roofline
    iteration time), u_mem, u_compute, frac (measured fraction of tdp - idle above idle, per GPU)."""
    root = root or _measured_root()
    cat = load_catalog()
    roof = RooflineModel()
    out: List[dict] = []
    for folder in FOLDERS:
        gpu = cat.gpu(folder)
        for f in sorted((root / folder).glob("*.csv")):
            stem = f.stem
            model_name, tp = stem.rsplit("_tp", 1)
            tp = int(tp)
            model = cat.model(model_name)
            b = roof._bind(gpu, model, tp)
            d = pd.read_csv(f)
            d = d[(d.phase == "decode") & np.isfinite(d.power_w)]
            for r in d.itertuples():
                n, ctx = int(r.batch), int(r.ctx_tokens) * int(r.batch)
                t = b.iteration_time_s((), n, ctx)
                m, fl = b.decode_bytes_flops(n, ctx)
                out.append(
                    {
                        "gpu": folder,
                        "model": model_name,
                        "tp": tp,
                        "file": f"{folder}/{f.name}",
                        "batch": n,
                        "ctx_tokens": int(r.ctx_tokens),
                        "power_w": float(r.power_w),
                        "t_s": t,
                        "u_mem": m / (t * tp * gpu.mem_bandwidth_bps),
                        "u_compute": fl / (t * tp * gpu.peak_flops),
                        "frac": (float(r.power_w) / tp - gpu.idle_w) / (gpu.tdp_w - gpu.idle_w),
                        "idle_w": gpu.idle_w,
                        "tdp_w": gpu.tdp_w,
                    }
                )
    return pd.DataFrame(out)


def fit(rows: pd.DataFrame) -> np.ndarray:
    """(a, b, c) by least squares on frac, a in [0, 1], b and c >= 0."""
    x = np.column_stack([np.ones(len(rows)), rows.u_mem, rows.u_compute])
    return lsq_linear(x, rows.frac.to_numpy(), bounds=([0.0, 0.0, 0.0], [1.0, np.inf, np.inf])).x


def predict_w(rows: pd.DataFrame, abc: np.ndarray) -> np.ndarray:
    """Predicted instance power [W], clipped to [idle, tdp] per GPU."""
    f = np.clip(abc[0] + abc[1] * rows.u_mem + abc[2] * rows.u_compute, 0.0, 1.0)
    return rows.tp * (rows.idle_w + (rows.tdp_w - rows.idle_w) * f)


def _stats(rel: np.ndarray) -> dict:
    a = np.abs(rel) * 100
    return {
        "median_abs_pct": round(float(np.median(a)), 1),
        "p90_abs_pct": round(float(np.quantile(a, 0.9)), 1),
        "max_abs_pct": round(float(np.max(a)), 1),
        "n": int(len(a)),
    }


def fit_per_gpu(rows: pd.DataFrame) -> Dict[str, np.ndarray]:
    """(a, b, c) fitted on each measured GPU's own rows."""
    return {g: fit(rows[rows.gpu == g]) for g in FOLDERS}


def run(root: Path | None = None) -> dict:
    rows = decode_rows(root)
    abc = fit(rows)
    per = fit_per_gpu(rows)
    rel = np.empty(len(rows))
    loo = np.empty(len(rows))
    for g in FOLDERS:
        k = (rows.gpu == g).to_numpy()
        rel[k] = (predict_w(rows[k], per[g]) / rows.power_w[k] - 1).to_numpy()
        for m in rows.model[k].unique():
            mask = k & (rows.model == m).to_numpy()
            train = k & ~(rows.model == m).to_numpy()
            loo[mask] = (predict_w(rows[mask], fit(rows[train])) / rows.power_w[mask] - 1).to_numpy()
    cat = load_catalog()
    const = np.array([tp * cat.gpu(g).decode_power_w for g, tp in zip(rows.gpu, rows.tp)]) / rows.power_w - 1
    val: Dict[str, dict] = {}
    for g in FOLDERS:
        k = (rows.gpu == g).to_numpy()
        val[g] = {
            "in_sample": _stats(rel[k]),
            "leave_one_model_out": _stats(loo[k]),
            "constant_decode_power_frac": _stats(const[k]),
        }
    files = sorted(rows.file.unique())
    src = (
        f"bounded least squares on {len(rows)} decode rows (phase decode, all batches and contexts) of "
        f"profiles/measured/{{{','.join(FOLDERS)}}}/*.csv ({len(files)} files: {', '.join(files)}; measured here "
        "with `greensim profile`, provenance in the .meta.json files and profiles/VALIDATION.md); features from "
        "the shipped roofline (profiles/roofline.yaml); idle_w and tdp_w from profiles/gpus.yaml; "
        f"fitted by `{COMMAND}`"
    )
    return {
        "form": "P = tp * (idle_w + (tdp_w - idle_w) * clip(a + b * u_mem + c * u_compute, 0, 1)); "
        "u_mem = bytes / (t * tp * mem_bandwidth), u_compute = FLOPs / (t * tp * peak_flops), "
        "with bytes, FLOPs and t the roofline's for the iteration",
        "a": round(float(abc[0]), 4),
        "b": round(float(abc[1]), 4),
        "c": round(float(abc[2]), 4),
        "source": src,
        "gpus": {
            g: {
                "a": round(float(v[0]), 4),
                "b": round(float(v[1]), 4),
                "c": round(float(v[2]), 4),
                "source": f"the same fit on the {int((rows.gpu == g).sum())} rows of profiles/measured/{g}/ alone",
            }
            for g, v in per.items()
        },
        "extrapolation": "a measured GPU uses its own curve (gpus); any other GPU (V100, A100, T4, ...) the pooled "
        "a, b, c above, which transfers the H100/H200 shape to that GPU's idle_w and tdp_w. No old-GPU phase "
        "power measurement exists (shared/data/profiles/power_measurements.csv: NOT FOUND for V100/T4).",
        "validation": {
            "note": "relative error of the predicted watts vs measured, per GPU, with that GPU's own curve: "
            "in-sample, leave-one-model-out (the model's rows excluded from that GPU's fit), and the constant "
            "model (decode_power_frac x tdp_w) for comparison",
            **val,
        },
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="write the YAML here (default: print)")
    a = ap.parse_args(argv)
    res = run()
    header = (
        "# Decode power curve for performance.decode_power: utilization. GENERATED by "
        "greensim/tools/power_fit.py; do not edit by hand.\n"
        f"# Regenerate: {COMMAND}\n"
    )
    text = header + yaml.safe_dump(res, sort_keys=False, width=110)
    if a.out is None:
        sys.stdout.write(text)
    else:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
