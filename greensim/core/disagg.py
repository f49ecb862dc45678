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
(:attr:`greensim.hardware.catalog.ModelSpec.kv_bytes_per_token`).

Transfer energy is not added: the GPUs' power during the transfer is already counted
(the prefill GPU draws idle or busy power for the whole experiment), and the NIC/switch
energy per byte depends on hardware we have no vetted figure for.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Deque, Dict, List, Protocol, Sequence, Tuple

import numpy as np

from greensim.base.errors import SimulationInvariantError
from greensim.core.interfaces import EngineHost, InstanceView
from greensim.core.link import Link
from greensim.core.requests import Request

if TYPE_CHECKING:  # pragma: no cover
    from greensim.core.instance import Instance

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
    layerwise : send KV layer by layer while the prefill runs (see :class:`KVHandoff`).
    n_layers : model layers (layer-wise transfer) [-].
    """

    roles: Tuple[str, ...]
    decode_router: DecodeRouter
    bandwidth_bps: float
    latency_s: float
    link_scope: str
    kv_bytes_per_token: float
    layerwise: bool = False
    n_layers: int = 1


class KVHandoff:
    """Moves prefilled requests from prefill to decode instances (see module docstring).

    Layer-wise transfer (``spec.layerwise``): when a request's last prefill iteration
    starts and no older request waits, a decode instance is sought at once; if one can
    reserve the KV, the first ``L - 1`` of ``L`` layers (``B (L-1)/L`` bytes) start over
    the link immediately, overlapping the prefill, and the last layer's ``B / L`` bytes
    follow when both the prefill and that flow are done. (The overlap flow is not
    throttled to the rate layers are produced; the tail after the prefill bounds the
    error to one layer's compute.) Otherwise the request takes the normal path.
    ``kv_transfer_s`` then runs from the prefill start.
    """

    def __init__(self, sim: "EngineHost", spec: DisaggregationSpec):
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
        rec.extra.update(
            {
                "decode_instance": self.decode_instance,
                "kv_transfer_bytes": self.transfer_bytes,
                "kv_transfer_s": self.transfer_s,
                "decode_wait_s": self.decode_wait_s,
            }
        )
        self._max_need = min(d.total_kv_blocks - d.cfg.watermark_blocks for d in self.decode)
        self.layerwise = spec.layerwise
        self._early: Dict[int, list] = {}  # layer-wise: id -> [dst, blocks, t0, flow done, src, src blocks]

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
            return (
                f"needs {need} KV blocks to decode; the smallest decode instance holds "
                f"{self._max_need} above the watermark"
            )
        big = n_in + n_out - 1
        for dec in self.decode:
            if not dec.cfg.chunked_prefill and big > dec.cfg.max_batched_tokens:
                return (
                    f"prompt+output {big} tokens exceed decode instance {dec.cfg.name}'s "
                    f"max_batched_tokens {dec.cfg.max_batched_tokens} (a preempted request is "
                    f"recomputed there); enable chunked_prefill or raise max_batched_tokens"
                )
        return ""

    # ------------------------------------------------------------------ events
    def _place(self, r: Request, tokens: int, cands: List["Instance"]) -> Tuple["Instance", int]:
        k = self.router.choose(r.id, tokens, cands)
        if not (0 <= k < len(cands)):
            raise SimulationInvariantError(f"decode router returned {k}; valid 0..{len(cands) - 1}")
        dst = cands[k]
        self.decode_instance[r.id] = dst.index
        self.transfer_bytes[r.id] = self.spec.kv_bytes_per_token * tokens
        return dst, dst.reserve(tokens)

    def on_prefill_start(self, src: "Instance", r: Request) -> None:
        """Layer-wise: ``r``'s last prefill iteration starts on ``src``; place it now if possible."""
        if self.pending:
            return  # older requests are placed first
        tokens = r.n_in + r.generated
        cands = [d for d in self.decode if d.can_accept(tokens)]
        if not cands:
            return
        dst, nb = self._place(r, tokens, cands)
        self.decode_wait_s[r.id] = 0.0
        st = [dst, nb, self.sim.env.now, False, None, 0]
        self._early[r.id] = st
        L = self.spec.n_layers
        nbytes = self.spec.kv_bytes_per_token * tokens * (L - 1) / L

        def flow_done() -> None:
            st[3] = True
            if st[4] is not None:
                self._send_tail(r, st)

        self._link(src.index, dst.index).send(nbytes, flow_done)

    def _send_tail(self, r: Request, st: list) -> None:
        dst, nb, t0, _, src, src_blocks = st
        nbytes = self.transfer_bytes[r.id] / self.spec.n_layers

        def done() -> None:
            del self._early[r.id]
            self.transfer_s[r.id] = self.sim.env.now - t0
            src.release_blocks(src_blocks)
            dst.accept(r, nb)

        self._link(src.index, dst.index).send(nbytes, done)

    def on_prefilled(self, src: "Instance", r: Request) -> None:
        """``r`` finished its prefill on ``src`` and keeps ``r.blocks`` there until sent."""
        rec = self.sim.record
        rec.busy_s[r.id] = r.busy_s
        rec.energy_j[r.id] = r.energy_j
        r.busy_s = 0.0
        r.energy_j = 0.0
        st = self._early.get(r.id)
        if st is not None:  # layer-wise, already placed
            st[4], st[5] = src, r.blocks
            if st[3]:
                self._send_tail(r, st)
            return
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
            self.pending.popleft()
            dst, nb = self._place(r, r.kv_len, cands)
            self.decode_wait_s[r.id] = now - t_ready
            link = self._link(src.index, dst.index)
            link.send(self.transfer_bytes[r.id], self._arrival(r, src, src_blocks, dst, nb, now))

    def _arrival(self, r: Request, src: "Instance", src_blocks: int, dst: "Instance", nb: int, t0: float):
        def done() -> None:
            self.transfer_s[r.id] = self.sim.env.now - t0
            src.release_blocks(src_blocks)
            dst.accept(r, nb)

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
