"""Prefill/decode disaggregation (DPD): hand-off of prefilled requests to decode instances.

A prefill instance finishes a request's prompt (producing its first token) and calls
:meth:`KVHandoff.on_prefilled`. The request then waits, keeping its KV blocks on the
prefill instance, until a decode instance can reserve blocks for its KV (backpressure:
held blocks slow admission on the prefill instance). A decode-routing policy picks
among the decode instances that can accept it now (FIFO: the oldest waiting request is
placed first). Once reserved, its KV travels over a :class:`~greensim.core.link.Link`;
on arrival the prefill instance frees its blocks and the request joins the decode
instance's batch at its next iteration boundary, without a prefill.

KV bytes sent per request = ``kv_bytes_per_token * n_input_tokens`` with
``kv_bytes_per_token = 2 x layers x KV heads x head_dim x bytes per element``
(:attr:`greensim.catalog.ModelSpec.kv_bytes_per_token`).

Transfer energy is not added: the GPUs' power during the transfer is already counted
(the prefill GPU draws idle or busy power for the whole experiment), and the NIC/switch
energy per byte depends on hardware we have no vetted figure for.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Deque, Dict, List, Protocol, Sequence, Tuple

import numpy as np

from ..errors import SimulationInvariantError
from .interfaces import InstanceView
from .link import Link
from .requests import Request

if TYPE_CHECKING:  # pragma: no cover
    from .instance import Instance
    from .simulation import Simulation

__all__ = ["DecodeRouter", "DisaggregationSpec", "KVHandoff", "LINK_SCOPES"]

#: Which transfers share a link: one link for all, one per prefill instance (its NIC),
#: one per decode instance, or one per (prefill, decode) pair.
LINK_SCOPES = ("shared", "per_prefill", "per_decode", "per_pair")


class DecodeRouter(Protocol):
    """Chooses the decode instance for a prefilled request."""

    def choose(self, request_id: int, n_kv_tokens: int, candidates: Sequence[InstanceView]) -> int:
        """Return an index into ``candidates`` (decode instances that can take it now)."""
        ...


@dataclass(frozen=True)
class DisaggregationSpec:
    """What the core needs to run DPD.

    Parameters
    ----------
    roles : per instance, ``"colocated"``, ``"prefill"`` or ``"decode"``.
    decode_router : a :class:`DecodeRouter`.
    bandwidth_bps : effective link bandwidth [bytes/s] (``inf`` allowed).
    latency_s : per-transfer link latency [s].
    link_scope : one of :data:`LINK_SCOPES`.
    kv_bytes_per_token : KV-cache bytes per token of the model [bytes/token].
    """

    roles: Tuple[str, ...]
    decode_router: DecodeRouter
    bandwidth_bps: float
    latency_s: float
    link_scope: str
    kv_bytes_per_token: float


class KVHandoff:
    """Moves prefilled requests from prefill to decode instances (see module docstring)."""

    def __init__(self, sim: "Simulation", spec: DisaggregationSpec):
        self.sim, self.spec = sim, spec
        insts = sim.instances
        self.decode: List["Instance"] = [insts[i] for i, r in enumerate(spec.roles) if r == "decode"]
        for i, role in enumerate(spec.roles):
            if role == "prefill":
                insts[i].handoff = self
        self.router = spec.decode_router
        self.pending: Deque[Tuple[Request, "Instance", int, float]] = deque()
        self._links: Dict[Tuple[int, int], Link] = {}
        n = len(sim.table)
        rec = sim.record
        self.decode_instance = np.full(n, -1, dtype=np.int64)
        self.decode_busy_s = np.zeros(n)
        self.decode_energy_j = np.zeros(n)
        self.transfer_bytes = np.zeros(n)
        self.transfer_s = np.full(n, np.nan)
        self.decode_wait_s = np.full(n, np.nan)
        rec.parts.append((self.decode_instance, self.decode_busy_s, self.decode_energy_j))
        rec.extra.update({"decode_instance": self.decode_instance, "kv_transfer_bytes": self.transfer_bytes,
                          "kv_transfer_s": self.transfer_s, "decode_wait_s": self.decode_wait_s})
        self._max_need = min(d.total_kv_blocks - d.cfg.watermark_blocks for d in self.decode)

    @property
    def links(self) -> List[Link]:
        return [self._links[k] for k in sorted(self._links)]

    def _link(self, src: int, dst: int) -> Link:
        scope = self.spec.link_scope
        key = {"shared": (-1, -1), "per_prefill": (src, -1), "per_decode": (-1, dst)}.get(scope, (src, dst))
        link = self._links.get(key)
        if link is None:
            link = Link(self.sim.env, self.spec.bandwidth_bps, self.spec.latency_s, f"link{key}")
            self._links[key] = link
        return link

    def reject_reason(self, n_in: int, n_out: int) -> str:
        """Why a request can never be decoded on every decode instance ('' if it can)."""
        d = self.decode[0]
        need = d._blocks(n_in + n_out - 1)
        if need > self._max_need:
            return (f"needs {need} KV blocks to decode; the smallest decode instance holds "
                    f"{self._max_need} above the watermark")
        big = n_in + n_out - 1
        for dec in self.decode:
            if not dec.cfg.chunked_prefill and big > dec.cfg.max_batched_tokens:
                return (f"prompt+output {big} tokens exceed decode instance {dec.cfg.name}'s "
                        f"max_batched_tokens {dec.cfg.max_batched_tokens} (a preempted request is "
                        f"recomputed there); enable chunked_prefill or raise max_batched_tokens")
        return ""

    # ------------------------------------------------------------------ events
    def on_prefilled(self, src: "Instance", r: Request) -> None:
        """``r`` finished its prefill on ``src`` and keeps ``r.blocks`` there until sent."""
        rec = self.sim.record
        rec.busy_s[r.id] = r.busy_s
        rec.energy_j[r.id] = r.energy_j
        r.busy_s = 0.0
        r.energy_j = 0.0
        self.pending.append((r, src, r.blocks, self.sim.env.now))
        if len(self.pending) == 1:
            self.dispatch()

    def dispatch(self) -> None:
        """Place waiting requests, oldest first, while a decode instance can take the head."""
        now = self.sim.env.now
        while self.pending:
            r, src, src_blocks, t_ready = self.pending[0]
            cands = [d for d in self.decode if d.can_accept(r.kv_len)]
            if not cands:
                return
            k = self.router.choose(r.id, r.kv_len, cands)
            if not (0 <= k < len(cands)):
                raise SimulationInvariantError(f"decode router returned {k}; valid 0..{len(cands) - 1}")
            self.pending.popleft()
            dst = cands[k]
            dst.reserve(r)
            self.decode_instance[r.id] = dst.index
            self.decode_wait_s[r.id] = now - t_ready
            nbytes = self.spec.kv_bytes_per_token * r.kv_len
            self.transfer_bytes[r.id] = nbytes
            link = self._link(src.index, dst.index)
            link.send(nbytes, self._arrival(r, src, src_blocks, dst, now))

    def _arrival(self, r: Request, src: "Instance", src_blocks: int, dst: "Instance", t0: float):
        def done() -> None:
            self.transfer_s[r.id] = self.sim.env.now - t0
            src.release_blocks(src_blocks)
            dst.accept(r)
        return done

    def on_complete(self, r: Request) -> bool:
        """Store the decode part of a finished request; True if it was handed off."""
        if self.decode_instance[r.id] < 0:
            return False
        self.decode_busy_s[r.id] = r.busy_s
        self.decode_energy_j[r.id] = r.energy_j
        if self.pending:
            self.dispatch()
        return True
