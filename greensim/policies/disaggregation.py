"""Decode routers for prefill-decode disaggregation: which decode instance gets a request.

The engine offers only the decode instances that can reserve the request's KV now
(batch slot and blocks free); a router picks one of them by index. Ties go to the
lowest index, so runs are deterministic.
"""

from __future__ import annotations

from typing import Sequence

from greensim.core.interfaces import InstanceView
from greensim.policies.registry import DECODE_ROUTERS

__all__ = ["DecodeRoundRobin", "DecodeLeastLoaded", "DecodeKVCapacityAware"]


@DECODE_ROUTERS.register("round_robin")
class DecodeRoundRobin:
    """Cycle over decode instances by their index, skipping those that cannot take it now."""

    def __init__(self) -> None:
        self._last = -1

    def choose(self, request_id: int, n_kv_tokens: int, candidates: Sequence[InstanceView]) -> int:
        after = [i for i, c in enumerate(candidates) if c.index > self._last]
        k = after[0] if after else 0
        self._last = candidates[k].index
        return k


@DECODE_ROUTERS.register("least_loaded")
class DecodeLeastLoaded:
    """Fewest requests (waiting + running + reserved)."""

    def choose(self, request_id: int, n_kv_tokens: int, candidates: Sequence[InstanceView]) -> int:
        loads = [c.n_waiting + c.n_running for c in candidates]
        return loads.index(min(loads))


@DECODE_ROUTERS.register("kv_capacity_aware")
class DecodeKVCapacityAware:
    """Largest fraction of KV blocks free (spreads memory pressure across unequal GPUs)."""

    def choose(self, request_id: int, n_kv_tokens: int, candidates: Sequence[InstanceView]) -> int:
        free = [c.free_kv_blocks_after_iteration / c.total_kv_blocks for c in candidates]
        return free.index(max(free))
