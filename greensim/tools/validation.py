"""Generate ``profiles/VALIDATION.md`` and ``profiles/uncertainty.yaml``.

    python -m greensim.tools.validation --data ../shared/data --out profiles

1. For every measured TP1 profile (profiles/measured/<GPU>/<model>_tp1.csv): relative error
   of the roofline against the measurement, per phase (prefill = TTFT of one prompt, decode
   step, mixed iteration) and for power, with the roofline
   (a) as shipped (profiles/roofline.yaml, fitted on Vidur/splitwise data, no measurement of ours);
   (b) refitted on our measurements leaving the model out (leave-one-model-out, same GPU);
   (c) refitted leaving the GPU out (leave-one-GPU-out: the other GPU's profiles, this GPU's specs).
   The refit: eta_compute, eta_memory, iteration_overhead_s by least squares on log(model/measured)
   over prefill and decode rows; power: prefill and decode fractions of TDP (medians), measured idle.
2. The ``profiled`` model's own error on the mixed rows (held out: it interpolates prefill and
   decode grids only).
3. The shipped roofline against every row of ../shared/data/profiles/old_gpu_measurements.csv.
4. KV-cache capacity (maximum batch x context) of every catalogue model on every GPU at TP1.
5. Uncertainty bands (uncertainty.yaml) from these errors, each with its source.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import yaml
from scipy.optimize import least_squares

from greensim.base.errors import ConfigError
from greensim.core.memory import kv_capacity_blocks
from greensim.hardware.catalog import Catalog, GPUSpec, ModelSpec, load_catalog
from greensim.hardware.profiled import BoundProfiled, find_profiles, load_profile
from greensim.hardware.roofline import BoundRoofline, RooflineModel, load_roofline_params

COMMAND = "python -m greensim.tools.validation --data ../shared/data --out profiles"
OLD = "profiles/old_gpu_measurements.csv"
PH = ("prefill", "decode", "mixed")
TARGET_MEDIAN, TARGET_WORST = 10.0, 25.0


def _rows(prof) -> pd.DataFrame:
    out = [("prefill", 1, p, 0, t, pw) for p, t, pw in prof.prefill]
    for b, d in prof.decode.items():
        out += [("decode", b, 0, c, t, pw) for c, (t, pw) in d.items()]
    out += [("mixed", b, p, c, t, pw) for p, b, c, t, pw in prof.mixed]
    return pd.DataFrame(out, columns=["phase", "batch", "prompt", "ctx", "time_s", "power_w"])


def load_measured(cat: Catalog) -> Dict[Tuple[str, str], Dict[str, Any]]:
    """(GPU, model) -> {"profile", "rows"} for every shipped TP1 profile."""
    out = {}
    for (g, m, tp), f in sorted(find_profiles().items()):
        if tp == 1 and g in cat.gpus and m in cat.models:
            p = load_profile(f)
            out[(g, m)] = {"profile": p, "rows": _rows(p)}
    return out


def roof_time(gpu: GPUSpec, model: ModelSpec, x, r: pd.DataFrame) -> np.ndarray:
    """Roofline times of rows ``r`` with (eta_c, eta_m, t_fixed) = x."""
    b = BoundRoofline(gpu, model, 1, x[0], x[1], x[2], 0.0, 1.0)
    out = np.empty(len(r))
    for i, (ph, n, p, c) in enumerate(zip(r.phase, r.batch, r.prompt, r.ctx)):
        chunks = [(int(p), 0)] if ph != "decode" else []
        nd = int(n) if ph != "prefill" else 0
        out[i] = b.iteration_time_s(chunks, nd, nd * int(c))
    return out


def fit(train: List[Tuple[GPUSpec, ModelSpec, pd.DataFrame]]) -> np.ndarray:
    """Least squares on log(model/measured) over prefill and decode rows."""
    data = [(g, m, r[r.phase != "mixed"]) for g, m, r in train]

    def res(x):
        return np.concatenate([np.log(roof_time(g, m, x, r) / r.time_s.to_numpy()) for g, m, r in data])

    f = least_squares(res, [0.7, 0.7, 0.002], bounds=([0.05, 0.05, 0.0], [1.0, 1.0, 0.05]))
    return f.x


def err(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    return 100.0 * (pred / meas - 1.0)


def summary(e: np.ndarray) -> Dict[str, float]:
    a = np.abs(e)
    return {
        "median": float(np.median(a)) if len(a) else math.nan,
        "worst": float(np.max(a)) if len(a) else math.nan,
        "n": int(len(a)),
    }


def power_fit(train) -> Tuple[float, float]:
    """Median prefill and decode power as fractions of TDP over the training profiles."""
    pre, dec = [], []
    for g, _, r in train:
        pre += list(r[r.phase == "prefill"].power_w / g.tdp_w)
        dec += list(r[r.phase == "decode"].power_w / g.tdp_w)
    return float(np.median(pre)), float(np.median(dec))


def power_pred(g: GPUSpec, r: pd.DataFrame, fp: float, fd: float) -> np.ndarray:
    tok = np.where(r.phase == "decode", 0, r.prompt)
    share = np.where(r.phase == "decode", 0.0, tok / (tok + np.where(r.phase == "prefill", 0, r.batch)))
    return g.tdp_w * (fd + (fp - fd) * share)


def validate(data: Path) -> Dict[str, Any]:
    cat = load_catalog()
    meas = load_measured(cat)
    params = load_roofline_params()
    shipped = RooflineModel(params)
    res: Dict[str, Any] = {"profiles": {}, "fits": {}}
    gpus = sorted({g for g, _ in meas})
    logo_x = {}
    for g in gpus:
        train = [(cat.gpu(gg), cat.model(m), v["rows"]) for (gg, m), v in meas.items() if gg != g]
        logo_x[g] = fit(train) if train else None
        logo_pw = power_fit(train) if train else None
        res["fits"][f"leave-out {g}"] = {"x": logo_x[g], "power": logo_pw}
    for (g, m), v in meas.items():
        gpu, model, r = cat.gpu(g), cat.model(m), v["rows"]
        e = shipped._eff(gpu)
        eng = params["engine"]
        x_ship = (e["eta_compute"], e["eta_memory"], eng["iteration_overhead_s"])
        lomo_train = [(gpu, cat.model(mm), vv["rows"]) for (gg, mm), vv in meas.items() if gg == g and mm != m]
        x_lomo = fit(lomo_train)
        fp, fd = power_fit(lomo_train)
        lp = res["fits"][f"leave-out {g}"]["power"]
        t = r.time_s.to_numpy()
        out = {}
        for name, x in (("shipped", x_ship), ("lomo", x_lomo), ("logo", logo_x[g])):
            if x is None:
                continue
            e_all = err(roof_time(gpu, model, x, r), t)
            out[name] = {ph: summary(e_all[(r.phase == ph).to_numpy()]) for ph in PH}
        # power: shipped constant fractions, LOMO and LOGO refits
        pw = r.power_w.to_numpy()
        ok = np.isfinite(pw) & (pw > 0)
        for name, (a, b) in (
            ("shipped", (gpu.prefill_power_frac, gpu.decode_power_frac)),
            ("lomo", (fp, fd)),
            ("logo", lp),
        ):
            if name in out and ok.any():
                out[name]["power"] = summary(err(power_pred(gpu, r, a, b)[ok], pw[ok]))
        # the profiled model itself on mixed rows (not in its grids)
        bp = BoundProfiled(v["profile"], BoundRoofline(gpu, model, 1, *x_ship, 0.0, 1.0), gpu, 1)
        mx = r[r.phase == "mixed"]
        if len(mx):
            pt = np.array(
                [
                    bp.iteration_time_s([(int(p), 0)], int(n), int(n) * int(c))
                    for p, n, c in zip(mx.prompt, mx.batch, mx.ctx)
                ]
            )
            pp = np.array([bp.power_w(int(p), int(n)) for p, n in zip(mx.prompt, mx.batch)])
            out["profiled_mixed"] = {
                "time": summary(err(pt, mx.time_s.to_numpy())),
                "power": summary(err(pp, mx.power_w.to_numpy())),
            }
        out["x_lomo"] = [round(float(z), 4) for z in x_lomo]
        res["profiles"][(g, m)] = out
    res["tp2"] = {}
    for (g, m, tp), f in sorted(find_profiles().items()):
        if tp > 1 and g in cat.gpus and m in cat.models:
            r = _rows(load_profile(f))
            b = shipped.bind(cat.gpu(g), cat.model(m), tp)
            pred = np.array(
                [
                    b.iteration_time_s(
                        [(int(p), 0)] if ph != "decode" else [],
                        int(n) if ph != "prefill" else 0,
                        (int(n) * int(c)) if ph != "prefill" else 0,
                    )
                    for ph, n, p, c in zip(r.phase, r.batch, r.prompt, r.ctx)
                ]
            )
            e = err(pred, r.time_s.to_numpy())
            res["tp2"][(g, m, tp)] = {ph: summary(e[(r.phase == ph).to_numpy()]) for ph in ("prefill", "decode")}
            # the same TP degree modelled from the shared collective table (APEX+ NCCL all-reduce) and
            # the roofline refitted on this GPU's TP1 profiles of the other models
            if g in APEX_COMM:
                lat, bw = apex_allreduce(data, APEX_COMM[g], tp)
                train = [
                    (cat.gpu(gg), cat.model(mm), vv["rows"]) for (gg, mm), vv in meas.items() if gg == g and mm != m
                ]
                x = fit(train)
                b2 = BoundRoofline(cat.gpu(g), cat.model(m), tp, x[0], x[1], x[2], lat, bw)
                pred2 = np.array(
                    [
                        b2.iteration_time_s(
                            [(int(p), 0)] if ph != "decode" else [],
                            int(n) if ph != "prefill" else 0,
                            (int(n) * int(c)) if ph != "prefill" else 0,
                        )
                        for ph, n, p, c in zip(r.phase, r.batch, r.prompt, r.ctx)
                    ]
                )
                e2 = err(pred2, r.time_s.to_numpy())
                res["tp2"][(g, m, tp)]["apex"] = {
                    ph: summary(e2[(r.phase == ph).to_numpy()]) for ph in ("prefill", "decode")
                }
                res["tp2"][(g, m, tp)]["apex_fit"] = (lat, bw / 1e9)
    res["old"] = old_rows(data, cat, shipped)
    res["capacity"] = capacity(cat)
    return res


APEX_COMM = {"H100-SXM": "H100-SXM-80GB", "H200": "H200-SXM-141GB"}


def apex_allreduce(data: Path, folder: str, tp: int) -> Tuple[float, float]:
    """NCCL all-reduce t = lat + bytes / bw fitted (least squares, sizes <= 64 MiB) on the APEX+ table
    ../shared/data/profiles/apex_plus/comm/<folder>/all_reduce.csv for ``tp`` GPUs. Returns (lat s, bw B/s)."""
    d = pd.read_csv(data / "profiles/apex_plus/comm" / folder / "all_reduce.csv")
    d = d[(d.num_nodes == 1) & (d.num_gpus_per_node == tp) & (d["size(kb)"] <= 65536)]
    slope, icpt = np.polyfit(d["size(kb)"].to_numpy() * 1024.0, d["time(us)"].to_numpy() * 1e-6, 1)
    return float(max(icpt, 0.0)), float(1.0 / slope)


def _num(s: Any) -> Optional[float]:
    m = re.match(r"^\s*([0-9.]+)", str(s))
    return float(m.group(1)) if m else None


#: GPU / model names of old_gpu_measurements.csv -> catalogue names (with the assumption made)
GPU_MAP = {
    "V100 (variant not stated)": ("V100-32GB", "V100 variant not stated: V100-32GB (same bandwidth/FLOPs as 16GB)"),
    "A100 (variant not stated": ("A100-40GB", "A100 variant not stated: A100-40GB (the later leaderboard's card)"),
    "A100-80GB-PCIe": ("A100-80GB", "PCIe card modelled as the SXM A100-80GB (1935 vs 2039 GB/s)"),
    "A100-80GB (DGX-A100)": ("A100-80GB", ""),
    "H100-80GB (DGX-H100)": ("H100-SXM", ""),
    "H100 (form factor not stated)": ("H100-SXM", "form factor not stated: H100-SXM"),
    "A100-80GB SXM / PCIe": ("A100-80GB", "SXM number"),
    "Tesla T4": ("T4", ""),
}
MODEL_MAP = {
    "LLaMA-7B": ("Llama-2-7B", "LLaMA-1 7B has the Llama-2-7B shape"),
    "Vicuna-7B": ("Llama-2-7B", "Vicuna-7B is a LLaMA-7B fine-tune (same shape)"),
    "LLaMA-13B": ("Llama-2-13B", "LLaMA-1 13B has the Llama-2-13B shape"),
    "Vicuna-13B": ("Llama-2-13B", "Vicuna-13B is a LLaMA-13B fine-tune (same shape)"),
    "LLaMA-7B (codellama-7b)": ("Llama-2-7B", "CodeLlama-7B: Llama-2-7B shape (vocab 32016)"),
}
IN_CALIBRATION = {18, 19, 20, 21, 24, 25}  # splitwise rows and the Llama-3.1-8B TP1 anchors (calibrate.py)


def _map(table, name: str):
    for k, v in table.items():
        if name.startswith(k):
            return v
    return name, ""


def old_rows(data: Path, cat: Catalog, shipped: RooflineModel) -> List[Dict[str, Any]]:
    """Shipped roofline vs every published row of old_gpu_measurements.csv (line = CSV line)."""
    d = pd.read_csv(data / OLD, dtype=str).fillna("")
    out = []
    for i, r in enumerate(d.itertuples(), start=2):
        (gname, gnote), (mname, mnote) = _map(GPU_MAP, r.gpu), _map(MODEL_MAP, r.model)
        base = {
            "line": i,
            "gpu": r.gpu,
            "model": r.model,
            "engine": r.engine,
            "note": "; ".join(x for x in (gnote, mnote) if x),
        }
        if i in IN_CALIBRATION:
            base["note"] = "; ".join(
                x for x in (base["note"], "used to fit profiles/roofline.yaml: not independent") if x
            )
        try:
            gpu, model = cat.gpu(gname), cat.model(mname)
        except Exception:  # noqa: BLE001  (not in the catalogue: listed, not compared)
            out.append(dict(base, note="GPU or model not in the catalogue (or an operator-level row): not compared"))
            continue
        tp, bs, il, ol = (_num(x) for x in (r.tp, r.batch, r.input_len, r.output_len))
        tp = int(tp or 1)
        bs = int(bs) if bs and re.match(r"^\d+\??$", r.batch.strip()) else 1  # "pp512" rows: one prompt
        try:
            b = shipped.bind(gpu, model, tp)
        except Exception as exc:  # noqa: BLE001
            out.append(dict(base, note=f"cannot model: {exc}"))
            continue
        n0 = len(out)
        if _num(r.tpot_ms) is not None:
            ctx, k = int(il or 512), int(ol or 128)
            pred = b.decode_run_time_s(bs, bs * ctx, k) / k * 1e3
            extra = "" if il else "input length not stated: context 512 assumed"
            out.append(
                dict(
                    base,
                    metric="tpot_ms",
                    measured=_num(r.tpot_ms),
                    pred=round(pred, 2),
                    err_pct=round(100 * (pred / _num(r.tpot_ms) - 1), 1),
                    note="; ".join(x for x in (base["note"], extra) if x),
                )
            )
        ttft = _num(r.ttft_ms)
        if ttft is None and il and "prefill tok/s" in r.throughput_tok_s and _num(r.throughput_tok_s):
            ttft = il / _num(r.throughput_tok_s) * 1e3  # llama-bench pp512: prompt / prefill rate
        if ttft is not None and il:
            pred = b.iteration_time_s([(int(il), 0)] * bs, 0, 0) * 1e3
            out.append(
                dict(
                    base,
                    metric="ttft_ms",
                    measured=round(ttft, 2),
                    pred=round(pred, 2),
                    err_pct=round(100 * (pred / ttft - 1), 1),
                )
            )
        if len(out) == n0:
            out.append(
                dict(
                    base,
                    note="no TTFT/TPOT that this model predicts (throughput under load, quantised, "
                    "or op-level): not compared",
                )
            )
    return out


def capacity(cat: Catalog, reserve: float = 0.1, block: int = 16) -> List[Dict[str, Any]]:
    """Max tokens in the KV cache (batch x context) per GPU and model at TP1."""
    out = []
    for g in sorted(cat.gpus):
        for m in sorted(cat.models):
            gpu, model = cat.gpu(g), cat.model(m)
            try:
                blocks = kv_capacity_blocks(
                    gpu.memory_bytes, 1, model.weight_bytes, model.kv_bytes_per_token, block, reserve
                )
                tokens = blocks * block
            except ConfigError:
                tokens = 0
            out.append({"gpu": g, "model": m, "weights_gib": model.weight_bytes / 2**30, "kv_tokens": tokens})
    return out


def _f(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


BIG = {m for m, spec in load_catalog().models.items() if spec.n_params >= 6e9}


def render(res: Dict[str, Any]) -> str:
    L = [
        "# Validation of the latency and power models",
        "",
        f"Generated by `{COMMAND}` (greensim/tools/validation.py); do not edit by hand.",
        "",
        "Measured profiles: profiles/measured/ (see PROVENANCE.md there). Errors are model/measured - 1, in %; "
        "'median' and 'worst' are of the absolute error over a profile's grid rows. Prefill = one prompt of 32-8192 "
        "tokens (the TTFT of an idle server); decode = one decode step, batch 1-256 x context 128-8192; mixed = one "
        "prefill chunk + a decode batch in one iteration.",
        "",
        "Roofline variants: **shipped** = profiles/roofline.yaml (fitted on Vidur/splitwise data, none of ours); "
        "**LOMO** = eta_compute, eta_memory, iteration_overhead_s refitted on the other models of the same GPU; "
        "**LOGO** = refitted on the other GPU's profiles, evaluated with this GPU's peak FLOP/s and bandwidth.",
        "",
        f"Target (issue 4): median <= {TARGET_MEDIAN:.0f}% and worst <= {TARGET_WORST:.0f}% for decode-step and prefill.",
        "",
    ]
    prof = res["profiles"]

    def pooled(var, ph, big=False):
        v = [o[var][ph]["median"] for (g, m), o in prof.items() if var in o and ph in o[var] and (m in BIG or not big)]
        w = [o[var][ph]["worst"] for (g, m), o in prof.items() if var in o and ph in o[var] and (m in BIG or not big)]
        return float(np.median(v)), float(max(w))

    L += ["## Summary against the target", ""]
    for var, what in (("lomo", "leave-one-model-out"), ("logo", "leave-one-GPU-out")):
        for ph in ("prefill", "decode"):
            for big in (False, True):
                med, worst = pooled(var, ph, big)
                ok = "meets" if med <= TARGET_MEDIAN and worst <= TARGET_WORST else "MISSES"
                L.append(
                    f"* {what}, {ph}, {'models >= 6B' if big else 'all models'}: median {_f(med)}%, "
                    f"worst {_f(worst)}% -> {ok} the target."
                )
    L += [
        "",
        "Why the targets are missed where they are (our reading of the tables below):",
        "",
        "* **Prefill**: the profiler runs prefill eagerly from Python, so short prompts (32-256 tokens) pay a "
        "launch floor of a few ms that grows with the number of layers and kernels, not with FLOPs: the refitted "
        "roofline is 20-35% fast there, and, since one eta_compute and one fixed overhead must also fit those "
        "rows, 10-35% slow on long (compute-bound) prompts (e.g. H100-SXM/Llama-3.1-8B LOMO: -34% at 32 tokens, "
        "+17% at 8192). A per-layer launch term would fix most of it; vLLM's prefill has a different (smaller, "
        "CUDA-graph-free but fused) launch floor, so we did not fit one to this profiler's artefact.",
        "* **Decode**: for models >= 6B the refitted roofline meets the median target; its worst errors (20-31%) "
        "are long contexts at batch 1-2 (attention's KV reads at another efficiency than weight streaming) and "
        "batch 256 at short context. For OPT-125M and Qwen2.5-0.5B a decode step is hundreds of small kernels "
        "(launch-bound even under CUDA graphs): the bandwidth roofline misses them by 100-300%.",
        "* **TP2**: the shipped all-reduce terms are engine-effective (fitted on splitwise-sim, absorbing that "
        "engine's per-layer costs), so they are ~2x slower than our CUDA-graph TP2 decode on H200; the roofline "
        "with NCCL all-reduce from the APEX+ collective table does much better on decode (see the TP section) "
        "but still misses the target, and TP2 prefill rows carry the profiler's eager-mode floor.",
        "* **Mixed iterations** are not part of the fits; the roofline and the profiled model (which combines "
        "the prefill and decode grids through the roofline's ratio) both miss them by ~15-30% median.",
        "* **Power**: a constant fraction of TDP per phase misses small models badly (they draw far less than "
        "the big-model median); board power also depends on batch and context, which the engine's single "
        "decode power per instance ignores.",
        "* **Published rows**: the ML.ENERGY 2023 A100 rows are 2-4x above the bandwidth floor (an overhead-bound "
        "2023 HF stack, research/profiles.md section 4.2), so the roofline is 30-57% fast there; the V100 rows "
        "agree within 16% only because the same overhead dominates both.",
        "",
    ]
    for var in ("shipped", "lomo", "logo"):
        L += [
            f"## Roofline ({var}) vs measured",
            "",
            "| GPU | model | prefill median / worst | decode median / worst | mixed median / worst | power median / worst |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        allp = {ph: [] for ph in (*PH, "power")}
        for (g, m), o in prof.items():
            if var not in o:
                continue
            cells = []
            for ph in (*PH, "power"):
                s = o[var].get(ph)
                cells.append(f"{_f(s['median'])} / {_f(s['worst'])}" if s else "n/a")
                if s:
                    allp[ph].append((s["median"], s["worst"]))
            L.append(f"| {g} | {m} | " + " | ".join(cells) + " |")
        L.append(
            "| **all** | median of medians / worst | "
            + " | ".join(
                f"**{_f(float(np.median([a for a, _ in v])))} / {_f(max(b for _, b in v))}**" if v else "n/a"
                for v in allp.values()
            )
            + " |"
        )
        big = {
            ph: [
                (o[var][ph]["median"], o[var][ph]["worst"])
                for (g, m), o in prof.items()
                if var in o and ph in o[var] and m in BIG
            ]
            for ph in (*PH, "power")
        }
        L.append(
            "| **models >= 6B** | median of medians / worst | "
            + " | ".join(
                f"**{_f(float(np.median([a for a, _ in v])))} / {_f(max(b for _, b in v))}**" if v else "n/a"
                for v in big.values()
            )
            + " |"
        )
        L.append("")
    L += [
        "LOMO refit (eta_compute, eta_memory, iteration_overhead_s) per profile: "
        + "; ".join(f"{g}/{m} {o['x_lomo']}" for (g, m), o in prof.items()),
        "",
        "## The `profiled` model on mixed iterations (held out: it interpolates the prefill and decode grids)",
        "",
        "| GPU | model | time median / worst | power median / worst |",
        "| --- | --- | --- | --- |",
    ]
    for (g, m), o in prof.items():
        s = o.get("profiled_mixed")
        if s:
            L.append(
                f"| {g} | {m} | {_f(s['time']['median'])} / {_f(s['time']['worst'])} | "
                f"{_f(s['power']['median'])} / {_f(s['power']['worst'])} |"
            )
    L += [
        "",
        "On grid points the profiled model reproduces the measurement exactly (tests/unit/test_profiles.py).",
        "",
        "## Shipped roofline vs published measurements (../shared/data/profiles/old_gpu_measurements.csv)",
        "",
        "| line | GPU | model | engine | metric | measured | model | error % | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in res["old"]:
        L.append(
            f"| {r['line']} | {r['gpu']} | {r['model']} | {r['engine']} | {r.get('metric', '')} | "
            f"{r.get('measured', '')} | {r.get('pred', '')} | {r.get('err_pct', '')} | {r.get('note', '')} |"
        )
    L += [
        "",
        "## Tensor parallelism: roofline vs measured TP>1 profiles",
        "",
        "**shipped** = profiles/roofline.yaml (engine-effective all-reduce fitted on splitwise-sim); **collective "
        "table** = eta/overhead refitted on this GPU's TP1 profiles of the other models plus NCCL all-reduce "
        "t = lat + bytes/bw fitted on ../shared/data/profiles/apex_plus/comm/<GPU>/all_reduce.csv (same TP, "
        "sizes <= 64 MiB), 2 all-reduces per layer: the model for TP degrees we could not measure.",
        "",
        "| GPU | model | TP | variant | prefill median / worst | decode median / worst |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for (g, m, tp), o in res["tp2"].items():
        L.append(
            f"| {g} | {m} | {tp} | shipped | {_f(o['prefill']['median'])} / {_f(o['prefill']['worst'])} | "
            f"{_f(o['decode']['median'])} / {_f(o['decode']['worst'])} |"
        )
        if "apex" in o:
            a, (lat, bw) = o["apex"], o["apex_fit"]
            L.append(
                f"| {g} | {m} | {tp} | collective table (lat {lat * 1e6:.1f} us, {bw:.0f} GB/s) | "
                f"{_f(a['prefill']['median'])} / {_f(a['prefill']['worst'])} | "
                f"{_f(a['decode']['median'])} / {_f(a['decode']['worst'])} |"
            )
    L += [
        "",
        "TP2 prefill rows carry an eager-mode floor of ~35 ms (profiles/measured/PROVENANCE.md): their error says "
        "more about the profiler than the roofline. Higher TP degrees are not measured; the roofline's all-reduce "
        "terms (fitted on splitwise-sim TP2-8 data) model them.",
        "",
    ]
    L += [
        "",
        "## KV-cache capacity at TP1 (memory feasibility)",
        "",
        "Tokens of KV cache left after the weights with a 10% memory reserve and 16-token blocks "
        "(greensim.core.memory.kv_capacity_blocks): the maximum of batch x context. 0 = the model does not fit "
        "(the simulator raises a ConfigError naming the instance).",
        "",
        "| model \\ GPU | " + " | ".join(sorted({c["gpu"] for c in res["capacity"]})) + " |",
        "| --- |" + " --- |" * len({c["gpu"] for c in res["capacity"]}),
    ]
    models = sorted({c["model"] for c in res["capacity"]})
    for m in models:
        cells = [c for c in res["capacity"] if c["model"] == m]
        L.append(
            f"| {m} ({cells[0]['weights_gib']:.1f} GiB) | "
            + " | ".join((f"{c['kv_tokens']:,}" if c["kv_tokens"] else "**no fit**") for c in cells)
            + " |"
        )
    return "\n".join(L) + "\n"


def uncertainty(res: Dict[str, Any], params: Dict[str, Any]) -> Dict[str, Any]:
    """Band half-widths (fractions) with sources."""
    prof = res["profiles"]
    src = f"generated by `{COMMAND}`; see profiles/VALIDATION.md"
    out: Dict[str, Any] = {"measured": {}, "roofline": {"gpus": {}, "architectures": {}}}
    for g in sorted({g for g, _ in prof}):
        mt = [o["profiled_mixed"]["time"]["median"] for (gg, _), o in prof.items() if gg == g and "profiled_mixed" in o]
        mp = [
            o["profiled_mixed"]["power"]["median"] for (gg, _), o in prof.items() if gg == g and "profiled_mixed" in o
        ]
        out["measured"][g] = {
            "latency_frac": round(float(np.median(mt)) / 100, 3),
            "power_frac": round(float(np.median(mp)) / 100, 3),
            "source": "median over models of the profiled model's median abs error on the held-out "
            "mixed iterations (time, power); " + src,
        }
    pool = lambda var, ph: [o[var][ph]["median"] for o in prof.values() if var in o and ph in o[var]]  # noqa: E731
    hop_t = max(np.median(pool("logo", "prefill")), np.median(pool("logo", "decode"))) / 100
    hop_p = np.median(pool("shipped", "power")) / 100
    psrc = (
        "no measured power for this GPU: median abs error of the splitwise-sim constant power fractions against "
        "our H100/H200 measurements (a lower bound); " + src
    )
    out["roofline"]["architectures"]["Hopper"] = {
        "latency_frac": round(float(hop_t), 3),
        "power_frac": round(float(hop_p), 3),
        "source": "larger of the pooled median abs errors (prefill, decode) of the leave-one-GPU-out roofline on the "
        "measured H100/H200 profiles; power: " + psrc,
    }
    sw = params["validation"]["splitwise"]["A100-80GB"]["all_tp"]
    amp = max(sw["prompt"]["median_abs_pct"], sw["token"]["median_abs_pct"]) / 100
    xc = params["validation"]["cross_check_h100_from_a100"]["errors"]["all_tp"]
    cross = max(xc["prompt"]["median_abs_pct"], xc["token"]["median_abs_pct"]) / 100
    out["roofline"]["architectures"]["Ampere"] = {
        "latency_frac": round(amp, 3),
        "power_frac": round(float(hop_p), 3),
        "source": "larger of the median abs errors (prompt, token) of the shipped roofline on splitwise-sim A100 rows "
        "(profiles/roofline.yaml validation.splitwise.A100-80GB.all_tp); power: " + psrc,
    }
    for a, why in (("Volta", "V100"), ("Turing", "T4"), ("Ada", "L4/L40S")):
        out["roofline"]["architectures"][a] = {
            "latency_frac": round(cross, 3),
            "power_frac": round(float(hop_p), 3),
            "source": f"no {why} serving data: the cross-generation error (H100 predicted from A100-only factors, larger "
            "of the prompt/token median abs errors, profiles/roofline.yaml validation."
            "cross_check_h100_from_a100), as research/profiles.md section 5 step 4 suggests for transferred "
            "factors; power: " + psrc,
        }
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="the shared data folder")
    ap.add_argument("--out", default="profiles", help="folder for VALIDATION.md and uncertainty.yaml")
    a = ap.parse_args(argv)
    from greensim.hardware.kernel import KernelModel
    from greensim.tools import kernel_validation as kv

    kres = kv.validate_kernel(Path(a.data))
    kres["published"] = {e: old_rows(Path(a.data), load_catalog(), KernelModel(engine=e)) for e in ("none", "vllm-0.5")}
    res = validate(Path(a.data))
    out = Path(a.out)
    old = render(res).replace("# Validation of the latency and power models", "# Appendix: the roofline model", 1)
    old = old.replace("\n## ", "\n### ").replace("# Appendix", "## Appendix", 1)
    (out / "VALIDATION.md").write_text(kv.render_kernel(kres, COMMAND) + "\n" + old)
    unc = uncertainty(res, load_roofline_params())
    unc["kernel"] = kv.kernel_uncertainty(kres, COMMAND)
    (out / "uncertainty.yaml").write_text(
        f"# Uncertainty bands (half-widths as fractions). Generated by `{COMMAND}`; do not edit.\n"
        + yaml.safe_dump(unc, sort_keys=False, width=120)
    )
    print(f"wrote {out / 'VALIDATION.md'} and {out / 'uncertainty.yaml'}")


if __name__ == "__main__":
    main()
