"""Fit ``profiles/roofline.yaml`` on measured data, with a source string on every value.

    python -m greensim.perf.calibrate --data ../shared/data --out profiles/roofline.yaml

Recipe of research/profiles.md sections 4-5:

1. ``eta_compute`` / ``eta_memory`` per GPU from op-level GEMM times: achieved FLOP/s / peak
   (compute-bound regime, >= 2048 tokens) and achieved bytes/s / bandwidth (memory-bound
   regime, <= 32 tokens), FLOPs = 2*m*k*n, bytes = 2*(weights + input + output). The
   statistic is the median over all rows of the regime. A100/H100: Vidur ``mlp.csv``
   (Llama-2-7B/70B, TP1-8, the linear ops QKV, O, gate/up, down); Volta: APEX+ V100-PCIe
   ``gemm_0.csv`` restricted to Llama-sized weights and Vidur's token counts.
2. The engine terms (per-iteration overhead, all-reduce latency and bandwidth) by least
   squares on log error over splitwise-sim's Llama-2-70B prompt and token times (A100,
   H100, TP2/4/8), starting from the NCCL fit ``lat + size/bw`` of Vidur's all_reduce.csv.
3. A ``validation`` block: measured-vs-model errors, the variant that keeps Vidur's NCCL
   all-reduce, and the cross-check of research/profiles.md section 5 step 3 (H100 predicted
   with everything fitted on A100 only, specs swapped).
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

from ..catalog import load_catalog
from .roofline import BoundRoofline

COMMAND = "python -m greensim.perf.calibrate --data ../shared/data --out profiles/roofline.yaml"
VIDUR = "profiles/vidur/compute/{g}/meta-llama/Llama-2-{m}-hf/mlp.csv"
VIDUR_AR = "profiles/vidur/network/{g}_dgx/all_reduce.csv"
APEX = "profiles/apex_plus/comp/V100-PCIE-16GB/gemm_0.csv"
SPLITWISE = "profiles/splitwise_sim/perf_model.csv"
SPECS = "profiles/gpu_specs.csv"
GPUS = {"A100-80GB": "a100", "H100-SXM": "h100"}            # catalogue name -> data folder
HW = {"a100-80gb": "A100-80GB", "h100-80gb": "H100-SXM"}     # splitwise hardware -> name
MODEL = "Llama-2-70B"
OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
COMPUTE_TOKENS, MEMORY_TOKENS = (2048, 4096), (1, 2, 4, 8, 16, 24, 32)   # Vidur's grid
APEX_WEIGHT_DIMS = (2048, 32768)   # Llama-7B..70B layer dims at TP1-8
STAT = "median"
KEYS = ["hardware", "tensor_parallel", "prompt_size", "batch_size", "token_size"]


def vidur_gemms(data: Path, g: str) -> pd.DataFrame:
    """One row per (model, TP, tokens, op): tokens, k x n weight, time [s]."""
    out = []
    for m in ("7b", "70b"):
        d = pd.read_csv(data / VIDUR.format(g=g, m=m))
        tp, h, hd = d.num_tensor_parallel_workers, d.n_embd, d.n_embd / d.n_head
        up = d.n_expanded_embd * np.where(d.use_gated_mlp.astype(bool), 2, 1)
        kn = {"attn_pre_proj": (h, (d.n_head + 2 * d.n_kv_head) * hd / tp),
              "attn_post_proj": (d.n_head * hd / tp, h),
              "mlp_up_proj": (h, up / tp), "mlp_down_proj": (d.n_expanded_embd / tp, h)}
        for op in OPS:
            k, n = kn[op]
            out.append(pd.DataFrame({"tok": d.num_tokens, "k": k, "n": n,
                                     "t": d[f"time_stats.{op}.median"] * 1e-3}))
    return pd.concat(out, ignore_index=True)


def apex_gemms(data: Path) -> pd.DataFrame:
    """APEX+ (m x k) @ (k x n): n is the token count (APEX+ profile/scripts/gemm.py)."""
    d = pd.read_csv(data / APEX)
    lo, hi = APEX_WEIGHT_DIMS
    d = d[d.m.between(lo, hi) & d.k.between(lo, hi)]
    return pd.DataFrame({"tok": d.n, "k": d.k, "n": d.m, "t": d["time(us)"] * 1e-6})


def efficiencies(g: pd.DataFrame, peak_flops: float, bw: float) -> Dict[str, float]:
    """Median achieved/peak in the compute-bound and memory-bound token regimes."""
    flops = 2.0 * g.tok * g.k * g.n
    bytes_ = 2.0 * (g.k * g.n + g.tok * g.k + g.tok * g.n)
    c = g.tok.between(*COMPUTE_TOKENS)
    m = g.tok.isin(MEMORY_TOKENS)
    ec, em = flops[c] / g.t[c] / peak_flops, bytes_[m] / g.t[m] / bw
    q = lambda s: [round(float(s.quantile(x)), 3) for x in (0.25, 0.75)]  # noqa: E731
    return {"eta_compute": round(float(ec.median()), 3), "eta_memory": round(float(em.median()), 3),
            "n_c": int(c.sum()), "iqr_c": q(ec), "n_m": int(m.sum()), "iqr_m": q(em)}


def allreduce_fit(data: Path, *gs: str) -> Tuple[float, float]:
    """NCCL all-reduce on one DGX node (TP 2/4/8 and the given GPUs pooled): t = lat + size/bw,
    least squares on log time of the per-size medians. Returns (lat [s], bw [GB/s])."""
    d = pd.concat([pd.read_csv(data / VIDUR_AR.format(g=g)).assign(g=g) for g in gs])
    d = d[d.num_workers == d.devices_per_node]
    med = d.groupby(["g", "num_workers", "size"])["time_stats.all_reduce.median"].median().reset_index()
    s, t = med["size"].to_numpy(float), med["time_stats.all_reduce.median"].to_numpy() * 1e-3
    f = least_squares(lambda x: np.log((x[0] * 1e-6 + s / (x[1] * 1e9)) / t), [30.0, 100.0],
                      bounds=([0.0, 1.0], [1e3, 1e4]))
    return float(f.x[0]) * 1e-6, float(f.x[1])


def splitwise(data: Path) -> pd.DataFrame:
    """Median over repetitions of each Llama-2-70B configuration (A100, H100; not pcap)."""
    d = pd.read_csv(data / SPLITWISE)
    d = d[(d.model == "llama2-70b") & d.hardware.isin(list(HW))]
    d = d[~((d.tensor_parallel == 2) & (d.batch_size == 64))]  # suspect rows (PROVENANCE.md)
    return d.groupby(KEYS, as_index=False)[["prompt_time", "token_time"]].median()


def predict(rows: pd.DataFrame, eta: Dict[str, Tuple[float, float]], t_fixed: float,
            ar: Dict[str, Tuple[float, float]]) -> np.ndarray:
    """Model [prompt_ms, token_ms] per row: prefill of batch x prompt tokens in one
    iteration; mean decode iteration over token_size steps from context batch x prompt."""
    cat = load_catalog()
    model = cat.model(MODEL)
    out = np.empty((len(rows), 2))
    for i, r in enumerate(rows.itertuples()):
        name = HW[r.hardware]
        lat, bw = ar[name]
        b = BoundRoofline(cat.gpu(name), model, int(r.tensor_parallel), *eta[name], t_fixed, lat, bw * 1e9)
        B, P, K = int(r.batch_size), int(r.prompt_size), int(r.token_size)
        out[i] = (b.iteration_time_s([(P, 0)] * B, 0, 0) * 1e3, b.decode_run_time_s(B, B * P, K) / K * 1e3)
    return out


def fit_engine(rows, eta, lat, x0, ar=None):
    """Least squares on log(model/measured), both phases, every row weighted equally.
    x = [t_fixed ms, all-reduce bw GB/s] with the all-reduce latency fixed to ``lat``: every
    measured row has TP > 1, so t_fixed and 2*L*lat are not separately identifiable.
    With ``ar`` (per-GPU latency, bw) given, only t_fixed is free."""
    meas = rows[["prompt_time", "token_time"]].to_numpy()

    def unpack(x):
        return float(x[0]) * 1e-3, ar or {n: (lat, float(x[1])) for n in HW.values()}

    lo, hi = ([0.0, 1.0], [100.0, 1e4])
    k = 1 if ar else 2
    f = least_squares(lambda x: np.log(predict(rows, eta, *unpack(x)) / meas).ravel(),
                      x0[:k], bounds=(lo[:k], hi[:k]))
    t_fixed, ars = unpack(f.x)
    return t_fixed, ars, predict(rows, eta, t_fixed, ars)


def errors(rows: pd.DataFrame, pred: np.ndarray) -> dict:
    """Median / max abs % error per GPU, TP and phase, plus pooled per GPU and phase."""
    e = np.abs(100 * (pred / rows[["prompt_time", "token_time"]].to_numpy() - 1))
    s = lambda a: {"median_abs_pct": round(float(np.median(a)), 1),  # noqa: E731
                   "max_abs_pct": round(float(np.max(a)), 1), "n": int(len(a))}
    out: dict = {}
    for hw, g in rows.reset_index(drop=True).groupby("hardware"):
        d = out[HW[hw]] = {"all_tp": {p: s(e[g.index, j]) for j, p in enumerate(("prompt", "token"))}}
        for tp, gg in g.groupby("tensor_parallel"):
            d[f"TP{tp}"] = {p: s(e[gg.index, j]) for j, p in enumerate(("prompt", "token"))}
    out["overall_median_abs_pct"] = round(float(np.median(e)), 1)
    return out


def calibrate(data: Path) -> dict:
    cat = load_catalog()
    spec = pd.read_csv(data / SPECS).set_index("gpu").loc["V100-PCIe-16GB"]
    v100_peak = (float(spec.fp16_tensor_tflops_dense) * 1e12, float(spec.mem_bandwidth_gbs) * 1e9)
    eff = {n: efficiencies(vidur_gemms(data, g), cat.gpu(n).peak_flops, cat.gpu(n).mem_bandwidth_bps)
           for n, g in GPUS.items()}
    apex = apex_gemms(data)
    eff["Volta"] = efficiencies(apex, *v100_peak)
    eta = {n: (eff[n]["eta_compute"], eff[n]["eta_memory"]) for n in GPUS}
    nccl = {n: allreduce_fit(data, g) for n, g in GPUS.items()}
    lat = allreduce_fit(data, *GPUS.values())[0]
    rows = splitwise(data)
    x0 = [10.0, float(np.mean([v[1] for v in nccl.values()]))]
    t_fixed, ar, pred = fit_engine(rows, eta, lat, x0)
    bw = ar["A100-80GB"][1]
    t_nccl, _, pred_nccl = fit_engine(rows, eta, lat, x0, ar=nccl)
    a100 = rows[rows.hardware == "a100-80gb"]
    h100 = rows[rows.hardware == "h100-80gb"].reset_index(drop=True)
    t_a, ar_a, _ = fit_engine(a100, eta, nccl["A100-80GB"][0], x0)
    swap = {n: eta["A100-80GB"] for n in GPUS}
    pred_x = predict(h100, swap, t_a, ar_a)
    sel = lambda r: ((r.tensor_parallel == 2) & (r.prompt_size == 512) & (r.batch_size == 1)  # noqa: E731
                     & (r.token_size == 128)).to_numpy()
    ma, mh = a100[["prompt_time", "token_time"]].to_numpy()[sel(a100)], \
        h100[["prompt_time", "token_time"]].to_numpy()[sel(h100)]
    pa = predict(a100[sel(a100)], eta, t_a, ar_a)
    ratio = {p: {"measured": round(float(ma[0, j] / mh[0, j]), 2), "model": round(float(pa[0, j] / pred_x[sel(h100)][0, j]), 2)}
             for j, p in enumerate(("prompt", "token"))}
    # Cross-generation: A100-fitted eta on V100 specs vs APEX+ V100 GEMM times.
    va = apex[apex.tok.between(*COMPUTE_TOKENS) | apex.tok.isin(MEMORY_TOKENS)]
    vt = lambda ec, em: np.maximum(2.0 * va.tok * va.k * va.n / (ec * v100_peak[0]),  # noqa: E731
                                   2.0 * (va.k * va.n + va.tok * (va.k + va.n)) / (em * v100_peak[1]))
    verr = lambda ec, em: round(float(np.median(np.abs(100 * (vt(ec, em) / va.t - 1)))), 1)  # noqa: E731

    sw = f"shared/data/{SPLITWISE} (Llama-2-70B, a100-80gb/h100-80gb, TP2/4/8, median of repetitions; TP2 batch-64 rows dropped as suspect)"
    how = f"; fitted by `{COMMAND}`"

    def gpu_src(n: str, path: str, peak: str) -> dict:
        e = eff[n]
        return {"eta_compute": e["eta_compute"],
                "eta_compute_source": f"{STAT} of achieved FLOP/s / peak ({peak}) over {e['n_c']} GEMM rows with "
                                      f"{COMPUTE_TOKENS[0]}-{COMPUTE_TOKENS[1]} tokens (IQR {e['iqr_c']}) in shared/data/{path}{how}",
                "eta_memory": e["eta_memory"],
                "eta_memory_source": f"{STAT} of achieved bytes/s / bandwidth ({peak}) over {e['n_m']} GEMM rows with "
                                     f"tokens in {list(MEMORY_TOKENS)} (IQR {e['iqr_m']}) in shared/data/{path}{how}"}

    vid = lambda g: VIDUR.format(g=g, m="{7b,70b}") + " (ops " + "/".join(OPS) + ", TP1-8)"  # noqa: E731
    gpus = {n: gpu_src(n, vid(g), f"{cat.gpu(n).peak_flops / 1e12:g} TFLOP/s, {cat.gpu(n).mem_bandwidth_bps / 1e9:g} GB/s, "
                       "profiles/gpus.yaml") for n, g in GPUS.items()}
    volta = gpu_src("Volta", APEX + f" (V100-PCIe-16GB; weights m,k in {list(APEX_WEIGHT_DIMS)}; odd token counts, ~2x slower, "
                    f"excluded by the token set; all n<=32 would give {round(float(_em_all(apex, v100_peak[1])), 2)})",
                    f"{v100_peak[0] / 1e12:g} TFLOP/s, {v100_peak[1] / 1e9:g} GB/s, {SPECS} row V100-PCIe-16GB")
    arch = {"Volta": volta,
            "Turing": {**{k: volta[k] for k in ("eta_compute", "eta_memory")},
                       "source": "no T4 GEMM data: Volta factors (both FP16 tensor-core generations), "
                                 "research/profiles.md section 5 step 4; derived, not measured"},
            "Ampere": {**{k: gpus["A100-80GB"][k] for k in ("eta_compute", "eta_memory")},
                       "source": "A100-80GB factors (see gpus.A100-80GB)"},
            "Hopper": {**{k: gpus["H100-SXM"][k] for k in ("eta_compute", "eta_memory")},
                       "source": "H100-SXM factors (see gpus.H100-SXM)"}}
    ar_files = f"shared/data/{VIDUR_AR.format(g='{a100,h100}')}"
    fit_note = (f"jointly with {{other}}: least squares on log(model/measured) of prompt_time and token_time over all "
                f"{len(rows)} configurations of {sw}; etas fixed to the op-level fit, all-reduce latency fixed to the "
                f"NCCL fit (all rows are TP>1, so overhead and latency are not separately identifiable){how}")
    engine = {"iteration_overhead_s": round(t_fixed, 5),
              "iteration_overhead_s_source": fit_note.format(other="allreduce_bandwidth_gbs"),
              "allreduce_latency_s": float(f"{lat:.3g}"),
              "allreduce_latency_s_source": f"NCCL microbenchmark: intercept of t = lat + size/bw, least squares on log "
                                            f"of the per-size median time over single-node TP2/4/8 rows of {ar_files} "
                                            f"(A100 and H100 pooled){how}",
              "allreduce_bandwidth_gbs": float(f"{bw:.3g}"),
              "allreduce_bandwidth_gbs_source": fit_note.format(other="iteration_overhead_s") + "; an engine-effective "
              "value (absorbs all per-token TP costs), below the NCCL microbenchmark bandwidth in validation.nccl_allreduce_variant"}
    validation = {
        "source": f"model = BoundRoofline with the values above vs {sw}; prompt = one prefill iteration of "
                  f"batch x prompt_size tokens; token = mean decode iteration over token_size steps from context "
                  f"batch x prompt_size; abs % error of model/measured - 1{how}",
        "splitwise": errors(rows, pred),
        "nccl_allreduce_variant": {
            "note": "all-reduce latency and bandwidth fixed per GPU to the NCCL microbenchmark fit (lat + size/bw, "
                    f"log-LSQ over single-node TP2/4/8 rows of {ar_files}); only the overhead refitted. "
                    "Not used: worse fit than the engine-effective bandwidth above",
            "allreduce": {n: {"latency_s": float(f"{v[0]:.3g}"), "bandwidth_gbs": float(f"{v[1]:.3g}")} for n, v in nccl.items()},
            "iteration_overhead_s": round(t_nccl, 5), "errors": errors(rows, pred_nccl)},
        "cross_check_h100_from_a100": {
            "note": "research/profiles.md section 5 step 3: overhead and all-reduce bandwidth fitted on A100 rows only (latency: A100 NCCL fit), "
                    "A100 etas, H100 peak FLOP/s and bandwidth; errors on the H100 rows",
            "a100_only_fit": {"iteration_overhead_s": round(t_a, 5), "allreduce_latency_s": float(f"{ar_a['A100-80GB'][0]:.3g}"),
                              "allreduce_bandwidth_gbs": float(f"{ar_a['A100-80GB'][1]:.3g}")},
            "errors": errors(h100, pred_x)["H100-SXM"],
            "a100_over_h100_tp2_p512_b1": ratio},
        "v100_gemm_median_abs_pct": {"volta_eta": verr(*eta_tuple(eff["Volta"])),
                                     "a100_eta": verr(*eta["A100-80GB"]),
                                     "note": "roofline max(F/(eta_c*peak), B/(eta_m*bw)) vs APEX+ V100 GEMM times, rows used for Volta"},
    }
    return {"engine": engine, "gpus": gpus, "architectures": arch, "validation": validation}


def _em_all(apex: pd.DataFrame, bw: float) -> float:
    m = apex[apex.tok <= 32]
    return float((2.0 * (m.k * m.n + m.tok * (m.k + m.n)) / m.t / bw).median())


def eta_tuple(e: dict) -> Tuple[float, float]:
    return e["eta_compute"], e["eta_memory"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="shared data root")
    ap.add_argument("--out", type=Path, default=Path("profiles/roofline.yaml"))
    a = ap.parse_args(argv)
    res = calibrate(a.data)
    header = ("# Roofline calibration: GENERATED by greensim/perf/calibrate.py, do not edit by hand.\n"
              f"# Regenerate: {COMMAND}\n# Every value names its data file, statistic and command; "
              "'validation' holds measured-vs-model errors.\n")
    a.out.write_text(header + yaml.safe_dump(res, sort_keys=False, width=200))
    e, v = res["engine"], res["validation"]
    print({k: e[k] for k in ("iteration_overhead_s", "allreduce_latency_s", "allreduce_bandwidth_gbs")})
    for n, d in {**res["gpus"], **res["architectures"]}.items():
        print(f"{n:10s} eta_compute={d['eta_compute']} eta_memory={d['eta_memory']}")
    print(yaml.safe_dump({k: v[k] for k in ("splitwise", "cross_check_h100_from_a100")}, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
