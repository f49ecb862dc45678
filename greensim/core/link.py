"""A network or bus link between GPUs: latency, then processor-shared bandwidth.

A flow of ``b`` bytes started at ``t0`` first waits the link's latency, then joins the
link's active flows. Active flows share the bandwidth equally (processor sharing): with
``n`` active flows each progresses at ``bandwidth / n``. Completion times are
recomputed whenever a flow joins or leaves, so one SimPy event is armed at a time (for
the earliest-finishing flow). A flow therefore never finishes before
``t0 + latency + b / bandwidth``.

Link types and their bandwidths live in :data:`LINK_TYPES` (line rates from the
standards, per direction; set ``efficiency_frac`` in the experiment for protocol
overhead). Latency has no shipped default: it depends on the NIC, switch and software
stack, so the experiment must state it.

Achievable copy rates are below the line rates, and differ by direction and copy
method, so ``efficiency_frac`` (or ``bandwidth_gbs``) should come from a measurement
of the setup being modelled. Reported examples: on an H100 cluster, NVIDIA's
nvbandwidth gave 35 GB/s host->device and 52.8 GB/s device->host with SM copies
(github.com/NVIDIA/nvbandwidth/issues/24), against 63.0 GB/s PCIe Gen5 x16 line rate;
the CUDA p2p bandwidth test on HGX H100 SXM gave about 380 GB/s per direction (749 GB/s
bidirectional) of NVLink 4's 450 (900) GB/s (github.com/NVIDIA/nccl/issues/1264). Measured
here on an H100 SXM (2026-12-06, 1 GiB copies, CUDA events, median of 5;
profiles/measured/H100-SXM/h2d_copy_2026-12-06.txt): pinned 55.4 GB/s host->device and 55.3
GB/s device->host (``efficiency_frac`` 0.88 of pcie_gen5_x16), pageable 17.6 / 15.2 GB/s.
"""

from __future__ import annotations

import math
from array import array
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["Link", "LINK_TYPES", "link_bandwidth_bps"]

#: Per-direction line rate of each link type [bytes/s], with its source.
LINK_TYPES: Dict[str, tuple[float, str]] = {
    "pcie_gen3_x16": (
        15.754e9,
        "PCI-SIG PCIe 3.0 base spec: 8 GT/s x 16 lanes, 128b/130b encoding = 15.75 GB/s per direction",
    ),
    "pcie_gen4_x16": (
        31.508e9,
        "PCI-SIG PCIe 4.0 base spec: 16 GT/s x 16 lanes, 128b/130b encoding = 31.5 GB/s per direction",
    ),
    "pcie_gen5_x16": (
        63.015e9,
        "PCI-SIG PCIe 5.0 base spec: 32 GT/s x 16 lanes, 128b/130b encoding = 63.0 GB/s per direction",
    ),
    "nvlink_v100": (150e9, "NVIDIA V100 datasheet: NVLink 2.0 300 GB/s total = 150 GB/s per direction"),
    "nvlink_a100": (300e9, "NVIDIA A100 datasheet: NVLink 3.0 600 GB/s total = 300 GB/s per direction"),
    "nvlink_h100": (
        450e9,
        "NVIDIA H100 SXM datasheet: NVLink 4.0 900 GB/s total (18 links) = 450 GB/s per direction; the H200 SXM "
        "datasheet gives the same 900 GB/s, so H200 uses this type (shared/data/profiles/gpu_specs.csv rows "
        "H100-SXM, H200-SXM)",
    ),
    "nvlink_b200": (
        900e9,
        "NVIDIA B200: NVLink 5 1.8 TB/s total per GPU = 900 GB/s per direction (gpu_specs.csv row B200, "
        "glennklockwood.com/garden/processors/B200 citing NVIDIA; MLPerf Inference v6.0 system "
        "nebius_b200_n1.json: '18x 5th Gen NVLink, 14.4 TB/s aggregated bandwidth' for 8 GPUs)",
    ),
    "ethernet_10g": (1.25e9, "IEEE 802.3 10GBASE: 10 Gb/s line rate = 1.25 GB/s"),
    "ethernet_25g": (3.125e9, "IEEE 802.3by 25GBASE: 25 Gb/s line rate = 3.125 GB/s"),
    "ethernet_100g": (12.5e9, "IEEE 802.3 100GBASE: 100 Gb/s line rate = 12.5 GB/s"),
    "infiniband_hdr": (25e9, "InfiniBand HDR (IBTA): 200 Gb/s per 4x port = 25 GB/s"),
    "infiniband_ndr": (50e9, "InfiniBand NDR (IBTA): 400 Gb/s per 4x port = 50 GB/s"),
    "infiniband_xdr": (
        100e9,
        "InfiniBand XDR: 800 Gb/s per port = 100 GB/s (NVIDIA ConnectX-8 SuperNIC firmware release notes "
        "v40.44.0208: 'supports 800Gb/s or XDR IB')",
    ),
}


