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
from typing import TYPE_CHECKING, Deque, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from greensim.base.errors import SimulationInvariantError
from greensim.core.interfaces import EngineHost, InstanceView
from greensim.core.link import Link
from greensim.core.recorder import IterationRecorder
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
    on_decode_failure : what a request does when its decode instance fails (its KV there
        is lost): ``"reprefill"`` (re-prefilled from scratch on a prefill instance) or
        ``"resend"`` (see :meth:`KVHandoff.resend`).
    """

    roles: Tuple[str, ...]
    decode_router: DecodeRouter
    bandwidth_bps: float
    latency_s: float
    link_scope: str
    kv_bytes_per_token: float
    layerwise: bool = False
    n_layers: int = 1
    on_decode_failure: str = "reprefill"


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
        # layer-wise: id -> [dst, blocks, t0, flow done, src once prefilled, src blocks, link,
        # flow in flight, request, prefill instance]
        self._early: Dict[int, list] = {}
        # transfers on a link: id -> (link, flow, request, src, src blocks, dst, dst blocks, t0)
        self._inflight: Dict[int, list] = {}
        # resend: id -> (prefill instance, its failure count) holding a copy of the sent KV
        self._held_by: Dict[int, Tuple["Instance", int, int]] = {}
        self._keep_copies = spec.on_decode_failure == "resend"
        self.rec: Optional[IterationRecorder] = None  # per-iteration recorder (output.iterations), else None

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
        cands = [d for d in self.decode if d.available and d.can_accept(tokens)]
        if not cands:
            return
        dst, nb = self._place(r, tokens, cands)
        self.decode_wait_s[r.id] = 0.0
        st = [dst, nb, self.sim.env.now, False, None, 0, None, None, r, src]
        self._early[r.id] = st
        L = self.spec.n_layers
        nbytes = self.spec.kv_bytes_per_token * tokens * (L - 1) / L

        def flow_done() -> None:
            st[3] = True
            if self.rec is not None:
                self.rec.transfer(src.index, st[2], self.sim.env.now, r.id, dst.index, nbytes, link.name)
            if st[4] is not None:
                self._send_tail(r, st)

        st[6] = link = self._link(src.index, dst.index)
        st[7] = link.send(nbytes, flow_done)

    def _send_tail(self, r: Request, st: list) -> None:
        dst, nb, t0, _, src, src_blocks = st[:6]
        nbytes = self.transfer_bytes[r.id] / self.spec.n_layers
        t1 = self.sim.env.now

        def done() -> None:
            del self._early[r.id]
            if self.rec is not None:
                self.rec.transfer(src.index, t1, self.sim.env.now, r.id, dst.index, nbytes, st[6].name)
            self.transfer_s[r.id] = self.sim.env.now - t0
            self._sent(r, src)
            src.release_blocks(src_blocks, r)
            dst.accept(r, nb)

        st[7] = st[6].send(nbytes, done)

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
            cands = [d for d in self.decode if d.available and d.can_accept(r.kv_len)]
            if not cands:
                return
            self.pending.popleft()
            dst, nb = self._place(r, r.kv_len, cands)
            self.decode_wait_s[r.id] = now - t_ready
            link = self._link(src.index, dst.index)
            entry: list = [link, None, r, src, src_blocks, dst, nb, t_ready]
            self._inflight[r.id] = entry  # before send: an instant transfer removes it at once
            entry[1] = link.send(self.transfer_bytes[r.id], self._arrival(r, src, src_blocks, dst, nb, now))

    def _arrival(self, r: Request, src: "Instance", src_blocks: int, dst: "Instance", nb: int, t0: float):
        def done() -> None:
            self._inflight.pop(r.id, None)
            if self.rec is not None:
                ln = self._link(src.index, dst.index)
                self.rec.transfer(src.index, t0, self.sim.env.now, r.id, dst.index, self.transfer_bytes[r.id], ln.name)
            self.transfer_s[r.id] = self.sim.env.now - t0
            self._sent(r, src)
            src.release_blocks(src_blocks, r)
            dst.accept(r, nb)

        return done

    def _sent(self, r: Request, src: "Instance") -> None:
        """``r``'s KV reached its decode instance; with resend, ``src`` keeps a copy."""
        if self._keep_copies:
            self._held_by[r.id] = (src, src.n_failures, r.kv_len)

    # ------------------------------------------------------------------ failures
    def on_failed(self, inst) -> Tuple[bool, List[Tuple[Request, int]]]:
        """Instance ``inst`` failed. Transfers to it are cancelled and their requests wait
        for another decode instance (their prefill instance still holds the KV); requests
        whose KV was on ``inst`` (prefilled and waiting, or on a link from it) are returned
        with their KV tokens, to be re-prefilled. Returns (whether requests that lost their
        KV on ``inst`` may be re-sent, those requests)."""
        lost: List[Tuple[Request, int]] = []
        back: List[Tuple[Request, "Instance", int, float]] = []
        keep: Deque[Tuple[Request, "Instance", int, float]] = deque()
        for item in self.pending:
            if item[1] is inst:
                lost.append((item[0], item[0].kv_len))
            else:
                keep.append(item)
        for rid in sorted(self._inflight):
            link, flow, r, src, src_blocks, dst, nb, t_ready = self._inflight[rid]
            if src is inst or dst is inst:
                del self._inflight[rid]
                link.cancel(flow)
                if src is inst:
                    dst.unreserve(nb)
                    lost.append((r, r.kv_len))
                else:
                    back.append((r, src, src_blocks, t_ready))
        for rid in sorted(self._early):
            st = self._early[rid]
            dst, nb, t0, _, src, src_blocks, link, flow, r = st[:9]
            if dst is inst:
                del self._early[rid]
                link.cancel(flow)
                if src is not None:  # prefilled, its KV still on src: placed again
                    back.append((r, src, src_blocks, t0))
            elif st[9] is inst:  # its prefill was on inst: the KV is lost
                del self._early[rid]
                link.cancel(flow)
                dst.unreserve(nb)
                if src is not None:  # prefilled (else fail() returned it from the batch)
                    lost.append((r, r.kv_len))
        if back:
            self.pending = deque(sorted(back, key=lambda x: (x[3], x[0].id)) + list(keep))
        else:
            self.pending = keep
        return self._keep_copies and inst in self.decode, lost

    def resend(self, r: Request) -> bool:
        """Resend: a request whose decode instance failed goes back to the prefill instance
        that sent its KV, if that instance is up and has not failed since (it keeps a copy
        of every KV it sent, in host memory, until the request completes); only the tokens
        generated since the transfer are prefilled again (the copy counts as cached), then
        its KV is sent to a decode instance as usual. Returns False (re-prefill from
        scratch) otherwise."""
        held = self._held_by.pop(r.id, None)
        if held is None:
            return False
        src, n_fail, tokens = held
        if not src.available or src.n_failures != n_fail:
            return False
        r.cached = tokens
        self.sim.place(r, src)
        return True

    def on_complete(self, r: Request) -> bool:
        """Store the decode part of a finished request; True if it was handed off."""
        if self._held_by:
            self._held_by.pop(r.id, None)
        if self.decode_instance[r.id] < 0:
            return False
        self.decode_busy_s[r.id] = r.busy_s
        self.decode_energy_j[r.id] = r.energy_j
        if self.pending:
            self.dispatch()
        return True
