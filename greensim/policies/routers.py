"""Request routers: which instance serves an arriving request."""
from __future__ import annotations

from typing import Sequence

from ..core.interfaces import InstanceView
from . import ROUTERS

__all__ = ["RoundRobin", "JoinShortestQueue"]


@ROUTERS.register("round_robin")
class RoundRobin:
    """Cycle through instances in order."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        k = self._next % len(instances)
        self._next = k + 1
        return k


@ROUTERS.register("join_shortest_queue")
class JoinShortestQueue:
    """Instance with the fewest requests (waiting + running); ties go to the lowest index."""

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        best, best_load = 0, None
        for i, inst in enumerate(instances):
            load = inst.n_waiting + inst.n_running
            if best_load is None or load < best_load:
                best, best_load = i, load
        return best