class Link:
    """One directional link shared by its flows.

    Parameters
    ----------
    env : greensim.core.clock.Clock (a simpy.Environment with wake)
    bandwidth_bps : float
        Effective bandwidth [bytes/s]; ``inf`` makes the bandwidth phase instantaneous.
    latency_s : float
        Fixed delay before a flow starts to use the bandwidth [s].
    name : str
        Label for errors and tables.
    """

    __slots__ = (
        "env",
        "bandwidth_bps",
        "latency_s",
        "name",
        "_flows",
        "_t",
        "_event",
        "n_flows",
        "bytes_sent",
        "busy_s",
        "_busy_since",
        "intervals",
    )

    def __init__(self, env, bandwidth_bps: float, latency_s: float, name: str = "link"):
        if not bandwidth_bps > 0:
            raise ValueError(f"{name}: bandwidth must be > 0 bytes/s, got {bandwidth_bps}")
        if not (latency_s >= 0 and math.isfinite(latency_s)):
            raise ValueError(f"{name}: latency must be finite and >= 0 s, got {latency_s}")
        self.env, self.bandwidth_bps, self.latency_s, self.name = env, bandwidth_bps, latency_s, name
        self._flows: List[list] = []  # [remaining bytes, callback, seq, bytes]
        self._t = 0.0
        self._event = None
        self.n_flows = 0  # flows started
        self.bytes_sent = 0.0  # bytes delivered [bytes]
        self.busy_s = 0.0  # time with >= 1 active flow [s]
        self._busy_since = 0.0
        # closed busy periods [s]: starts and ends as packed doubles (16 bytes a period, not a tuple's ~70)
        self.intervals = (array("d"), array("d"))

    def send(self, n_bytes: float, done: Callable[[], None]) -> list:
        """Start a flow of ``n_bytes``; call ``done()`` when its last byte arrives.

        Returns the flow's handle, for :meth:`cancel`."""
        self.n_flows += 1
        f = [float(n_bytes), done, 0, float(n_bytes)]
        if self.latency_s > 0:
            self.env.wake(self.latency_s, lambda _e: self._join(f))
        else:
            self._join(f)
        return f

    def cancel(self, f: list) -> None:
        """Drop flow ``f`` (its endpoint failed): ``done`` is never called; the bytes it
        already moved stay counted in :attr:`busy_s` but not in :attr:`bytes_sent`."""
        f[1] = None
        if any(g is f for g in self._flows):
            self._advance()
            self._flows = [g for g in self._flows if g is not f]
            if not self._flows:
                self.busy_s += self.env.now - self._busy_since
                self.intervals[0].append(self._busy_since)
                self.intervals[1].append(self.env.now)
            self._arm()

    @property
    def n_active(self) -> int:
        return len(self._flows)

    def busy_intervals(self, until_s: float) -> List[Tuple[float, float]]:
        """Busy periods (>= 1 flow using the bandwidth) up to ``until_s``, an open one closed there [s]."""
        out = [(a, min(b, until_s)) for a, b in zip(*self.intervals) if a < until_s]
        if self._flows and self._busy_since < until_s:
            out.append((self._busy_since, until_s))
        return out

    def _join(self, f: list) -> None:
        if f[1] is None:
            return  # cancelled during its latency
        if math.isinf(self.bandwidth_bps):
            self.bytes_sent += f[3]
            f[1]()
            return
        self._advance()
        if not self._flows:
            self._busy_since = self.env.now
        f[2] = self.n_flows
        self._flows.append(f)
        self._arm()

    def _advance(self) -> None:
        now = self.env.now
        if self._flows and now > self._t:
            share = self.bandwidth_bps * (now - self._t) / len(self._flows)
            for f in self._flows:
                f[0] -= share
        self._t = now

    def _arm(self) -> None:
        if not self._flows:
            self._event = None
            return
        rem = min(f[0] for f in self._flows)
        self._event = self.env.wake(max(0.0, rem) * len(self._flows) / self.bandwidth_bps, self._on_event)

    def _on_event(self, ev) -> None:
        if ev is not self._event:
            return  # superseded by a later join
        self._advance()
        first = min(self._flows, key=lambda f: (f[0], f[2]))
        # The flow this event was armed for is done; others within rounding of zero too.
        finished = [f for f in self._flows if f is first or f[0] <= 1e-6]
        self._flows = [f for f in self._flows if not (f is first or f[0] <= 1e-6)]
        if not self._flows:
            self.busy_s += self.env.now - self._busy_since
            self.intervals[0].append(self._busy_since)
            self.intervals[1].append(self.env.now)
        self._arm()
        for f in sorted(finished, key=lambda f: f[2]):
            self.bytes_sent += f[3]
            f[1]()


def link_bandwidth_bps(kind: Optional[str], bandwidth_gbs: Optional[float], efficiency_frac: float) -> float:
    """Effective bandwidth [bytes/s] from a link type name or an explicit GB/s figure."""
    if bandwidth_gbs is not None:
        return bandwidth_gbs * 1e9 * efficiency_frac
    if kind is None:  # the config layer requires exactly one of the two
        raise ValueError("link_bandwidth_bps: give a link type (kind) or bandwidth_gbs")
    return LINK_TYPES[kind][0] * efficiency_frac
