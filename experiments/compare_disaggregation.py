"""Colocated-new vs DPD new->old vs DSD draft-old/target-new vs colocated speculation.

Runs the four experiment files beside this script over a sweep of arrival rates (same
workload seed, so every mode sees the same requests at a given rate), prints a
Markdown table and writes ``figures/disaggregation.png`` (SLO attainment and
gCO2e/request vs rate).

    python experiments/compare_disaggregation.py [--rates 1 2 4 6 8] [--n 1500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import greensim

HERE = Path(__file__).resolve().parent
MODES = [
    ("colocated A100", "colocated_a100.yaml"),
    ("spec colocated A100", "spec_colocated_a100.yaml"),
    ("DPD A100->2xV100", "dpd_a100_v100.yaml"),
    ("DSD V100 draft / A100 target", "dsd_v100_a100.yaml"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", type=float, nargs="+", default=[1, 2, 4, 6, 8])
    ap.add_argument("--n", type=int, default=1500)
    a = ap.parse_args()
    rows = []
    for label, f in MODES:
        for rate in a.rates:
            res = greensim.run(
                HERE / f, overrides={"workload.rate_rps": rate, "workload.n_requests": a.n}, write=False, progress=False
            )
            s = res.summary
            rows.append(
                (
                    label,
                    rate,
                    s["slo_attainment_frac"],
                    s["carbon_gco2_per_request"],
                    s["ttft_s_p50"],
                    s["tpot_s_p50"],
                    s["energy_kwh"],
                )
            )
    print("| mode | rate req/s | SLO attainment | gCO2e/request | TTFT p50 s | TPOT p50 ms | energy kWh |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for m, r, slo, c, ttft, tpot, e in rows:
        print(f"| {m} | {r:g} | {slo:.3f} | {c:.4f} | {ttft:.3f} | {1e3 * tpot:.1f} | {e:.3f} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for label, _ in MODES:
        pts = [r for r in rows if r[0] == label]
        ax[0].plot([p[1] for p in pts], [p[2] for p in pts], marker="o", label=label)
        ax[1].plot([p[1] for p in pts], [p[3] for p in pts], marker="o", label=label)
    ax[0].set(xlabel="arrival rate [req/s]", ylabel="SLO attainment [-]", ylim=(0, 1.05))
    ax[1].set(xlabel="arrival rate [req/s]", ylabel="carbon [gCO2e/request]")
    ax[0].legend(fontsize=8)
    fig.suptitle("Llama-3.1-8B: colocated vs DPD vs DSD (greensim)")
    fig.tight_layout()
    out = HERE / "figures" / "disaggregation.png"
    fig.savefig(out, dpi=110)
    print(f"plot: {out}")


if __name__ == "__main__":
    main()
