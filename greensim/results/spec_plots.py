"""speculative.png: per-instance speculative-decoding statistics of a run (acceptance, tokens per
verify step, and the draft / link / verify shares of the speculative iterations' time)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["spec_plot_data", "plot_speculative"]

#: (instances column, label) of the stacked time-share bar, bottom to top
SHARES = (
    ("spec_draft_time_share", "draft"),
    ("spec_link_time_share", "link (draft tokens)"),
    ("spec_verify_time_share", "verify"),
)


def spec_plot_data(instances: pd.DataFrame) -> pd.DataFrame:
    """The rows speculative.png draws: one per instance that ran speculative iterations (a DSD
    draft GPU's own row and plain instances have none), labelled ``name#instance``, with the
    instances table's acceptance, tokens per verify step and time shares. Empty if none."""
    cols = ["spec_acceptance", "spec_tokens_per_verify", "spec_verify_steps"] + [c for c, _ in SHARES]
    if not set(cols) <= set(instances.columns):
        return pd.DataFrame(columns=["label"] + cols)
    spec = instances[instances["spec_verify_steps"].fillna(0) > 0]
    out = spec[cols].reset_index(drop=True).astype(float)
    out.insert(0, "label", [f"{n}#{i}" for n, i in zip(spec["name"], spec["instance"])])
    return out


def plot_speculative(path: Path, instances: pd.DataFrame, title: str) -> bool:
    """Write ``path`` when the run has speculative instances; return whether it was written."""
    d = spec_plot_data(instances)
    if d.empty:
        return False
    x = np.arange(len(d))
    fig, axes = plt.subplots(1, 3, figsize=(max(12, 2.4 * len(d) + 8), 4))
    axes[0].bar(x, d["spec_acceptance"])
    axes[0].set_ylabel("acceptance\n(accepted / drafted draft tokens)")
    axes[0].set_ylim(0, 1)
    axes[1].bar(x, d["spec_tokens_per_verify"])
    axes[1].axhline(1.0, color="k", ls="--", lw=1, label="plain decoding")
    axes[1].set_ylabel("tokens per verify step")
    axes[1].legend(loc="lower right")
    bottom = np.zeros(len(d))
    for col, lab in SHARES:
        v = d[col].fillna(0.0).to_numpy()
        axes[2].bar(x, v, bottom=bottom, label=lab)
        bottom += v
    axes[2].set_ylabel("share of speculative iteration time")
    axes[2].set_ylim(0, 1.3)
    axes[2].set_yticks(np.linspace(0, 1, 6))
    axes[2].legend(loc="upper center", ncol=3, fontsize="small")
    for ax in axes:
        ax.set_xticks(x, d["label"], rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{title}: speculative decoding")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
