"""KV-link tables of a disaggregated (DPD) run: per link totals and utilisation over time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Sequence, Tuple

import numpy as np

from greensim.base.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = ["link_tables"]


def link_tables(links: Sequence[Any], horizon_s: float, bin_s: float) -> Tuple[pd.DataFrame, pd.DataFrame, Dict]:
    """(per-link table, link timeline, summary values) of the run's KV links.

    Per link: flows, bytes, busy time (>= 1 flow using the bandwidth) and utilisation (busy /
    horizon), mean rate while busy. The timeline gives each link's busy fraction per bin, the
    same bins as the instance timeline. Summary: ``link_utilization_frac`` (the busiest link's)
    and ``link_busy_s`` (summed over links).
    """
    nbins = max(1, int(np.ceil(horizon_s / bin_s)) if horizon_s > 0 else 1)
    edges = np.arange(nbins) * bin_s
    width = np.minimum(bin_s, np.maximum(horizon_s - edges, 0.0))
    rows, frames = [], []
    for k, ln in enumerate(links):
        iv = ln.busy_intervals(horizon_s)
        busy = np.zeros(nbins)
        for a, b in iv:  # spread each busy period over the bins it covers
            lo, hi = int(a // bin_s), min(nbins - 1, int(b // bin_s))
            for i in range(lo, hi + 1):
                busy[i] += max(0.0, min(b, edges[i] + bin_s) - max(a, edges[i]))
        busy_s = float(sum(b - a for a, b in iv))
        rows.append(
            {
                "link": k,
                "name": ln.name,
                "bandwidth_gbs": ln.bandwidth_bps / 1e9,
                "latency_s": ln.latency_s,
                "n_flows": int(ln.n_flows),
                "bytes_sent": float(ln.bytes_sent),
                "busy_s": busy_s,
                "utilization_frac": busy_s / horizon_s if horizon_s > 0 else 0.0,
                "mean_rate_gbs_while_busy": ln.bytes_sent / busy_s / 1e9 if busy_s > 0 else float("nan"),
            }
        )
        frames.append(
            pd.DataFrame(
                {
                    "t_s": edges,
                    "link": k,
                    "busy_frac": np.divide(busy, width, out=np.zeros(nbins), where=width > 0),
                }
            )
        )
    table = pd.DataFrame(rows)
    timeline = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["t_s", "link", "busy_frac"])
    summary = {
        "link_utilization_frac": float(table["utilization_frac"].max()) if len(table) else 0.0,
        "link_busy_s": float(table["busy_s"].sum()) if len(table) else 0.0,
    }
    return table, timeline, summary
