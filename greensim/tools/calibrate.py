"""Fit ``profiles/roofline.yaml`` on measured data; every value carries its source string.

    python -m greensim.tools.calibrate --data ../shared/data --out profiles/roofline.yaml

Recipe of research/profiles.md sections 4-5:
1. eta_compute / eta_memory per GPU: median of achieved/peak over op-level GEMM rows, FLOPs =
   2*m*k*n, bytes = 2*(weights + input + output), compute-bound = 2048-4096 tokens, memory-bound
   = 1-32 tokens. A100/H100: Vidur mlp.csv (Llama-2-7B/70B, TP1-8, QKV/O/gate-up/down);
   Volta: APEX+ V100-PCIe gemm_0.csv (Llama-sized weights, Vidur's token counts).
2. iteration_overhead_s from the only TP1 rows (Llama-3.1-8B batch-1 decode, A100/H100);
   all-reduce latency and bandwidth by least squares on log(model/measured) over splitwise-sim's
   Llama-2-70B prompt_time and token_time (TP2/4/8), started from the NCCL fit lat + size/bw
   of Vidur's all_reduce.csv. (With TP>1 rows only, overhead and latency are degenerate.)
3. validation: errors per GPU/TP/phase, NCCL variants, H100-from-A100 cross-check, V100 GEMMs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import least_squares

from greensim.hardware.catalog import load_catalog
from greensim.hardware.roofline import BoundRoofline

COMMAND = "python -m greensim.tools.calibrate --data ../shared/data --out profiles/roofline.yaml"
VIDUR = "profiles/vidur/compute/{g}/meta-llama/Llama-2-{m}-hf/mlp.csv"
VIDUR_AR = "profiles/vidur/network/{g}_dgx/all_reduce.csv"
APEX = "profiles/apex_plus/comp/V100-PCIE-16GB/gemm_0.csv"
SPLITWISE = "profiles/splitwise_sim/perf_model.csv"
SPECS = "profiles/gpu_specs.csv"
OLD = "profiles/old_gpu_measurements.csv"
ANCHOR_MODEL, ANCHOR_CTX = "Llama-3.1-8B", 512  # context not stated in the source; small effect
GPUS = {"A100-80GB": "a100", "H100-SXM": "h100"}  # catalogue name -> data folder
HW = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-SXM"}  # splitwise hardware -> name
MODEL = "Llama-2-70B"
OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
COMPUTE_TOKENS, MEMORY_TOKENS = (2048, 4096), (1, 2, 4, 8, 16, 24, 32)  # as in Vidur's grid
APEX_DIMS = (2048, 32768)  # weight dims of Llama-7B..70B layers at TP1-8
KEYS = ["hardware", "tensor_parallel", "prompt_size", "batch_size", "token_size"]
PHASES = ("prompt", "token")
HOW = f"; fitted by `{COMMAND}`"


def vidur_gemms(data: Path, g: str) -> pd.DataFrame:
    """One row per (model, TP, tokens, op): tokens, k x n weight shard, time [s]."""
    out = []
    for m in ("7b", "70b"):
        d = pd.read_csv(data / VIDUR.format(g=g, m=m))
        tp, h, hd = d.num_tensor_parallel_workers, d.n_embd, d.n_embd / d.n_head
        up = d.n_expanded_embd * np.where(d.use_gated_mlp.astype(bool), 2, 1)
        kn = {
            "attn_pre_proj": (h, (d.n_head + 2 * d.n_kv_head) * hd / tp),
            "attn_post_proj": (d.n_head * hd / tp, h),
            "mlp_up_proj": (h, up / tp),
            "mlp_down_proj": (d.n_expanded_embd / tp, h),
        }
        for op in OPS:
            out.append(
                pd.DataFrame(
                    {"tok": d.num_tokens, "k": kn[op][0], "n": kn[op][1], "t": d[f"time_stats.{op}.median"] * 1e-3}
                )
            )
    return pd.concat(out, ignore_index=True)


def apex_gemms(data: Path) -> pd.DataFrame:
    """APEX+ times (m x k) @ (k x n) with n the token count (its profile/scripts/gemm.py)."""
    d = pd.read_csv(data / APEX)
    d = d[d.m.between(*APEX_DIMS) & d.k.between(*APEX_DIMS)]
    d = d[d.n.between(*COMPUTE_TOKENS) | (d.n <= MEMORY_TOKENS[-1])]
    return pd.DataFrame({"tok": d.n, "k": d.k, "n": d.m, "t": d["time(us)"] * 1e-6})


def flops_bytes(g: pd.DataFrame):
    return 2.0 * g.tok * g.k * g.n, 2.0 * (g.k * g.n + g.tok * (g.k + g.n))


def efficiencies(g: pd.DataFrame, peak_flops: float, bw: float) -> dict:
    """Median achieved/peak in the compute-bound and memory-bound token regimes."""
    f, b = flops_bytes(g)
    c, m = g.tok.between(*COMPUTE_TOKENS), g.tok.isin(MEMORY_TOKENS)
    ec, em = f[c] / g.t[c] / peak_flops, b[m] / g.t[m] / bw
    q = lambda s: [round(float(s.quantile(x)), 3) for x in (0.25, 0.75)]  # noqa: E731
    return {
        "eta_compute": round(float(ec.median()), 3),
        "eta_memory": round(float(em.median()), 3),
        "n_c": int(c.sum()),
        "iqr_c": q(ec),
        "n_m": int(m.sum()),
        "iqr_m": q(em),
        "em_all_small": round(float((b / g.t / bw)[g.tok <= MEMORY_TOKENS[-1]].median()), 3),
    }


def allreduce_fit(data: Path, *gs: str) -> Tuple[float, float]:
    """NCCL all-reduce in one DGX node, TP 2/4/8 (and the given GPUs) pooled: t = lat + size/bw,
    least squares on log of the per-size median time. Returns (lat [s], bw [GB/s])."""
    d = pd.concat([pd.read_csv(data / VIDUR_AR.format(g=g)).assign(g=g) for g in gs])
    d = d[d.num_workers == d.devices_per_node]
    col = "time_stats.all_reduce.median"
    med = d.groupby(["g", "num_workers", "size"])[col].median().reset_index()
    s, t = med["size"].to_numpy(float), med[col].to_numpy() * 1e-3
    f = least_squares(
        lambda x: np.log((x[0] * 1e-6 + s / (x[1] * 1e9)) / t), [30.0, 100.0], bounds=([0.0, 1.0], [1e3, 1e4])
    )
    return float(f.x[0]) * 1e-6, float(f.x[1])


def splitwise(data: Path) -> pd.DataFrame:
    """Median over repetitions of each Llama-2-70B configuration (A100, H100; not pcap)."""
    d = pd.read_csv(data / SPLITWISE)
    d = d[(d.model == "llama2-70b") & d.hardware.isin(list(HW))]
    d = d[~((d.tensor_parallel == 2) & (d.batch_size == 64))]  # suspect rows (PROVENANCE.md)
    return d.groupby(KEYS, as_index=False)[["prompt_time", "token_time"]].median()


def predict(
    rows: pd.DataFrame, eta: Dict[str, Tuple[float, float]], t_fixed: float, ar: Dict[str, Tuple[float, float]]
) -> np.ndarray:
    """Model [prompt ms, token ms] per row: prefill of batch x prompt_size tokens in one
    iteration; mean decode iteration over token_size steps from context batch x prompt_size."""
    cat = load_catalog()
    model = cat.model(MODEL)
    out = np.empty((len(rows), 2))
    for i, r in enumerate(rows.itertuples()):
        name = HW[r.hardware]
        lat, bw = ar[name]
        b = BoundRoofline(cat.gpu(name), model, int(r.tensor_parallel), *eta[name], t_fixed, lat, bw * 1e9)
        B, P, K = int(r.batch_size), int(r.prompt_size), int(r.token_size)
        out[i] = b.iteration_time_s([(P, 0)] * B, 0, 0) * 1e3, b.decode_run_time_s(B, B * P, K) / K * 1e3
    return out


def tp1_anchor(data: Path, eta) -> Dict[str, Tuple[float, float]]:
    """Batch-1 TP1 decode of Llama-3.1-8B (A100, H100 rows of old_gpu_measurements.csv):
    name -> (measured s, roofline s without overhead at context ANCHOR_CTX)."""
    d = pd.read_csv(data / OLD, dtype=str)
    cat = load_catalog()
    out = {}
    for r in d[(d.model == ANCHOR_MODEL) & (d.tp == "1")].itertuples():
        for n in GPUS:
            if r.gpu.startswith(n[:4]):
                b = BoundRoofline(cat.gpu(n), cat.model(ANCHOR_MODEL), 1, *eta[n], 0.0, 0.0, 1.0)
                out[n] = float(r.tpot_ms.split()[0]) * 1e-3, b.iteration_time_s([], 1, ANCHOR_CTX)
    return out


def fit_engine(rows, eta, fixed: dict, x0: dict):
    """Least squares on log(model/measured), both phases, every configuration weighted
    equally. Parameters t_fixed_ms, lat_us, bw_gbs: free if in ``x0``, else from ``fixed``
    (where ``ar`` may give per-GPU (latency s, bw GB/s))."""
    meas = rows[["prompt_time", "token_time"]].to_numpy()
    names = list(x0)

    def unpack(x):
        p = {**fixed, **dict(zip(names, map(float, x)))}
        return p["t_fixed_ms"] * 1e-3, p.get("ar") or {n: (p["lat_us"] * 1e-6, p["bw_gbs"]) for n in HW.values()}

    lim = {"t_fixed_ms": (0.0, 100.0), "lat_us": (0.0, 1e3), "bw_gbs": (1.0, 1e4)}
    f = least_squares(
        lambda x: np.log(predict(rows, eta, *unpack(x)) / meas).ravel(),
        list(x0.values()),
        bounds=([lim[k][0] for k in names], [lim[k][1] for k in names]),
    )
    t_fixed, ar = unpack(f.x)
    return t_fixed, ar, predict(rows, eta, t_fixed, ar)


def errors(rows: pd.DataFrame, pred: np.ndarray) -> dict:
    """Median / max abs % error per GPU, TP and phase, pooled over TP, and overall."""
    e = np.abs(100 * (pred / rows[["prompt_time", "token_time"]].to_numpy() - 1))
    s = lambda a: {
        "median_abs_pct": round(float(np.median(a)), 1),  # noqa: E731
        "max_abs_pct": round(float(np.max(a)), 1),
        "n": int(len(a)),
    }
    out: dict = {}
    for hw, g in rows.reset_index(drop=True).groupby("hardware"):
        d = out[HW[hw]] = {"all_tp": {p: s(e[g.index, j]) for j, p in enumerate(PHASES)}}
        for tp, gg in g.groupby("tensor_parallel"):
            d[f"TP{tp}"] = {p: s(e[gg.index, j]) for j, p in enumerate(PHASES)}
    out["overall_median_abs_pct"] = round(float(np.median(e)), 1)
    return out


def g3(x: float) -> float:
    return float(f"{x:.3g}")


def calibrate(data: Path) -> dict:
    cat = load_catalog()
    # 1. Op-level efficiencies.
    spec = pd.read_csv(data / SPECS).set_index("gpu").loc["V100-PCIe-16GB"]
    v100 = (float(spec.fp16_tensor_tflops_dense) * 1e12, float(spec.mem_bandwidth_gbs) * 1e9)
    peaks = {n: (cat.gpu(n).peak_flops, cat.gpu(n).mem_bandwidth_bps) for n in GPUS}
    eff = {n: efficiencies(vidur_gemms(data, g), *peaks[n]) for n, g in GPUS.items()}
    apex = apex_gemms(data)
    eff["Volta"] = efficiencies(apex, *v100)
    eta = {n: (e["eta_compute"], e["eta_memory"]) for n, e in eff.items()}
    # 2. Engine terms: overhead from TP1, all-reduce from TP>1.
    anchor = tp1_anchor(data, eta)
    t_fixed = max(0.0, float(np.median([m - r for m, r in anchor.values()])))
    nccl = {n: allreduce_fit(data, g) for n, g in GPUS.items()}
    lat0 = allreduce_fit(data, *GPUS.values())[0] * 1e6
    bw0 = float(np.mean([v[1] for v in nccl.values()]))
    rows = splitwise(data)
    _, ar, pred = fit_engine(rows, eta, {"t_fixed_ms": t_fixed * 1e3}, {"lat_us": lat0, "bw_gbs": bw0})
    lat, bw = ar["A100-80GB"]
    # 3. Validation variants.
    tp1_err = lambda t: {n: round(100 * abs((r + t) / m - 1), 1) for n, (m, r) in anchor.items()}  # noqa: E731
    t_v1, _, pred_v1 = fit_engine(rows, eta, {"lat_us": lat0}, {"t_fixed_ms": 10.0, "bw_gbs": bw0})
    t_v2, _, pred_v2 = fit_engine(rows, eta, {"ar": nccl}, {"t_fixed_ms": 10.0})
    a100 = rows[rows.hardware == "a100-80gb"].reset_index(drop=True)
    h100 = rows[rows.hardware == "h100-80gb"].reset_index(drop=True)
    t_a = max(0.0, anchor["A100-80GB"][0] - anchor["A100-80GB"][1])
    _, ar_a, pred_a = fit_engine(a100, eta, {"t_fixed_ms": t_a * 1e3}, {"lat_us": lat0, "bw_gbs": bw0})
    pred_x = predict(h100, {n: eta["A100-80GB"] for n in GPUS}, t_a, ar_a)
    i_a, i_h = [
        int(
            np.flatnonzero(
                (r.tensor_parallel == 2) & (r.prompt_size == 512) & (r.batch_size == 1) & (r.token_size == 128)
            )[0]
        )
        for r in (a100, h100)
    ]
    ratio = {
        p: {
            "measured": round(float(a100.iloc[i_a][c] / h100.iloc[i_h][c]), 2),
            "model": round(float(pred_a[i_a, j] / pred_x[i_h, j]), 2),
        }
        for j, (p, c) in enumerate(zip(PHASES, ("prompt_time", "token_time")))
    }
    va = apex[apex.tok.between(*COMPUTE_TOKENS) | apex.tok.isin(MEMORY_TOKENS)]
    f, b = flops_bytes(va)
    v_err = lambda ec, em: round(
        float(
            np.median(
                np.abs(  # noqa: E731
                    100 * (np.maximum(f / (ec * v100[0]), b / (em * v100[1])) / va.t - 1)
                )
            )
        ),
        1,
    )

    # Output with provenance.
    def eta_entry(n: str, path: str, peak: Tuple[float, float], peak_src: str) -> dict:
        e, pk = eff[n], f"{peak[0] / 1e12:g} TFLOP/s, {peak[1] / 1e9:g} GB/s from {peak_src}"
        return {
            "eta_compute": e["eta_compute"],
            "eta_compute_source": f"median of achieved FLOP/s / peak ({pk}) over {e['n_c']} GEMM rows with "
            f"{COMPUTE_TOKENS[0]}-{COMPUTE_TOKENS[1]} tokens (IQR {e['iqr_c']}) in "
            f"shared/data/{path}{HOW}",
            "eta_memory": e["eta_memory"],
            "eta_memory_source": f"median of achieved bytes/s / bandwidth ({pk}) over {e['n_m']} GEMM rows with "
            f"tokens in {list(MEMORY_TOKENS)} (IQR {e['iqr_m']}) in shared/data/{path}{HOW}",
        }

    gpus = {
        n: eta_entry(
            n, VIDUR.format(g=g, m="{7b,70b}") + f" (ops {'/'.join(OPS)}; TP1-8)", peaks[n], "profiles/gpus.yaml"
        )
        for n, g in GPUS.items()
    }
    volta = eta_entry(
        "Volta",
        APEX + f" (V100-PCIe-16GB; weights m,k in {list(APEX_DIMS)}; odd token counts, up "
        f"to ~2x slower from tile alignment, fall outside the token set: all 1-32 would give eta_memory "
        f"{eff['Volta']['em_all_small']})",
        v100,
        f"shared/data/{SPECS} row V100-PCIe-16GB",
    )
    copy = lambda e, src: {"eta_compute": e["eta_compute"], "eta_memory": e["eta_memory"], "source": src}  # noqa: E731
    arch = {
        "Volta": volta,
        "Turing": copy(
            volta,
            "no T4 GEMM data: the Volta factors above (FP16 tensor cores in both), "
            "research/profiles.md section 5 step 4; derived, not measured",
        ),
        "Ampere": copy(gpus["A100-80GB"], "the A100-80GB factors (gpus.A100-80GB)"),
        "Hopper": copy(gpus["H100-SXM"], "the H100-SXM factors (gpus.H100-SXM)"),
        "Ada": copy(
            gpus["A100-80GB"],
            "no Ada (L4, L40S) GEMM data: the A100-80GB factors, research/profiles.md "
            "section 5 step 4 (A10/L4/L40S use A100-fitted eta); derived, not measured",
        ),
    }
    sw = (
        f"shared/data/{SPLITWISE} (Llama-2-70B, a100-80gb/h100-80gb, TP2/4/8, median of repetitions, "
        f"{len(rows)} configurations; TP2 batch-64 rows dropped as suspect)"
    )
    ar_files = f"shared/data/{VIDUR_AR.format(g='{a100,h100}')}"
    joint = (
        "jointly with {0}: least squares on log(model/measured) of prompt_time and token_time over "
        + sw
        + "; etas and iteration_overhead_s fixed, start from the NCCL fit lat + size/bw of "
        + ar_files
        + "; engine-effective: absorbs every per-layer TP cost, slower than NCCL "
        "(validation.variant_nccl_allreduce)" + HOW
    )
    engine = {
        "iteration_overhead_s": round(t_fixed, 5),
        "iteration_overhead_s_source": f"median over A100-80GB and H100-SXM of measured batch-1 TP1 decode time minus "
        f"the roofline without overhead (context {ANCHOR_CTX} assumed), {ANCHOR_MODEL} rows of shared/data/{OLD} "
        "(secondary source: blog citing Koyeb benchmarks; per GPU "
        + ", ".join(f"{n} {1e3 * (m - r):.2f} ms" for n, (m, r) in anchor.items())
        + "); "
        f"the only TP1 data: splitwise rows are all TP>1, where overhead and 2 x layers x all-reduce latency are "
        f"not separately identifiable{HOW}",
        "allreduce_latency_s": g3(lat),
        "allreduce_latency_s_source": joint.replace("{0}", "allreduce_bandwidth_gbs"),
        "allreduce_bandwidth_gbs": g3(bw),
        "allreduce_bandwidth_gbs_source": joint.replace("{0}", "allreduce_latency_s"),
    }
    brief = lambda e: (
        {g: e[g]["all_tp"] for g in HW.values()}
        | {  # noqa: E731
            "overall_median_abs_pct": e["overall_median_abs_pct"]
        }
    )
    validation = {
        "source": f"BoundRoofline with the values above vs {sw}; prompt = one prefill iteration of batch x "
        "prompt_size tokens; token = mean decode iteration over token_size steps from context batch x "
        f"prompt_size; error = abs(model/measured - 1) in %{HOW}",
        "splitwise": errors(rows, pred),
        "tp1_decode_abs_pct": tp1_err(t_fixed),
        "variant_nccl_latency": {
            "note": "allreduce_latency_s fixed to the NCCL fit instead, iteration_overhead_s and bandwidth fitted on "
            "splitwise: same splitwise errors (the degenerate direction), but the TP>1 overhead then lands in "
            "iteration_overhead_s and TP1 decode is far too slow",
            "allreduce_latency_s": g3(lat0 * 1e-6),
            "iteration_overhead_s": round(t_v1, 5),
            "splitwise": brief(errors(rows, pred_v1)),
            "tp1_decode_abs_pct": tp1_err(t_v1),
        },
        "variant_nccl_allreduce": {
            "note": f"latency and bandwidth per GPU from the NCCL fit of {ar_files} (single node, TP2/4/8 pooled), "
            "iteration_overhead_s fitted on splitwise",
            "allreduce": {n: {"latency_s": g3(v[0]), "bandwidth_gbs": g3(v[1])} for n, v in nccl.items()},
            "iteration_overhead_s": round(t_v2, 5),
            "splitwise": brief(errors(rows, pred_v2)),
            "tp1_decode_abs_pct": tp1_err(t_v2),
        },
        "cross_check_h100_from_a100": {
            "note": "research/profiles.md section 5 step 3: overhead (A100 TP1 row) and all-reduce (A100 splitwise "
            "rows) fitted on A100 only, A100 etas, H100 peak FLOP/s and bandwidth; errors on the H100 rows",
            "a100_only_fit": {
                "iteration_overhead_s": round(t_a, 5),
                "allreduce_latency_s": g3(ar_a["A100-80GB"][0]),
                "allreduce_bandwidth_gbs": g3(ar_a["A100-80GB"][1]),
            },
            "errors": errors(h100, pred_x)["H100-SXM"],
            "a100_over_h100_time_tp2_p512_b1": ratio,
        },
        "v100_gemm_median_abs_pct": {
            "note": "roofline max(F/(eta_c*peak), B/(eta_m*bw)) vs the APEX+ V100 GEMM rows used for Volta",
            "volta_eta": v_err(*eta["Volta"]),
            "a100_eta": v_err(*eta["A100-80GB"]),
        },
    }
    return {"engine": engine, "gpus": gpus, "architectures": arch, "validation": validation}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="shared data root")
    ap.add_argument("--out", type=Path, default=Path("profiles/roofline.yaml"))
    a = ap.parse_args(argv)
    res = calibrate(a.data)
    header = (
        "# Roofline calibration. GENERATED by greensim/tools/calibrate.py; do not edit by hand.\n"
        f"# Regenerate: {COMMAND}\n# Every value names its data file, statistic and command; "
        "'validation' holds the measured-vs-model errors.\n"
    )
    a.out.write_text(header + yaml.safe_dump(res, sort_keys=False, width=120))
    strip = lambda d: {
        k: strip(v) if isinstance(v, dict) else v  # noqa: E731
        for k, v in d.items()
        if "source" not in k and k != "note"
    }
    print(
        yaml.safe_dump(
            strip({k: res[k] for k in ("engine", "gpus", "architectures")}), sort_keys=False, default_flow_style=None
        )
    )
    print(yaml.safe_dump({k: res["validation"][k] for k in ("splitwise", "tp1_decode_abs_pct")}, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
