"""Per-instance ledger of busy time and energy, binned on a fixed timeline."""

from __future__ import annotations

import math
from typing import List

__all__ = ["Ledger"]


class Ledger:
    """Busy seconds and busy energy of one instance, total and per time bin.

    Idle time and idle energy are derived at the end: the instance is provisioned for
    the whole horizon and draws idle power whenever it is not in an iteration.
    """

    __slots__ = ("bin_s", "max_bins", "busy_s", "busy_j", "bin_busy_s", "bin_busy_j", "bin_queue_max", "bin_batch_max")

    def __init__(self, bin_s: float, max_bins: int = 4096):
        if not (bin_s > 0 and math.isfinite(bin_s)):
            raise ValueError("bin_s must be positive")
        self.bin_s = bin_s
        self.max_bins = max_bins
        self.busy_s = 0.0
        self.busy_j = 0.0
        self.bin_busy_s: List[float] = []
        self.bin_busy_j: List[float] = []
        self.bin_queue_max: List[int] = []
        self.bin_batch_max: List[int] = []

    def coarsen(self) -> None:
        """Double the bin width, merging pairs of bins (sums for time/energy, max for samples)."""

        def pairs(x, f):
            if len(x) % 2:
                x = x + [0.0 if f is sum else -1]
            return [f((x[i], x[i + 1])) for i in range(0, len(x), 2)]

        self.bin_busy_s = pairs(self.bin_busy_s, sum)
        self.bin_busy_j = pairs(self.bin_busy_j, sum)
        self.bin_queue_max = pairs(self.bin_queue_max, max)
        self.bin_batch_max = pairs(self.bin_batch_max, max)
        self.bin_s *= 2

    def _grow(self, i: int) -> None:
        extra = i + 1 - len(self.bin_busy_s)
        if extra > 0:
            self.bin_busy_s.extend([0.0] * extra)
            self.bin_busy_j.extend([0.0] * extra)
            self.bin_queue_max.extend([-1] * extra)  # -1: no sample in the bin
            self.bin_batch_max.extend([-1] * extra)

    def busy(self, start_s: float, dt_s: float, energy_j: float) -> None:
        """Record an interval of work [start, start+dt) that used ``energy_j``."""
        self.busy_s += dt_s
        self.busy_j += energy_j
        end = start_s + dt_s
        while end >= self.max_bins * self.bin_s:
            self.coarsen()
        w = self.bin_s
        i0 = int(start_s / w)
        i1 = int(end / w)
        if i1 >= len(self.bin_busy_s):
            self._grow(i1)
        if i0 == i1 or dt_s <= 0:
            self.bin_busy_s[i0] += dt_s
            self.bin_busy_j[i0] += energy_j
            return
        p = energy_j / dt_s
        t = start_s
        for i in range(i0, i1 + 1):
            seg = min(end, (i + 1) * w) - t
            if seg > 0:
                self.bin_busy_s[i] += seg
                self.bin_busy_j[i] += seg * p
            t = (i + 1) * w

    def sample(self, now_s: float, n_waiting: int, n_running: int) -> None:
        """Record queue length and batch size seen at an iteration boundary (max per bin)."""
        while now_s >= self.max_bins * self.bin_s:
            self.coarsen()
        i = int(now_s / self.bin_s)
        if i >= len(self.bin_queue_max):
            self._grow(i)
        if n_waiting > self.bin_queue_max[i]:
            self.bin_queue_max[i] = n_waiting
        if n_running > self.bin_batch_max[i]:
            self.bin_batch_max[i] = n_running
