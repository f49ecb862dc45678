"""The simulation: a SimPy environment, the arrival stream, a router and instances."""

from __future__ import annotations

import dataclasses
from array import array
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import simpy

from greensim.base.errors import SimulationInvariantError
from greensim.core.clock import Clock
from greensim.core.disagg import DisaggregationSpec, KVHandoff
from greensim.core.instance import Instance, InstanceConfig
from greensim.core.interfaces import BoundPerformance, FailureModel, ReleasePolicy, Router, RouterContext
from greensim.core.ledger import Ledger
from greensim.core.prefix_cache import PrefixCache
from greensim.core.recorder import IterationRecorder
from greensim.core.requests import Request, RequestRecord, RequestTable
from greensim.core.spec_instance import DraftSide, SpecInstance, SpecSetup

__all__ = ["Simulation", "SimOutput", "EngineInstance"]

#: An instance that requests are routed to: plain, or speculative (DSD).
ServingInstance = Union[Instance, SpecInstance]
#: An entry of :attr:`Simulation.instances`: a serving instance, or the draft GPU of a
#: split speculative pair (those come after all serving instances and are never routed to).
EngineInstance = Union[Instance, SpecInstance, DraftSide]


@dataclass
class SimOutput:
    """Raw outcome of a run; turned into tables by :mod:`greensim.results`."""

    table: RequestTable
    record: RequestRecord
    instances: Sequence[EngineInstance]
    horizon_s: float
    bin_s: float
    links: Sequence[Any] = ()  # DPD KV links (greensim.core.link.Link), for link tables
    recorder: Optional[IterationRecorder] = None  # per-iteration records (output.iterations), else None


