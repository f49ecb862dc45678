"""DSD vs DPD with the old GPUs in another server, over 10/25/100 Gb Ethernet.

Runs ``dpd_low_bandwidth.yaml`` (KV caches cross the link) and ``dsd_low_bandwidth.yaml``
(draft tokens and probabilities cross it) beside this script, with the DSD draft variants
that move the draft/target step ratio ``c`` (speculation pays only if
``c < (E - 1) / gamma``): Llama-3.2-1B with its full 128k LM head, with a 32k head
(``speculative.draft_vocab_size``, FR-Spec), with top-16 probabilities; and, for a
Llama-2-7B target, SpecInfer's llama-68m draft (prompts clipped to 1024 tokens: the draft
has 2048 positions). Same workload seed everywhere; a colocated
A100 is the no-old-GPU baseline. Prints Markdown tables:

    python experiments/compare_low_bandwidth.py [--rates 4 8] [--n 1500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import greensim
from greensim.assembly.prepare import prepare
from greensim.experiment.load import load_experiment

HERE = Path(__file__).resolve().parent
LINKS = ["ethernet_10g", "ethernet_25g", "ethernet_100g"]
SP = "cluster.instances.0.speculative"
DSD_VARIANTS = [
    ("DSD 1B draft, 128k head", {}),
    ("DSD 1B draft, 32k head", {f"{SP}.draft_vocab_size": 32768}),
    ("DSD 1B draft, top-16", {f"{SP}.probabilities": "top_k", f"{SP}.top_k": 16}),
]
# llama-68m has 2048 positions (config.json max_position_embeddings), Llama-2 4096: prompts are
# clipped to 1024 tokens in the Llama-2 runs so every sequence (<= 1024 + 1000) fits the draft
LLAMA2 = {"model": "Llama-2-7B", "workload.input_tokens.max": 1024}
LLAMA2_DSD = {**LLAMA2, f"{SP}.draft_model": "llama-68m"}


def step_ratio(overrides: dict, batch: int, ctx: int = 1024) -> float:
    """c = draft decode step on the V100 / target decode step on the A100 (batch, context ctx)."""
    o = {k: v for k, v in overrides.items() if not k.startswith("workload.")}
    p = prepare(load_experiment(HERE / "dsd_low_bandwidth.yaml", o))
    t_target = p.instances[0][1].iteration_time_s((), batch, batch * ctx)
    return p.speculative()[0].draft_perf.iteration_time_s((), batch, batch * ctx) / t_target


def run(file: str, overrides: dict) -> dict:
    return greensim.run(HERE / file, overrides=overrides, write=False, progress=False).summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", type=float, nargs="+", default=[4, 8])
    ap.add_argument("--n", type=int, default=1500)
    a = ap.parse_args()

    print("| draft | c at batch 1 | c at batch 16 | (E - 1) / gamma, alpha 0.7, gamma 4 |")
    print("| --- | --- | --- | --- |")
    e = (1 - 0.7**5) / 0.3
    for label, o in [DSD_VARIANTS[0], DSD_VARIANTS[1], ("DSD llama-68m draft (Llama-2-7B target)", LLAMA2_DSD)]:
        print(f"| {label} | {step_ratio(o, 1):.3f} | {step_ratio(o, 16):.3f} | {(e - 1) / 4:.3f} |")
    print()
    print("| mode | link | rate req/s | SLO attainment | gCO2e/request | TTFT p50 s | TPOT p50 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for rate in a.rates:
        common = {"workload.rate_rps": rate, "workload.n_requests": a.n}
        rows = []
        for model_o, tag in [({}, "Llama-3.1-8B"), (LLAMA2, "Llama-2-7B")]:
            rows.append((f"colocated 1xA100 ({tag})", "-", run("colocated_a100.yaml", {**common, **model_o})))
            for link in LINKS:
                lk = {"cluster.disaggregation.link.kind": link}
                rows.append(
                    (f"DPD A100 -> 2xV100 ({tag})", link, run("dpd_low_bandwidth.yaml", {**common, **model_o, **lk}))
                )
                variants = DSD_VARIANTS if not model_o else [("DSD llama-68m draft", LLAMA2_DSD)]
                for label, o in variants:
                    dl = {f"{SP}.link.kind": link}
                    rows.append((f"{label} ({tag})", link, run("dsd_low_bandwidth.yaml", {**common, **o, **dl})))
        for label, link, s in rows:
            print(
                f"| {label} | {link} | {rate:g} | {s['slo_attainment_frac']:.3f} | "
                f"{s['carbon_gco2_per_request']:.4f} | {s['ttft_s_p50']:.3f} | {1e3 * s['tpot_s_p50']:.1f} |"
            )


if __name__ == "__main__":
    main()
