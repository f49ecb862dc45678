"""Write ``profiles/kernel.yaml``, the calibration of the default (kernel) performance model.

    python -m greensim.tools.kernel_calibrate --data ../shared/data --out profiles/kernel.yaml

Every value names its data and method:

* ``gpus.H100-SXM``, ``gpus.H200``: the five kernel efficiencies fitted (:func:`greensim.tools.
  kernel_fit.fit_kernel`) on our kernel-level profiles ``profiles/measured/<GPU>/*_tp1.csv``
  (prefill, decode and verify rows; CUDA graphs; see PROVENANCE.md there).
* ``architectures.Hopper``: the same fit pooled over both GPUs (each row with its own peaks).
* ``architectures.Ampere`` (A100, A10G) and ``Volta``: GEMM efficiencies from public operator
  tables (Vidur A100 ``mlp.csv``; APEX+ V100 ``gemm_0.csv``) by the roofline calibration's
  method (median achieved/peak; compute-bound 2048-4096 tokens, memory-bound 1-32 tokens);
  attention and the per-layer floor have no public kernel tables there and are the Hopper
  values, marked derived (their uncertainty band says so).
* ``power``: the utilisation curve fitted on every phase's measured board power per GPU, and
  pooled (``default``, used for GPUs without measurements, with a wider band).
* ``allreduce``: NCCL all-reduce ``lat + bytes / bw`` per TP degree from Vidur's DGX tables
  (A100, H100) and APEX+ (H200, V100-PCIe).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
import pandas as pd
import yaml

from greensim.base.paths import bundled
from greensim.hardware.catalog import load_catalog
from greensim.hardware.kernel import KERNEL_FIELDS
from greensim.tools import calibrate as rc
from greensim.tools import kernel_fit as kf

COMMAND = "python -m greensim.tools.kernel_calibrate --data ../shared/data --out profiles/kernel.yaml"
HOW = f"; written by `{COMMAND}`"
MEASURED = bundled("profiles") / "measured"
FITTED_GPUS = ("H100-SXM", "H200")
#: FlashAttention-2's share of A100 peak (prefill/verify attention on Ampere)
FA2_A100 = 0.6
FA2_A100_SOURCE = (
    "cited: Dao 2023, FlashAttention-2 (arXiv 2307.08691), abstract: '50-73% of the theoretical maximum "
    "FLOPs/s on A100'; the middle of that range (derived)"
)


def allreduce_table(data: Path) -> Dict[str, Dict[str, Any]]:
    """Per GPU / architecture: TP -> {latency_s, bandwidth_gbs, source}."""

    def vidur(g: str, tp: int) -> Tuple[float, float]:
        d = pd.read_csv(data / rc.VIDUR_AR.format(g=g))
        d = d[(d.num_workers == tp) & (d.devices_per_node == tp)]
        col = "time_stats.all_reduce.median"
        med = d.groupby("size")[col].median().reset_index()
        med = med[med["size"] <= 64 * 2**20]
        slope, icpt = np.polyfit(med["size"].to_numpy(float), med[col].to_numpy() * 1e-3, 1)
        return float(max(icpt, 1e-6)), float(1.0 / slope)

    def apex(folder: str, tp: int) -> Tuple[float, float]:
        d = pd.read_csv(data / "profiles/apex_plus/comm" / folder / "all_reduce.csv")
        d = d[(d.num_nodes == 1) & (d.num_gpus_per_node == tp) & (d["size(kb)"] <= 65536)]
        slope, icpt = np.polyfit(d["size(kb)"].to_numpy() * 1024.0, d["time(us)"].to_numpy() * 1e-6, 1)
        return float(max(icpt, 1e-6)), float(1.0 / slope)

    out: Dict[str, Dict[str, Any]] = {"gpus": {}, "architectures": {}}
    srcs = {
        "H100-SXM": ("gpus", lambda tp: vidur("h100", tp), f"{rc.VIDUR_AR.format(g='h100')}", (2, 4, 8)),
        "A100-80GB": ("gpus", lambda tp: vidur("a100", tp), f"{rc.VIDUR_AR.format(g='a100')}", (2, 4, 8)),
        "H200": ("gpus", lambda tp: apex("H200-SXM-141GB", tp), "profiles/apex_plus/comm/H200-SXM-141GB", (2, 4, 8)),
        "Volta": (
            "architectures",
            lambda tp: apex("V100-PCIE-16GB", tp),
            "profiles/apex_plus/comm/V100-PCIE-16GB",
            (2, 4),
        ),
    }
    for name, (sec, fn, src, tps) in srcs.items():
        ent: Dict[str, Any] = {}
        for tp in tps:
            try:
                lat, bw = fn(tp)
            except Exception:  # noqa: BLE001  (a TP degree absent from the table)
                continue
            ent[tp] = {
                "latency_s": float(f"{lat:.3g}"),
                "bandwidth_gbs": round(bw / 1e9, 1),
                "source": f"least-squares line t = lat + bytes/bw over sizes <= 64 MiB, one node, {tp} GPUs, "
                f"shared/data/{src}{HOW}",
            }
        out[sec][name] = ent
    out["architectures"]["Hopper"] = copy.deepcopy(out["gpus"]["H100-SXM"])
    out["architectures"]["Ampere"] = copy.deepcopy(out["gpus"]["A100-80GB"])
    return out


def calibrate(data: Path, measured: Path = MEASURED) -> Dict[str, Any]:
    cat = load_catalog()
    rows = [r for r in kf.load_rows(measured, cat) if r.tp == 1]
    res: Dict[str, Any] = {"gpus": {}, "architectures": {}, "power": {"gpus": {}}}
    fits = {}
    for g in FITTED_GPUS:
        rs = kf.by(rows, gpu=g)
        k, info = kf.fit_kernel(rs, cat.gpu, cat.model)
        fits[g] = k
        models = sorted({r.model for r in rs})
        res["gpus"][g] = {
            **kf.params_dict(k),
            "source": f"fitted: least squares (soft-L1) on log(model/measured) of {info['rows']} prefill/decode/"
            f"verify rows of profiles/measured/{g}/*_tp1.csv ({len(models)} models: {', '.join(models)}); "
            f"in-sample median |err| {info['median_abs_err']:.1%}{HOW}",
        }
        abc, pinfo = kf.fit_power(rs, k, cat.gpu, cat.model)
        res["power"]["gpus"][g] = {
            "a": round(abc[0], 4),
            "b": round(abc[1], 4),
            "c": round(abc[2], 4),
            "source": f"fitted: non-negative least squares of (P - idle)/(TDP - idle) on [1, u_mem, u_compute] over "
            f"{pinfo['rows']} rows with NVML board power (every phase) in profiles/measured/{g}/*_tp1.csv; "
            f"median |err| {pinfo['median_abs_err']:.1%}{HOW}",
        }
    hop = kf.by(rows, gpu=set(FITTED_GPUS))
    kh, infoh = kf.fit_kernel(hop, cat.gpu, cat.model)
    res["architectures"]["Hopper"] = {
        **kf.params_dict(kh),
        "source": f"fitted: pooled over {infoh['rows']} rows of profiles/measured/{{H100-SXM,H200}}/*_tp1.csv "
        f"(each row with its GPU's peaks); used for H100-PCIe{HOW}",
    }
    abc, pinfo = kf.fit_power(hop, kh, cat.gpu, cat.model)
    res["power"]["default"] = {
        "a": round(abc[0], 4),
        "b": round(abc[1], 4),
        "c": round(abc[2], 4),
        "source": f"fitted: pooled over {pinfo['rows']} H100/H200 rows with power (median |err| "
        f"{pinfo['median_abs_err']:.1%}); for GPUs without measured power this transfers the curve's shape "
        f"(normalised by each GPU's idle and TDP): derived, not measured, and their band is wider{HOW}",
    }
    derived = "derived: the pooled Hopper fit (no public kernel-level {what} table for this GPU)"
    for arch, (gem, label) in {
        "Ampere": (rc.efficiencies(rc.vidur_gemms(data, "a100"), 312e12, 2039e9), rc.VIDUR.format(g="a100", m="*")),
        "Volta": (rc.efficiencies(rc.apex_gemms(data), 112e12, 900e9), rc.APEX),
    }.items():
        ent = kf.params_dict(kh)
        ent["eta_gemm_compute"] = gem["eta_compute"]
        ent["eta_gemm_memory"] = gem["eta_memory"]
        attn = f"eta_attn_*, t_kernel_s: {derived.format(what='attention / whole-layer')}"
        if arch == "Ampere":
            # the Hopper fit measures FlashAttention-2 on H100 (~35% of peak there); on A100 the same
            # kernel reaches far more of its peak, so the Hopper value would be a wrong transfer
            ent["eta_attn_compute"] = FA2_A100
            attn = (
                f"eta_attn_compute {FA2_A100}: {FA2_A100_SOURCE}; eta_attn_memory, t_kernel_s: "
                f"{derived.format(what='attention-bandwidth / whole-layer')}"
            )
        ent["source"] = (
            f"eta_gemm_compute / eta_gemm_memory: median achieved/peak over {gem['n_c']} compute-bound and "
            f"{gem['n_m']} memory-bound GEMM rows of shared/data/{label} (IQR {gem['iqr_c']}, {gem['iqr_m']}); "
            f"{attn}{HOW}"
        )
        res["architectures"][arch] = ent
    res["architectures"]["Turing"] = dict(
        res["architectures"]["Volta"], source="derived: the Volta entry (no T4 kernel data; FP16 tensor cores in both)"
    )
    res["architectures"]["Ada"] = dict(
        res["architectures"]["Ampere"], source="derived: the Ampere entry (no L4/L40S kernel data)"
    )
    res["gpus"]["A100-80GB"] = dict(res["architectures"]["Ampere"])
    res["allreduce"] = allreduce_table(data)
    for sec in ("gpus", "architectures"):
        for v in res[sec].values():
            assert all(f in v for f in KERNEL_FIELDS)
    return res


HEADER = f"""# Kernel-model calibration (greensim/hardware/kernel.py). GENERATED; do not edit by hand.
# Regenerate: {COMMAND}
# Per GPU (else per architecture): eta_gemm_compute, eta_gemm_memory (weight GEMMs), eta_attn_compute
# (prefill/verify attention FLOPs), eta_attn_memory (decode KV-cache reads), t_kernel_s (per-kernel latency
# floor under CUDA graphs); 'power': a, b, c of P = idle + (TDP - idle) * (a + b u_mem + c u_compute);
# 'allreduce': NCCL all-reduce per TP degree. Each entry's 'source' says how it was obtained.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="shared data root")
    ap.add_argument("--out", type=Path, default=Path("profiles/kernel.yaml"))
    args = ap.parse_args(argv)
    res = calibrate(args.data)
    args.out.write_text(HEADER + yaml.safe_dump(res, sort_keys=False, width=120))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