class Simulation:
    """Replays a :class:`RequestTable` through routed instances.

    Parameters
    ----------
    table : the workload.
    instances : (config, bound performance model) per instance.
    router : chooses an instance per arrival.
    bin_s : timeline bin width [s].
    progress : optional callable(sim_time_s) called about every 1% of arrivals.
    max_run_iterations : cap on decode iterations per event (None = whole runs in closed
        form; 1 = one event per iteration, the reference the closed form must match).
    disaggregation : optional DPD spec (instance roles, decode router, link); the router
        then sees only colocated and prefill instances.
    speculative : optional, per instance, a :class:`SpecSetup` (speculative decoding) or
        None. Draft GPUs of split pairs are appended to ``instances`` after the others;
        routers do not see them.
    release : optional policy holding arriving requests until a later time before they are
        routed (e.g. carbon-aware time shifting); the record then gains ``released_s``.
        None (the default) routes every request at its arrival.
    recorder : optional :class:`IterationRecorder` that receives every iteration, speculative
        pass and KV transfer (per-iteration traces); None (the default) records nothing.
    """

    #: every instance, by index: the serving ones, then the draft GPUs of split DSD pairs
    instances: Sequence[EngineInstance]
    #: the serving instances, by index (``instances`` without the draft GPUs)
    _served: Sequence[ServingInstance]

    def __init__(
        self,
        table: RequestTable,
        instances: Sequence[tuple[InstanceConfig, BoundPerformance]],
        router: Router,
        bin_s: float,
        progress: Optional[Callable[[float], None]] = None,
        max_run_iterations: Optional[int] = None,
        failures: Optional[FailureModel] = None,
        disaggregation: Optional[DisaggregationSpec] = None,
        speculative: Optional[Sequence[Optional[SpecSetup]]] = None,
        router_extras: Optional[dict] = None,
        release: Optional[ReleasePolicy] = None,
        recorder: Optional[IterationRecorder] = None,
    ):
        self.env = Clock()
        self.max_run_iterations = max_run_iterations
        self.table = table
        self.router = router
        self.bin_s = bin_s
        self.record = RequestRecord(len(table))
        self._front_map: Optional[List[int]] = None  # router's index -> instance index
        self._draft_of: Optional[dict] = None  # DSD: target instance -> its draft GPU
        if failures is not None and speculative is not None:  # failing runs take the slot path
            speculative = [None if sp is None else dataclasses.replace(sp, failable=True) for sp in speculative]
        if speculative is None:
            plain = [Instance(self, i, cfg, perf, Ledger(bin_s)) for i, (cfg, perf) in enumerate(instances)]
            self.instances = self._served = plain
        else:
            self._build_speculative(instances, speculative, bin_s)
        if any(getattr(inst.cfg, "prefix_caching", False) for inst in self._served):
            self._attach_prefix_caches(table)
        self._progress = progress
        # array.array: list-speed indexing at 8 bytes per element (1M requests: 24 MB, not ~100 MB)
        self._arr = array("d", table.arrival_s.astype(float).tobytes())
        self._nin = array("q", table.n_input_tokens.astype(np.int64).tobytes())
        self._nout = array("q", table.n_output_tokens.astype(np.int64).tobytes())
        self._next = 0
        self.n_done = 0
        self.n_rejected = 0
        self._max_need = [inst.total_kv_blocks - inst.cfg.watermark_blocks for inst in self.instances]
        self.failures = failures
        self.n_down = 0  # instances currently failed: arrivals take the slow path
        self._parked: List[Request] = []  # requests waiting for any instance to come back
        if failures is not None:
            self._init_failure_record(len(table))
        self._front: Sequence[ServingInstance] = (
            self._served
            if self._front_map is None  # what the router sees
            else [self._served[i] for i in self._front_map]
        )
        self._dpd: Optional[KVHandoff] = None
        if disaggregation is not None:
            self._dpd = KVHandoff(self, disaggregation)
            self._front_map = [i for i, role in enumerate(disaggregation.roles) if role != "decode"]
            self._front = [self._served[i] for i in self._front_map]
        # network delay: one way per request, that of the instance it is routed to
        self._net = array("d", bytes(8 * len(table)))
        delays = [getattr(inst.cfg, "network_delay_s", None) for inst in self.instances]
        self._has_net = any(d is not None for d in delays)
        if self._has_net:
            if failures is not None and any(d for d in delays):
                raise SimulationInvariantError(
                    "network delays (site rtt_s) are not supported with GPU failures (the config layer rejects this)"
                )
            self.network_delay_s = np.zeros(len(table))
            self.record.extra["network_delay_s"] = self.network_delay_s  # round trip paid [s]
            # instances call these hooks: the no-network path keeps the plain methods (a class
            # attribute lookup, the fast path), a run with network delays overrides them per object
            self.on_first_token = self._on_first_token_net  # type: ignore[method-assign]
            self.on_complete = self._on_complete_net  # type: ignore[method-assign]
        self.recorder = recorder
        if recorder is not None:
            self._attach(recorder)
        bind = getattr(router, "bind", None)
        if bind is not None:
            bind(RouterContext(self.env, router_extras))
        self._release = release
        if release is not None:
            self.released_s = np.full(len(table), np.nan)
            self.record.extra["released_s"] = self.released_s  # when the router got the request [s]
            rbind = getattr(release, "bind", None)
            if rbind is not None:
                rbind(RouterContext(self.env, router_extras))

    def _attach(self, rec: IterationRecorder) -> None:
        """Hand the recorder to every instance (speculative ones and draft GPUs: their ledgers) and the DPD hand-off."""
        for inst in self.instances:
            if isinstance(inst, Instance):
                inst.rec = rec
            else:
                inst.ledger.rec = rec.sink(inst.index)
        if self._dpd is not None:
            self._dpd.rec = rec

    def _build_speculative(
        self,
        instances: Sequence[tuple[InstanceConfig, BoundPerformance]],
        speculative: Sequence[Optional[SpecSetup]],
        bin_s: float,
    ) -> None:
        n = len(self.record.busy_s)
        served: List[ServingInstance] = []
        drafts: List[DraftSide] = []
        draft_of: Dict[int, int] = {}  # target instance -> its draft GPU
        for i, (cfg, perf) in enumerate(instances):
            sp = speculative[i]
            if sp is None:
                served.append(Instance(self, i, cfg, perf, Ledger(bin_s)))
                continue
            inst = SpecInstance(self, i, cfg, perf, Ledger(bin_s), sp)
            served.append(inst)
            if sp.split:
                draft = DraftSide(
                    len(instances) + len(drafts),
                    sp.draft_name,
                    sp.draft_gpu,
                    sp.draft_perf,
                    Ledger(bin_s),
                    cfg.kv_blocks,
                )
                inst.draft = draft
                draft.target = inst
                drafts.append(draft)
                draft_of[i] = draft.index
        self.instances = self._served = served
        if drafts:
            self.dsd_draft_instance = np.full(n, -1, dtype=np.int64)
            self.dsd_draft_busy_s = np.zeros(n)
            self.dsd_draft_energy_j = np.zeros(n)
            self.record.parts.append((self.dsd_draft_instance, self.dsd_draft_busy_s, self.dsd_draft_energy_j))
            self.record.extra["draft_instance"] = self.dsd_draft_instance
            self._draft_of = draft_of
            self._front_map = list(range(len(instances)))
            self.instances = [*served, *drafts]

    def _attach_prefix_caches(self, table: RequestTable) -> None:
        """Give each instance with ``cfg.prefix_caching`` a :class:`PrefixCache`; the record
        gains ``cached_prompt_tokens`` (prompt tokens found cached at first admission)."""
        if table.prefix_ids is None or table.prefix_block_tokens < 1:
            raise SimulationInvariantError(
                "prefix caching needs a workload with prefix identity (the config layer checks this)"
            )
        self.cached_prompt_tokens = np.zeros(len(table), dtype=np.int64)
        self.record.extra["cached_prompt_tokens"] = self.cached_prompt_tokens
        for inst in self._served:
            if not inst.cfg.prefix_caching:
                continue
            if not isinstance(inst, Instance):
                raise SimulationInvariantError(
                    f"instance {inst.index}: prefix caching is not modelled with speculative decoding"
                )
            inst.prefix_cache = PrefixCache(
                table.prefix_ids, table.prefix_block_tokens, inst.B, self.cached_prompt_tokens
            )

    # ---------------------------------------------------------------- hooks from instances
    def on_first_scheduled(self, r: Request, now: float) -> None:
        self.record.first_scheduled_s[r.id] = now

    def on_first_token(self, r: Request, now: float) -> None:
        self.record.first_token_s[r.id] = now

    def _on_first_token_net(self, r: Request, now: float) -> None:
        self.record.first_token_s[r.id] = now + self._net[r.id]  # reaches the user one way later

    def on_preempted(self, r: Request) -> None:
        self.record.n_preemptions[r.id] += 1

    def _on_complete_net(self, r: Request, now: float) -> None:
        Simulation.on_complete(self, r, now)
        self.record.done_s[r.id] = now + self._net[r.id]  # reaches the user one way later

    def on_complete(self, r: Request, now: float) -> None:
        rec = self.record
        rec.done_s[r.id] = now
        rec.n_generated[r.id] = r.generated
        self.n_done += 1
        if self._dpd is not None and self._dpd.on_complete(r):
            return
        rec.busy_s[r.id] = r.busy_s
        rec.energy_j[r.id] = r.energy_j

    # ---------------------------------------------------------------- arrivals
    def _schedule_arrival(self) -> None:
        i = self._next
        if i >= len(self._arr):
            return
        self.env.wake(max(0.0, self._arr[i] - self.env.now), self._on_arrival)

    def _on_arrival(self, _ev) -> None:
        i = self._next
        self._next = i + 1
        self._schedule_arrival()
        if self._release is not None and self._hold(i):
            return
        self._route(i)

    def _hold(self, i: int) -> bool:
        """Ask the release policy; hold request ``i`` (True) or route it now (False)."""
        now = self.env.now
        t = self._release.release_s(i, self._nin[i], now)  # type: ignore[union-attr]
        if not (t >= now and t < float("inf")):
            raise SimulationInvariantError(f"release policy returned {t!r} for request {i} at t = {now!r} s")
        self.released_s[i] = t
        if t == now:
            return False
        ev = self.env.timeout(t - now)
        ev.callbacks.append(lambda _ev, i=i: self._route(i))  # type: ignore[misc]
        return True

    def _route(self, i: int) -> None:
        """Route request ``i`` (at its arrival, or at its release by the release policy)."""
        n_in, n_out = self._nin[i], self._nout[i]
        if self.n_down:
            self._dispatch(Request(i, n_in, n_out))
            return
        k = self.router.choose(i, n_in, self._front)
        if not (0 <= k < len(self._front)):
            raise SimulationInvariantError(f"router returned instance {k}; valid 0..{len(self._front) - 1}")
        if self._front_map is not None:
            k = self._front_map[k]
        inst = self._served[k]
        self.record.instance[i] = k
        cfg = inst.cfg
        reason = ""
        if self._dpd is not None and inst.handoff is not None and n_out > 1:
            reason = self._dpd.reject_reason(n_in, n_out)
            if not reason and inst._blocks(n_in) > self._max_need[k]:
                reason = (
                    f"needs {inst._blocks(n_in)} KV blocks to prefill; instance {cfg.name} "
                    f"holds {self._max_need[k]} above the watermark"
                )
            elif not reason and not cfg.chunked_prefill and n_in > cfg.max_batched_tokens:
                reason = (
                    f"prompt {n_in} tokens exceeds max_batched_tokens {cfg.max_batched_tokens}; "
                    f"enable chunked_prefill or raise max_batched_tokens"
                )
        elif inst._blocks(n_in + n_out - 1) > self._max_need[k]:
            reason = (
                f"needs {inst._blocks(n_in + n_out - 1)} KV blocks; instance {cfg.name} "
                f"holds {self._max_need[k]} above the watermark"
            )
        elif not cfg.chunked_prefill and n_in + n_out - 1 > cfg.max_batched_tokens:
            reason = (
                f"prompt+output {n_in + n_out - 1} tokens exceed max_batched_tokens "
                f"{cfg.max_batched_tokens} (a recomputed prompt could not be scheduled); "
                f"enable chunked_prefill or raise max_batched_tokens"
            )
        if reason:
            self.record.rejected[i] = True
            self.record.reject_reason[i] = reason
            self.n_rejected += 1
            return
        if self._progress is not None and i % self._progress_every == 0:
            self._progress(self.env.now)
        if self._draft_of is not None and k in self._draft_of:
            self.dsd_draft_instance[i] = self._draft_of[k]
        if self._has_net and cfg.network_delay_s:
            d = cfg.network_delay_s
            self._net[i] = d
            self.network_delay_s[i] = 2 * d
            inst.n_in_transit += 1
            ev = self.env.timeout(d)
            # a lambda, cheaper per arrival than a def; mypy cannot type a lambda with default
            # arguments (python/mypy#15459)
            ev.callbacks.append(lambda _ev, inst=inst, r=Request(i, n_in, n_out): self._deliver(inst, r))  # type: ignore[misc]
            return
        inst.enqueue(Request(i, n_in, n_out))

    def _deliver(self, inst: ServingInstance, r: Request) -> None:
        """A request reaches its instance after the one-way network delay."""
        inst.n_in_transit -= 1
        inst.enqueue(r)

    # ---------------------------------------------------------------- failures (GPU aging)
    # Work a request did on an instance before a failure made it start again elsewhere is
    # moved off the request ("flushed") into extra attribution parts of the record, so each
    # instance's busy time and energy stay attributed to the requests that used it. Lost
    # work (the interrupted iteration's share, and the re-prefill that recomputes the KV a
    # failure destroyed) goes into parts listed in ``record.lost_parts`` as well.
    def _init_failure_record(self, n: int) -> None:
        rec = self.record
        self.lost_tokens = np.zeros(n, dtype=np.int64)
        self.lost_busy_s = np.zeros(n)
        self.lost_energy_j = np.zeros(n)
        rec.extra["failure_lost_tokens"] = self.lost_tokens  # tokens whose KV failures destroyed
        rec.extra["failure_lost_busy_s"] = self.lost_busy_s  # GPU time of lost work [s]
        rec.extra["failure_lost_energy_j"] = self.lost_energy_j  # busy energy of lost work [J]
        self._lost_list: list = []
        rec.lost_parts = self._lost_list
        rec.failure_parts = []  # every part below: a request rejected after a restart keeps them
        self._t_last_reject = 0.0
        self._fparts: Dict[bool, list] = {False: [], True: []}  # history / lost parts, by level
        self._nflush = {False: np.zeros(n, dtype=np.int64), True: np.zeros(n, dtype=np.int64)}

    def _flush(self, rid: int, k: int, busy_s: float, energy_j: float, lost: bool) -> None:
        """Attribute ``busy_s`` / ``energy_j`` of request ``rid`` to instance ``k`` (a new part)."""
        if busy_s == 0.0 and energy_j == 0.0:
            return
        j = int(self._nflush[lost][rid])
        parts = self._fparts[lost]
        if j == len(parts):
            n = len(self._arr)
            part = (np.full(n, -1, dtype=np.int64), np.zeros(n), np.zeros(n))
            parts.append(part)
            self.record.parts.append(part)
            self.record.failure_parts.append(part)
            if lost:
                self._lost_list.append(part)
        inst_col, b_col, e_col = parts[j]
        inst_col[rid], b_col[rid], e_col[rid] = k, busy_s, energy_j
        self._nflush[lost][rid] = j + 1
        if lost:
            self.lost_busy_s[rid] += busy_s
            self.lost_energy_j[rid] += energy_j

    def on_lost_work(self, r: Request, k: int, busy_s: float, energy_j: float) -> None:
        """``r``'s share of an iteration that a failure of instance ``k`` interrupted."""
        self._flush(r.id, k, busy_s, energy_j, True)

    def on_recomputed(self, r: Request, k: int) -> None:
        """``r`` finished the prefill that recomputes the KV a failure destroyed (on ``k``):
        its shares since the failure (that prefill) are lost work."""
        r.redo = False
        self._flush(r.id, k, r.busy_s, r.energy_j, True)
        r.busy_s = r.energy_j = 0.0
        if self._draft_of is not None and k in self._draft_of:
            d = self.dsd_draft_instance[r.id]
            self._flush(r.id, int(d), self.dsd_draft_busy_s[r.id], self.dsd_draft_energy_j[r.id], True)
            self.dsd_draft_busy_s[r.id] = self.dsd_draft_energy_j[r.id] = 0.0

    def on_draft_lost_work(self, r: Request, draft_index: int, busy_s: float, energy_j: float) -> None:
        """``r``'s share of draft-GPU work lost to a failure (interrupted, or KV rebuilt)."""
        self._flush(r.id, draft_index, busy_s, energy_j, True)

    def _lose(self, r: Request, k: int, tokens: int) -> None:
        """``r`` lost its KV (``tokens`` of it) to a failure of instance ``k``: move what it
        did so far onto attribution parts, so it restarts with nothing accumulated."""
        rid = r.id
        rec = self.record
        self.lost_tokens[rid] += tokens
        self._flush(rid, k, r.busy_s, r.energy_j, False)
        r.busy_s = r.energy_j = 0.0
        if rec.busy_s[rid] or rec.energy_j[rid]:  # DPD: the prefill part, booked at hand-off
            self._flush(rid, int(rec.instance[rid]), rec.busy_s[rid], rec.energy_j[rid], False)
            rec.busy_s[rid] = rec.energy_j[rid] = 0.0
        if self._draft_of is not None and self.dsd_draft_instance[rid] >= 0:
            d = int(self.dsd_draft_instance[rid])
            self._flush(rid, d, self.dsd_draft_busy_s[rid], self.dsd_draft_energy_j[rid], False)
            self.dsd_draft_busy_s[rid] = self.dsd_draft_energy_j[rid] = 0.0
            self.dsd_draft_instance[rid] = -1
        if self._dpd is not None:
            self._dpd.decode_instance[rid] = -1  # placed again after its re-prefill
        if tokens > 0 or r.generated > 0:
            r.redo = True

    def _dispatch(self, r: Request) -> None:
        """Route a request among the front instances that are up (slow path while any is down)."""
        up = [inst for inst in self._front if inst.available]
        if not up:
            self._parked.append(r)
            return
        j = self.router.choose(r.id, r.n_in, up)
        if not (0 <= j < len(up)):
            raise SimulationInvariantError(f"router returned instance {j}; valid 0..{len(up) - 1}")
        self.place(r, up[j])

    def place(self, r: Request, inst: ServingInstance) -> None:
        """Send ``r`` (a new arrival or a restart after a failure) to ``inst``, or reject it."""
        k = inst.index
        self.record.instance[r.id] = k
        cfg = inst.cfg
        prompt = r.n_in + r.generated  # a restart re-prefills its delivered tokens too
        need = r.n_in + r.n_out - 1
        reason = ""
        if self._dpd is not None and inst.handoff is not None and r.n_out > r.generated + 1:
            reason = self._dpd.reject_reason(r.n_in, r.n_out)
            if not reason and inst._blocks(prompt) > self._max_need[k]:
                reason = (
                    f"needs {inst._blocks(prompt)} KV blocks to prefill; instance {cfg.name} holds {self._max_need[k]}"
                )
            elif not reason and not cfg.chunked_prefill and prompt > cfg.max_batched_tokens:
                reason = f"prompt {prompt} tokens exceeds max_batched_tokens {cfg.max_batched_tokens}"
        elif inst._blocks(need) > self._max_need[k]:
            reason = f"needs {inst._blocks(need)} KV blocks; instance {cfg.name} holds {self._max_need[k]}"
        elif not cfg.chunked_prefill and need > cfg.max_batched_tokens:
            reason = f"prompt+output {need} tokens exceed max_batched_tokens {cfg.max_batched_tokens}"
        if reason:
            if self.record.n_requeues[r.id]:
                reason = "re-routed after a failure to an instance that cannot hold it: " + reason
                self._t_last_reject = self.env.now  # its work so far is inside the horizon
            self.record.rejected[r.id] = True
            self.record.reject_reason[r.id] = reason
            self.n_rejected += 1
            return
        if self._draft_of is not None and k in self._draft_of:
            self.dsd_draft_instance[r.id] = self._draft_of[k]
        inst.enqueue(r)

    def _restart(self, r: Request) -> None:
        """Re-route ``r`` after a failure took its KV (or its queue place)."""
        self.record.n_requeues[r.id] += 1
        self._dispatch(r)

    def _work_left(self) -> bool:
        return self.n_done + self.n_rejected < len(self._arr)

    # The failure model ``fm`` (``self.failures``, not None here) is passed along the chain.
    def _arm_failure(self, fm: FailureModel, inst: EngineInstance) -> None:
        dt = fm.time_to_failure_s(inst.index, self.env.now)
        if dt is None:
            return
        if not (dt >= 0):
            raise SimulationInvariantError(f"failure model returned delay {dt} for instance {inst.index}")
        ev = self.env.timeout(dt)

        def fail(_ev: simpy.Event, inst: EngineInstance = inst) -> None:
            self._on_failure(fm, inst)

        ev.callbacks.append(fail)

    def _on_failure(self, fm: FailureModel, inst: EngineInstance) -> None:
        if not self._work_left():
            return  # the workload is done: stop generating events
        if isinstance(inst, DraftSide):
            inst.fail(self.env.now)
            inst.target.draft_failed()
            lost: list = []
        else:
            lost = inst.fail()
        self.n_down += 1
        rep = fm.repair_time_s(inst.index, self.env.now)
        ev = self.env.timeout(rep)

        def repair(_ev: simpy.Event, inst: EngineInstance = inst) -> None:
            self._on_repair(fm, inst)

        ev.callbacks.append(repair)
        for r, tokens in lost:
            self._lose(r, inst.index, tokens)
        if self._dpd is not None:
            resend, moved = self._dpd.on_failed(inst)
            for r, tokens in moved:
                self._lose(r, inst.index, tokens)
            lost = sorted([*lost, *moved], key=lambda x: x[0].id)
            for r, _ in lost:
                self.record.n_requeues[r.id] += 1
                if resend and self._dpd.resend(r):
                    continue
                self._dispatch(r)
            self._dpd.dispatch()
            return
        for r, _ in lost:
            self._restart(r)

    def _on_repair(self, fm: FailureModel, inst: EngineInstance) -> None:
        self.n_down -= 1
        fm.on_repaired(inst.index, self.env.now)
        if isinstance(inst, DraftSide):
            inst.recover(self.env.now)
            inst.target.draft_repaired()
        else:
            inst.recover()
        parked, self._parked = self._parked, []
        for r in parked:
            self._dispatch(r)
        if self._dpd is not None:
            self._dpd.dispatch()
        if self._work_left():
            self._arm_failure(fm, inst)

    # ---------------------------------------------------------------- run
    def run(self) -> SimOutput:
        """Run until every request has completed or been rejected."""
        self._progress_every = max(1, len(self._arr) // 100)
        self._schedule_arrival()
        if self.failures is not None:
            for inst in self.instances:
                self._arm_failure(self.failures, inst)
        self.env.run()
        n = len(self._arr)
        if self.n_done + self.n_rejected != n:
            raise SimulationInvariantError(
                f"{n} requests arrived but {self.n_done} completed and {self.n_rejected} were rejected"
            )
        for inst in self.instances:
            inst.check_drained()
            n_transit = getattr(inst, "n_in_transit", 0)  # draft GPUs have none
            if n_transit:
                raise SimulationInvariantError(f"instance {inst.index}: {n_transit} requests still in transit")
        w = max(inst.ledger.bin_s for inst in self.instances)  # ledgers coarsen independently
        for inst in self.instances:
            while inst.ledger.bin_s < w:
                inst.ledger.coarsen()
        self.bin_s = w
        horizon = float(self.env.now)
        if self.failures is not None:  # stray failure/repair events may run past the last completion
            done = self.record.done_s[np.isfinite(self.record.done_s)]
            horizon = max(float(done.max()) if done.size else 0.0, self._t_last_reject)
        if n:
            horizon = max(horizon, float(self._arr[-1]))
        if self._has_net:  # the last response reaches its user after the instance's last event
            done = self.record.done_s[np.isfinite(self.record.done_s)]
            if done.size:
                horizon = max(horizon, float(done.max()))
        links = self._dpd.links if self._dpd is not None else ()
        # the engine's own per-request copies of the workload are not read after the run (24-32 B
        # per request, held while the caller builds tables): the table and record carry the results
        self._arr, self._nin, self._nout, self._net = array("d"), array("q"), array("q"), array("d")
        return SimOutput(self.table, self.record, self.instances, horizon, self.bin_s, links, self.recorder)
