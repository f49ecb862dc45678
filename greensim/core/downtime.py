"""Failure bookkeeping shared by every engine instance and draft GPU."""

from __future__ import annotations

from typing import List

__all__ = ["DownTime"]


class DownTime:
    """``available``, ``n_failures`` and the ``[down, up]`` intervals of a GPU that can fail."""

    def __init__(self) -> None:
        self.available = True  # False while failed (routers never see it then)
        self.n_failures = 0
        self.down_intervals: List[List[float]] = []  # [down, up] per failure [s]

    def mark_down(self, now: float) -> None:
        self.available = False
        self.n_failures += 1
        self.down_intervals.append([now, float("inf")])

    def mark_up(self, now: float) -> None:
        self.available = True
        self.down_intervals[-1][1] = now

    def down_s(self, horizon_s: float) -> float:
        """Time spent failed within [0, horizon] [s]."""
        return sum(max(0.0, min(b, horizon_s) - a) for a, b in self.down_intervals)
