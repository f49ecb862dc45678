"""Carbon-aware routing across regions vs carbon-agnostic routers.

Runs ``regions_carbon_aware.yaml`` (three sites, one A100 each, in California, Ontario and
the US Mid-Atlantic) with carbon_aware, round_robin and join_shortest_queue over a few
seeds, prints a Markdown table (mean and standard deviation over seeds) and writes
``figures/regions.png``: grid intensity, operational carbon rate and share of requests per
site over time, one column per router (first seed).

    python experiments/compare_regions.py [--seeds 11 12 13] [--set workload.duration_s=3600]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import greensim

HERE = Path(__file__).resolve().parent
ROUTERS = ["carbon_aware", "round_robin", "join_shortest_queue"]


def run(router: str, seed: int, extra: dict):
    return greensim.run(
        HERE / "regions_carbon_aware.yaml",
        overrides={"cluster.router": router, "seed": seed, **extra},
        write=False,
        progress=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    ap.add_argument("--set", action="append", default=[], help="extra KEY=VALUE overrides")
    ap.add_argument("--out", default=str(HERE / "figures" / "regions.png"))
    a = ap.parse_args()
    import yaml

    extra = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in a.set)}
    rows, first = [], {}
    for router in ROUTERS:
        for seed in a.seeds:
            res = run(router, seed, extra)
            s = res.summary
            rows.append(
                {
                    "router": router,
                    "seed": seed,
                    "carbon_g": s["carbon_gco2"],
                    "op_g": s["operational_gco2"],
                    "g_per_req": s["carbon_gco2_per_request"],
                    "slo": s["slo_attainment_frac"],
                    "ttft_p99": s["ttft_s_p99"],
                    "tpot_p99": s["tpot_s_p99"],
                    **{f"share_{k}": v for k, v in s["request_share_by_site"].items()},
                }
            )
            first.setdefault(router, res)
    import pandas as pd

    df = pd.DataFrame(rows)
    sites = sorted(c[6:] for c in df.columns if c.startswith("share_"))
    print(f"seeds {a.seeds}; mean (sd) over seeds")
    print(
        "| router | total gCO2e | operational gCO2e | gCO2e/request | SLO attainment | TTFT p99 s | TPOT p99 ms | "
        + " | ".join(f"share {s}" for s in sites)
        + " |"
    )
    print("| --- " * (7 + len(sites)) + "|")
    for router in ROUTERS:
        g = df[df.router == router]

        def ms(c, f="{:.1f}", k=1.0):
            return f"{f.format(k * g[c].mean())} ({f.format(k * g[c].std(ddof=1)) if len(g) > 1 else '-'})"

        print(
            f"| {router} | {ms('carbon_g')} | {ms('op_g')} | {ms('g_per_req', '{:.5f}')} | {ms('slo', '{:.4f}')} | "
            f"{ms('ttft_p99', '{:.3f}')} | {ms('tpot_p99', '{:.1f}', 1e3)} | "
            + " | ".join(ms(f"share_{s}", "{:.3f}") for s in sites)
            + " |"
        )
    ca, rr = df[df.router == "carbon_aware"].set_index("seed"), df[df.router == "round_robin"].set_index("seed")
    ratio = ca["carbon_g"] / rr["carbon_g"]
    print(f"carbon_aware / round_robin total carbon per seed: {', '.join(f'{x:.4f}' for x in ratio)}")
    plot(first, sites, Path(a.out))
    print(f"plot: {a.out}")


def plot(results: dict, sites, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(results), figsize=(5 * len(results), 9), sharex=True, sharey="row")
    bin_s = 900.0
    for j, (router, res) in enumerate(results.items()):
        tl = res.timeline.merge(res.instances[["instance", "site"]], on="instance")
        tl["bin"] = (tl.t_s // bin_s) * bin_s
        tl = tl[tl.bin + bin_s <= res.summary["duration_s"] + 1e-9]  # whole bins only (not the drain)
        per = (
            tl.groupby(["bin", "site"])
            .agg(ci=("intensity_gco2_per_kwh", "mean"), g=("operational_gco2", "sum"))
            .reset_index()
        )
        req = res.requests[~res.requests.rejected]
        site_of = res.instances.set_index("instance")["site"]
        share = pd_crosstab((req.arrival_s // bin_s) * bin_s, req.instance.map(site_of))
        for s in sites:
            p = per[per.site == s]
            t = (p.bin + bin_s / 2) / 3600
            axes[0, j].plot(t, p.ci, marker=".", label=s)
            axes[1, j].plot(t, p.g * 3600 / bin_s, marker=".", label=s)
            y = share[s] if s in share else 0 * share.index
            axes[2, j].plot((share.index + bin_s / 2) / 3600, y, marker=".", label=s)
        axes[0, j].set_title(router)
        axes[2, j].set_xlabel("hours since 06:00 Pacific, 2023-07-12")
    axes[0, 0].set_ylabel("grid intensity [gCO2e/kWh]\n(actual)")
    axes[1, 0].set_ylabel("operational carbon [gCO2e/h]\n(15-min means, x PUE)")
    axes[2, 0].set_ylabel("share of requests (15-min bins)")
    axes[0, 0].legend()
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.suptitle("Llama-3.1-8B, one A100 per site: carbon-aware vs carbon-agnostic routing (greensim)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def pd_crosstab(index, cols):
    import pandas as pd

    return pd.crosstab(index.to_numpy(), cols.to_numpy(), normalize="index")


if __name__ == "__main__":
    main()
