"""Request routers: which instance serves an arriving request."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from greensim.core.interfaces import InstanceView
from greensim.policies.registry import ROUTERS

__all__ = ["RoundRobin", "JoinShortestQueue", "LeastKVUse", "PowerOfTwoChoices"]


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


@ROUTERS.register("least_kv")
class LeastKVUse:
    """Instance with the largest free fraction of its KV cache; ties go to the fewer
    requests (waiting + running), then the lowest index. Suits mixed GPU types, whose
    KV capacities differ."""

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        best, best_key = 0, None
        for i, inst in enumerate(instances):
            key = (-inst.free_kv_blocks / inst.total_kv_blocks, inst.n_waiting + inst.n_running)
            if best_key is None or key < best_key:
                best, best_key = i, key
        return best


@ROUTERS.register("power_of_two")
class PowerOfTwoChoices:
    """Sample two distinct instances uniformly, send to the one with fewer requests
    (waiting + running); a tie goes to the first drawn. Mitzenmacher, "The power of two
    choices in randomized load balancing", IEEE TPDS 12(10), 2001."""

    def __init__(self, rng: Optional[np.random.Generator] = None) -> None:
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        n = len(instances)
        if n == 1:
            return 0
        a = int(self.rng.integers(n))
        b = int(self.rng.integers(n - 1))
        b += b >= a  # a second, distinct instance
        la = instances[a].n_waiting + instances[a].n_running
        lb = instances[b].n_waiting + instances[b].n_running
        return a if la <= lb else b
