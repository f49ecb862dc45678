"""Per-instance ledger of busy time and energy, binned on a fixed timeline."""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple

__all__ = ["Ledger"]


class Ledger:
    """Busy seconds and busy energy of one instance, total and per time bin, and the queue
    length and running batch as step functions of time.

    Idle time and idle energy are derived at the end: the instance is provisioned for
    the whole horizon and draws idle power whenever it is not in an iteration.

    Queue and batch are states that hold from one :meth:`sample` to the next, so a bin inside
    one long iteration (or decode run) shows that iteration's batch: per bin, ``bin_queue_max``
    and ``bin_batch_max`` are the largest values held at any time in the bin, and
    ``bin_batch_area`` is the integral of the batch over the bin [request-seconds] (divided by the
    bin's width: the time-weighted mean batch). :meth:`series` extends them to the horizon.
    """

    __slots__ = (
        "bin_s",
        "max_bins",
        "busy_s",
        "busy_j",
        "bin_busy_s",
        "bin_busy_j",
        "bin_queue_max",
        "bin_batch_max",
        "bin_batch_area",
        "_t",
        "_i",
        "_q",
        "_b",
        "rec",
    )

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
        self.bin_batch_area: List[float] = []
        self._t = 0.0  # time of the last sample; the state (_q waiting, _b running) holds since
        self._i = 0  # bin of the last sample (bins up to it hold their maxima)
        self._q = 0
        self._b = 0
        # optional per-booking recorder (greensim.core.recorder): called as rec(start, dt, energy, phase)
        self.rec: Optional[Callable[[float, float, float, str], None]] = None

    def coarsen(self) -> None:
        """Double the bin width, merging pairs of bins (sums for time/energy/area, max for samples)."""

        def pairs(x, f):
            if len(x) % 2:
                x = x + [0.0 if f is sum else -1]
            return [f((x[i], x[i + 1])) for i in range(0, len(x), 2)]

        self.bin_busy_s = pairs(self.bin_busy_s, sum)
        self.bin_busy_j = pairs(self.bin_busy_j, sum)
        self.bin_queue_max = pairs(self.bin_queue_max, max)
        self.bin_batch_max = pairs(self.bin_batch_max, max)
        self.bin_batch_area = pairs(self.bin_batch_area, sum)
        self._i //= 2
        self.bin_s *= 2

    def _grow(self, i: int) -> None:
        extra = i + 1 - len(self.bin_busy_s)
        if extra > 0:
            self.bin_busy_s.extend([0.0] * extra)
            self.bin_busy_j.extend([0.0] * extra)
            self.bin_queue_max.extend([-1] * extra)  # -1: not yet reached by the state
            self.bin_batch_max.extend([-1] * extra)
            self.bin_batch_area.extend([0.0] * extra)

    def busy(self, start_s: float, dt_s: float, energy_j: float, phase: str = "") -> None:
        """Record an interval of work [start, start+dt) that used ``energy_j``; ``phase`` names the
        work for the optional recorder (:attr:`rec`, None: nothing recorded)."""
        if self.rec is not None:
            self.rec(start_s, dt_s, energy_j, phase)
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

    def _advance(self, now_s: float) -> int:
        """Carry the state held since the last sample up to ``now_s``: its batch integrated over
        the time, its queue and batch as the maxima of the bins entered meanwhile. Returns now's bin."""
        w = self.bin_s
        i = int(now_s / w)
        if i >= len(self.bin_busy_s):
            self._grow(i)
        t0, b = self._t, self._b
        if now_s > t0:
            if b:
                area = self.bin_batch_area
                j = int(t0 / w)
                if j == i:
                    area[i] += b * (now_s - t0)
                else:
                    area[j] += b * ((j + 1) * w - t0)
                    for k in range(j + 1, i):
                        area[k] += b * w
                    area[i] += b * (now_s - i * w)
            self._t = now_s
        q, qm, bm = self._q, self.bin_queue_max, self.bin_batch_max
        for k in range(self._i, i + 1):  # the state held on entering each bin (and through it)
            if q > qm[k]:
                qm[k] = q
            if b > bm[k]:
                bm[k] = b
        self._i = i
        return i

    def sample(self, now_s: float, n_waiting: int, n_running: Optional[int] = None) -> None:
        """The queue length and running batch change at ``now_s`` (an arrival, an iteration
        boundary); ``n_running`` None: the batch is unchanged (an arrival during an iteration)."""
        while now_s >= self.max_bins * self.bin_s:
            self.coarsen()
        i = self._advance(now_s)
        self._q = n_waiting
        if n_running is not None:
            self._b = n_running
        if n_waiting > self.bin_queue_max[i]:
            self.bin_queue_max[i] = n_waiting
        if self._b > self.bin_batch_max[i]:
            self.bin_batch_max[i] = self._b

    def series(self, nbins: int, horizon_s: float) -> Tuple[List[int], List[int], List[float]]:
        """``(queue_max, batch_max, batch_area)`` over ``nbins`` bins of the current width, the last
        state carried to ``horizon_s`` (the ledger itself is left as it is)."""
        c = Ledger(self.bin_s, self.max_bins)
        c.bin_busy_s, c.bin_busy_j = list(self.bin_busy_s), list(self.bin_busy_j)
        c.bin_queue_max, c.bin_batch_max = list(self.bin_queue_max), list(self.bin_batch_max)
        c.bin_batch_area = list(self.bin_batch_area)
        c._t, c._i, c._q, c._b = self._t, self._i, self._q, self._b
        c._advance(min(max(horizon_s, c._t), nbins * c.bin_s))
        c._grow(nbins - 1)
        return c.bin_queue_max[:nbins], c.bin_batch_max[:nbins], c.bin_batch_area[:nbins]
