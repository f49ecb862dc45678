"""One serving instance: iteration-level continuous batching over a paged KV cache.

Scheduling follows vLLM: a FCFS waiting queue; prefill-prioritised iterations (or, with
chunked prefill, decode tokens first and prompt chunks filling the token budget);
admission only when the prompt's KV blocks are free above a watermark; preemption by
recomputation of the latest-admitted request when decode growth runs out of blocks.

Runs of decode-only iterations are advanced in closed form: the batch does not change
between arrivals, completions and KV-block exhaustion, so one event covers the whole
run (it is cut at the next iteration boundary when an admissible request arrives).
Per-request token counts are lazy: a decoding request's tokens are the instance's
decode-step counter minus the step at which it joined.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Deque, Dict, List, Optional, Tuple

from greensim.base.errors import SimulationInvariantError
from greensim.core.downtime import DownTime
from greensim.core.interfaces import BoundPerformance, EngineHost, PrefillHandoff
from greensim.core.ledger import Ledger
from greensim.core.prefix_cache import PrefixCache
from greensim.core.recorder import IterationRecorder
from greensim.core.requests import Request

__all__ = ["Instance", "InstanceConfig"]


class InstanceConfig:
    """Static parameters of an instance (validated by the config layer)."""

    __slots__ = (
        "name",
        "gpu",
        "tp",
        "kv_blocks",
        "block_tokens",
        "max_batch_size",
        "max_batched_tokens",
        "chunked_prefill",
        "watermark_blocks",
        "group",
        "site",
        "mode",
        "network_delay_s",
        "prefix_caching",
    )

    def __init__(
        self,
        name: str,
        gpu: str,
        tp: int,
        kv_blocks: int,
        block_tokens: int,
        max_batch_size: int,
        max_batched_tokens: int,
        chunked_prefill: bool,
        watermark_blocks: int,
        group: int = 0,
        site: str = "default",
        mode: str = "colocated",
        network_delay_s: float | None = None,
        prefix_caching: bool = False,
    ):
        self.name, self.gpu, self.tp = name, gpu, tp
        self.kv_blocks, self.block_tokens = kv_blocks, block_tokens
        self.max_batch_size, self.max_batched_tokens = max_batch_size, max_batched_tokens
        self.chunked_prefill, self.watermark_blocks = chunked_prefill, watermark_blocks
        # labels routers may read: instance group index, site name, serving mode
        # (colocated, prefill, decode, spec = draft on the same GPU, dsd = draft on another GPU)
        self.group, self.site, self.mode = group, site, mode
        # one-way network delay between the front end and this instance [s] (None: not
        # modelled): a request routed here reaches it this much later; its first and last
        # tokens reach the user this much after they are produced
        self.network_delay_s = None if network_delay_s is None else float(network_delay_s)
        # automatic prefix caching (greensim.core.prefix_cache); the simulation attaches the cache
        self.prefix_caching = bool(prefix_caching)


class Instance(DownTime):
    """A GPU group serving one model. Driven by the simulation's SimPy environment."""

    def __init__(self, sim: "EngineHost", index: int, cfg: InstanceConfig, perf: BoundPerformance, ledger: Ledger):
        self.sim, self.index, self.cfg, self.perf, self.ledger = sim, index, cfg, perf, ledger
        self._power_varies = perf.power_varies  # utilisation-dependent decode power
        self.B = cfg.block_tokens
        self.total_kv_blocks = cfg.kv_blocks
        self.waiting: Deque[Request] = deque()
        self.prefilling: List[Request] = []  # admitted, prompt not finished (chunked)
        self.decoding: Dict[int, Request] = {}
        self._heap: List[Tuple[int, int, Request]] = []  # (finish_step, id, request)
        self.steps = 0  # decode steps done
        self._kv_base_sum = 0  # sum of kv_base over decoding requests
        self._prefill_blocks = 0  # blocks held by admitted, not-yet-decoding requests
        self._dec_blocks = 0  # blocks held by decoding requests at self.steps
        self._res = [0] * cfg.block_tokens  # decoding requests counted by kv_base mod B
        self._acc_s = 0.0  # busy time per decode token, accumulated [s]
        self._acc_j = 0.0  # busy energy per decode token, accumulated [J]
        self._seq = 0
        self.busy = False
        self._event = None
        self._run: Tuple[float, int, int, int] | None = None  # (start, n, ctx0, k) of a decode run
        self._batch: list = []  # prefill chunks of the running iteration
        self._iter_decode = False  # whether the running iteration includes decode tokens
        self.n_iterations = 0
        self.n_preemptions = 0
        DownTime.__init__(self)  # available, n_failures, down_intervals, down_s
        self.handoff: Optional[PrefillHandoff] = None  # DPD: prefill instances hand prefilled requests to this
        self.incoming: List[Request] = []  # DPD: transferred requests joining at the next boundary
        self.n_reserved = 0  # DPD: requests with blocks reserved, transfer not arrived
        self.n_in_transit = 0  # routed here, still on the network (counted in n_waiting)
        self.prefix_cache: Optional[PrefixCache] = None  # set by the simulation with cfg.prefix_caching
        self._shared_blocks = 0  # KV blocks counted by several requests (prefix cache), added back
        self.rec: Optional[IterationRecorder] = None  # per-iteration recorder (output.iterations), else None

    # ----------------------------------------------------------------- views
    @property
    def n_waiting(self) -> int:
        """Requests routed here that have not started: queued, or still on the network."""
        return len(self.waiting) + self.n_in_transit

    @property
    def n_running(self) -> int:
        return len(self.decoding) + len(self.prefilling) + len(self._batch) + self.n_reserved

    @property
    def free_kv_blocks(self) -> int:
        return self.total_kv_blocks - self._prefill_blocks - self._dec_blocks + self._shared_blocks

    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.B)

    # ----------------------------------------------------------------- arrivals
    def enqueue(self, r: Request) -> None:
        """A request routed here. Starts an idle instance or cuts a decode run short."""
        was_empty = not self.waiting
        self.waiting.append(r)
        self.ledger.sample(self.sim.env.now, len(self.waiting))  # the running batch is unchanged
        if not self.busy:
            self._schedule()
        elif was_empty and self._run is not None and self._admissible(r):
            self._cut_run(self._run)

    def _admissible(self, r: Request) -> bool:
        """Could ``r`` start now? If not, it cannot at the run's next boundary either
        (during a decode run the batch is fixed and free blocks only shrink)."""
        cfg = self.cfg
        if len(self.decoding) >= cfg.max_batch_size:
            return False
        need = r.n_in + r.generated
        gain = 0 if self.prefix_cache is None else self.prefix_cache.match(r.id, need)[1]
        return self._blocks(need) - gain <= self.free_kv_blocks - cfg.watermark_blocks

    def _cut_run(self, run: Tuple[float, int, int, int]) -> None:
        """End the decode run ``run`` (``self._run``) at its next iteration boundary."""
        start, n, ctx0, k = run
        elapsed = self.sim.env.now - start
        j = self.perf.decode_iterations_until(n, ctx0, k, elapsed)
        if j < k:
            self._run = (start, n, ctx0, j)
            end = start + self.perf.decode_run_time_s(n, ctx0, j)
            self._arm(max(0.0, end - self.sim.env.now))

    def _arm(self, delay: float) -> None:
        self._event = self.sim.env.wake(delay, self._on_event)

    def _on_event(self, ev) -> None:
        if ev is not self._event:
            return  # superseded by a cut run
        self._finish_iteration()
        self._schedule()

    # ----------------------------------------------------------------- decode bookkeeping
    def _enter_decode(self, r: Request) -> None:
        s = self.steps
        r.step_base = s
        r.kv_base = r.kv_len - s
        r.finish_step = s + (r.n_out - r.generated)
        r.share_base_s = self._acc_s
        r.share_base_j = self._acc_j
        self._kv_base_sum += r.kv_base
        self._res[r.kv_base % self.B] += 1
        self._prefill_blocks -= r.blocks
        self._dec_blocks += r.blocks
        self.decoding[r.id] = r
        heapq.heappush(self._heap, (r.finish_step, r.id, r))

    def _leave_decode(self, r: Request) -> None:
        s = self.steps
        del self.decoding[r.id]
        r.generated += s - r.step_base
        r.kv_len = r.kv_base + s
        r.busy_s += self._acc_s - r.share_base_s
        r.energy_j += self._acc_j - r.share_base_j
        r.blocks = self._blocks(r.kv_len)
        self._dec_blocks -= r.blocks
        self._kv_base_sum -= r.kv_base
        self._res[r.kv_base % self.B] -= 1

    def _advance_steps(self, k: int) -> None:
        """Advance the decode-step counter by k and add the KV blocks the steps allocated.

        A request allocates a block at step s iff kv_base + s == 1 (mod B), so the count
        over k steps is n per full cycle of B steps plus a partial sum over residues.
        """
        s0, B, res = self.steps, self.B, self._res
        full, part = divmod(k, B)
        new = full * len(self.decoding)
        for s in range(s0 + 1, s0 + part + 1):
            new += res[(1 - s) % B]
        self._dec_blocks += new
        self.steps = s0 + k
        if self.prefix_cache is not None:
            self.prefix_cache.fit(self.free_kv_blocks)  # decode growth took cached blocks' place

    def _decode_kv_limit(self, kmax: int) -> int:
        """Largest k <= kmax such that k more decode steps fit in the free blocks."""
        n = len(self.decoding)
        free = self.free_kv_blocks
        if free >= n * (-(-kmax // self.B)):
            return kmax
        s, B = self.steps, self.B
        # Request i needs a new block at step k0_i, k0_i + B, ...; k0_i in [1, B].
        k0 = sorted(B - ((r.kv_base + s - 1) % B) for r in self.decoding.values())
        first_fail = k0[free % n] + B * (free // n)
        return min(kmax, first_fail - 1)

    # ----------------------------------------------------------------- scheduling
    def _schedule(self) -> None:
        """Pick the next iteration (or go idle). Called at iteration boundaries."""
        if self.incoming:
            self._join_incoming()
        if self.cfg.chunked_prefill:
            if self.decoding:
                self._ensure_decode_blocks()
            chunks = self._admit_chunked() if (self.waiting or self.prefilling) else []
            n_dec = len(self.decoding)
        else:
            chunks = self._admit_whole() if self.waiting else []
            n_dec = 0
        if chunks:
            self._start_iteration(chunks, n_dec)
            return
        if self.decoding:
            self._start_decode_run()
            return
        self.busy = False
        self._event = None
        self.ledger.sample(self.sim.env.now, len(self.waiting), 0)

    def _admit_whole(self) -> list:
        """vLLM default: a prefill-only batch of whole prompts from the queue head."""
        cfg = self.cfg
        budget = cfg.max_batched_tokens
        n_run = len(self.decoding)
        free = self.free_kv_blocks - cfg.watermark_blocks
        pc = self.prefix_cache
        chunks: List[Tuple[Request, int]] = []  # (request, tokens to prefill)
        while self.waiting and n_run + len(chunks) < cfg.max_batch_size:
            r = self.waiting[0]
            need = r.n_in + r.generated
            nb = self._blocks(need)
            cached = r.cached  # DPD resend: the re-sent prompt KV is not recomputed
            gain = 0
            if pc is not None:  # prefix cache: the hit is not recomputed either
                m, gain = pc.match(r.id, need)
                cached = max(cached, m * pc.H)
            q = need - cached
            if q > budget or nb - gain > free:
                break
            self.waiting.popleft()
            if pc is not None:
                r.cached = cached
                self._acquire(pc, r, m, need)
            self._admit(r, nb)
            free -= nb - gain
            budget -= q
            chunks.append((r, q))
        return chunks

    def _admit_chunked(self) -> list:
        """Chunked prefill: decode tokens first, then prompt chunks fill the budget."""
        cfg = self.cfg
        budget = cfg.max_batched_tokens - len(self.decoding)
        chunks: List[Tuple[Request, int]] = []  # (request, tokens to prefill)
        for r in self.prefilling:
            if budget <= 0:
                break
            q = min(budget, r.n_in + r.generated - r.prefilled)
            chunks.append((r, q))
            budget -= q
        step_blocks = self._res[(-self.steps) % self.B]  # decodes that need a block this step
        free = self.free_kv_blocks - cfg.watermark_blocks - step_blocks
        pc = self.prefix_cache
        while self.waiting and budget > 0 and len(self.decoding) + len(self.prefilling) < cfg.max_batch_size:
            r = self.waiting[0]
            need = r.n_in + r.generated
            nb = self._blocks(need)
            gain = 0
            if pc is not None:
                m, gain = pc.match(r.id, need)
            if nb - gain > free:
                break
            self.waiting.popleft()
            if pc is not None:
                r.cached = max(r.cached, m * pc.H)
                self._acquire(pc, r, m, need, step_blocks)
            q = min(budget, need - r.cached)
            self._admit(r, nb)
            self.prefilling.append(r)
            free -= nb - gain
            chunks.append((r, q))
            budget -= q
        return chunks

    def _acquire(self, pc: PrefixCache, r: Request, m: int, need: int, step_blocks: int = 0) -> None:
        """Prefix cache: ``r`` (admitted now, its blocks not yet counted) references its hit
        keys; then evict what its new blocks (and ``step_blocks`` of decode growth) displace."""
        self._shared_blocks += pc.acquire(r.id, m, need, not r.admitted)
        pc.fit(self.free_kv_blocks - self._blocks(need) - step_blocks)

    def _admit(self, r: Request, nb: int) -> None:
        r.blocks = nb
        r.prefilled = r.cached
        r.cached = 0
        self._prefill_blocks += nb
        self._seq += 1
        r.seq = self._seq
        if not r.admitted:
            r.admitted = True
            self.sim.on_first_scheduled(r, self.sim.env.now)

    def _ensure_decode_blocks(self) -> None:
        """Make room for one decode step, preempting the latest-admitted if needed."""
        while self.decoding and self._decode_kv_limit(1) < 1:
            self._preempt()

    def _preempt(self) -> None:
        """Recompute-preempt the latest-admitted running request."""
        cands = list(self.decoding.values()) + [r for r in self.prefilling]
        victim = max(cands, key=lambda r: r.seq)
        kv = 0
        if victim.id in self.decoding:
            self._leave_decode(victim)
            kv = victim.kv_len
        else:
            self.prefilling.remove(victim)
            self._prefill_blocks -= victim.blocks
        if self.prefix_cache is not None:  # its blocks stay cached: its re-prefill may hit them
            self._shared_blocks += self.prefix_cache.release(victim.id, kv)
        victim.blocks = 0
        victim.kv_len = 0
        victim.prefilled = 0
        self.waiting.appendleft(victim)
        self.n_preemptions += 1
        self.sim.on_preempted(victim)

    def _start_iteration(self, chunks: list, n_dec: int) -> None:
        ctx = self._kv_base_sum + n_dec * (self.steps + 1) if n_dec else 0
        pc = [(q, r.prefilled) for r, q in chunks]
        t = self.perf.iteration_time_s(pc, n_dec, ctx)
        p_tok = sum(q for _, q in chunks)
        if self._power_varies:
            power = self.perf.iteration_power_w(pc, n_dec, ctx, t)
        else:
            power = self.perf.power_w(p_tok, n_dec)
        self._batch = chunks
        self._iter_decode = n_dec > 0
        self._iter_t, self._iter_p, self._iter_tokens = t, power, p_tok + n_dec
        self._iter_start = self.sim.env.now
        if self.handoff is not None and self.handoff.layerwise:
            for r, q in chunks:  # DPD layer-wise: KV may leave as layers are computed
                if r.prefilled + q == r.n_in + r.generated and r.n_out > r.generated + 1:
                    self.handoff.on_prefill_start(self, r)
        self._run = None
        self.busy = True
        self.ledger.sample(
            self.sim.env.now,
            len(self.waiting),
            len(self.decoding) + len(self.prefilling) + (0 if self.cfg.chunked_prefill else len(chunks)),
        )
        self._arm(t)

    def _start_decode_run(self) -> None:
        preempted = False
        while True:
            while self._heap and (
                self._heap[0][2].id not in self.decoding or self._heap[0][2].finish_step != self._heap[0][0]
            ):
                heapq.heappop(self._heap)  # stale entry of a preempted request
            k = self._heap[0][0] - self.steps
            if self.sim.max_run_iterations is not None:
                k = min(k, self.sim.max_run_iterations)
            k = self._decode_kv_limit(k)
            if k >= 1:
                break
            self._preempt()
            preempted = True
            if not self.decoding:
                self._schedule()
                return
        if preempted and self.prefix_cache is not None and self.waiting and self._admissible(self.waiting[0]):
            k = 1  # the victim's blocks stay cached, so it may fit again at the next boundary
        n = len(self.decoding)
        ctx0 = self._kv_base_sum + n * (self.steps + 1)
        self._run = (self.sim.env.now, n, ctx0, k)
        self._batch = []
        self.busy = True
        self.ledger.sample(self.sim.env.now, len(self.waiting), n)
        self._arm(self.perf.decode_run_time_s(n, ctx0, k))

    # ----------------------------------------------------------------- completion of work
    def _finish_iteration(self, end: Optional[float] = None) -> None:
        now = self.sim.env.now if end is None else end
        if self._run is not None:
            start, n, ctx0, k = self._run
            dt = now - start
            if self._power_varies:
                energy = self.perf.decode_run_energy_j(n, ctx0, k)
            else:
                energy = self.perf.decode_power_w * dt
            self._acc_s += dt / n
            self._acc_j += energy / n
            self._advance_steps(k)
            self.ledger.busy(start, dt, energy)
            if self.rec is not None:
                self.rec.decode_run(self.index, start, dt, energy, n, ctx0, k)
            self.n_iterations += k
            self._run = None
            self._pop_finished(now)
            return
        t, p, T = self._iter_t, self._iter_p, self._iter_tokens
        start = now - t
        self.ledger.busy(start, t, t * p)
        if self.rec is not None:
            nd = len(self.decoding) if self._iter_decode else 0  # unchanged since the iteration started
            ctx = self._kv_base_sum + nd * (self.steps + 1) if nd else 0
            self.rec.iteration(self.index, start, t, t * p, T - nd, len(self._batch), nd, ctx)
        self.n_iterations += 1
        if self._iter_decode:
            self._acc_s += t / T
            self._acc_j += t * p / T
            self._advance_steps(1)
        chunks, self._batch = self._batch, []
        for r, q in chunks:
            r.busy_s += t * q / T
            r.energy_j += t * p * q / T
            r.prefilled += q
            target = r.n_in + r.generated
            if r.prefilled < target:
                continue  # chunked prefill continues
            if self.cfg.chunked_prefill:
                self.prefilling.remove(r)
            r.kv_len = target
            r.generated += 1
            pc = self.prefix_cache
            if pc is not None:  # its full prompt blocks become cache entries
                self._shared_blocks += pc.insert(r.id, target)
            if r.generated == 1:
                self.sim.on_first_token(r, now)
            if r.redo:
                self.sim.on_recomputed(r, self.index)
            if r.generated >= r.n_out:
                self._prefill_blocks -= r.blocks
                r.blocks = 0
                if pc is not None:
                    self._shared_blocks += pc.release(r.id)
                self.sim.on_complete(r, now)
            elif self.handoff is not None:
                self.handoff.on_prefilled(self, r)  # DPD: keeps r.blocks until sent
            else:
                self._enter_decode(r)
        if self._iter_decode:
            self._pop_finished(now)

    def _pop_finished(self, now: float) -> None:
        heap, s = self._heap, self.steps
        while heap and heap[0][0] <= s:
            fs, _, r = heapq.heappop(heap)
            if r.id not in self.decoding or r.finish_step != fs:
                continue
            if fs != s:
                raise SimulationInvariantError(
                    f"instance {self.index}: request {r.id} overshot its last token (finish step {fs}, now {s})"
                )
            self._leave_decode(r)
            r.blocks = 0
            if self.prefix_cache is not None:  # its full blocks stay cached, unreferenced
                self._shared_blocks += self.prefix_cache.release(r.id, r.kv_len)
            self.sim.on_complete(r, now)

    # ----------------------------------------------------------------- failures (GPU aging)
    def fail(self) -> List[Tuple[Request, int]]:
        """Fail now: account the work done so far, drop every KV cache and return all requests.

        Completed iterations are booked as usual (a decode run up to its last whole
        iteration). The interrupted iteration's busy time and energy are booked on the ledger
        and reported per request as lost work (``sim.on_lost_work``, shares by tokens). The
        returned requests (in-flight ones first preempted by recomputation: they keep the
        tokens already delivered and re-prefill prompt + generated tokens elsewhere), each
        with the number of tokens whose KV (or prefill progress) was destroyed, go back to
        the simulation, in request-id order. The instance is marked unavailable until
        :meth:`recover`.
        """
        now = self.sim.env.now
        lost_work: List[Tuple[Request, float, float]] = []  # (request, busy share [s], energy share [J])
        if self.busy:
            if self._run is not None:
                start, n, ctx0, k = self._run
                dt = now - start
                j = self.perf.decode_iterations_until(n, ctx0, k, dt) if dt > 0 else 0
                t_j = self.perf.decode_run_time_s(n, ctx0, j) if j else 0.0
                if j and t_j > dt:
                    j -= 1  # iteration j is only partly done: its tokens are lost
                    t_j = self.perf.decode_run_time_s(n, ctx0, j) if j else 0.0
                part = dt - t_j
                if part > 0 and j < k:  # the interrupted iteration j + 1: energy spent, tokens lost
                    if self._power_varies:
                        t1 = self.perf.decode_run_time_s(n, ctx0, j + 1)
                        e1 = self.perf.decode_run_energy_j(n, ctx0, j + 1) - self.perf.decode_run_energy_j(n, ctx0, j)
                        p = e1 / (t1 - t_j) if t1 > t_j else self.perf.decode_power_w
                    else:
                        p = self.perf.decode_power_w
                    self.ledger.busy(start + t_j, part, part * p)
                    if self.rec is not None:
                        self.rec.phase(self.index, start + t_j, part, part * p, "lost")
                    lost_work += [(r, part / n, part * p / n) for r in self.decoding.values()]
                if j:
                    self._run = (start, n, ctx0, j)
                    self._finish_iteration(end=now if j == k else start + t_j)
                self._run = None
            elif now - self._iter_start >= self._iter_t:
                self._finish_iteration()  # due exactly now
            else:
                dt = now - self._iter_start  # a partly done iteration: energy spent, work lost
                self.ledger.busy(self._iter_start, dt, dt * self._iter_p)
                if self.rec is not None:
                    self.rec.phase(self.index, self._iter_start, dt, dt * self._iter_p, "lost")
                T = self._iter_tokens
                lost_work += [(r, dt * q / T, dt * self._iter_p * q / T) for r, q in self._batch]
                if self._iter_decode:
                    lost_work += [(r, dt / T, dt * self._iter_p / T) for r in self.decoding.values()]
        for r, b, e in lost_work:
            self.sim.on_lost_work(r, self.index, b, e)
        reqs: Dict[int, Tuple[Request, int]] = {}
        for r in list(self.decoding.values()):
            self._leave_decode(r)
            reqs[r.id] = (r, r.kv_len)
        for r, _ in self._batch:
            reqs[r.id] = (r, r.prefilled)
        for r in self.prefilling:
            reqs[r.id] = (r, r.prefilled)
        for r in self.incoming:
            reqs[r.id] = (r, r.kv_len)
        for r in self.waiting:
            reqs[r.id] = (r, 0)
        if self._dec_blocks != 0:
            raise SimulationInvariantError(
                f"instance {self.index}: {self._dec_blocks} decode KV blocks left at failure"
            )
        for r, _ in reqs.values():
            r.blocks = 0
            r.kv_len = 0
            r.prefilled = 0
            r.cached = 0
        self.waiting.clear()
        self.prefilling = []
        self.incoming = []
        self.n_reserved = 0
        self._batch = []
        self._heap = []
        self._prefill_blocks = 0
        if self.prefix_cache is not None:  # the cached KV is lost with the GPU's memory
            self.prefix_cache.clear()
        self._shared_blocks = 0
        self._res = [0] * self.B
        self._kv_base_sum = 0
        self.busy = False
        self._event = None
        self._run = None
        self.mark_down(now)
        self.ledger.sample(now, 0, 0)
        return [reqs[i] for i in sorted(reqs)]

    def recover(self) -> None:
        """Back in service after a repair."""
        self.mark_up(self.sim.env.now)

    # ----------------------------------------------------------------- DPD hand-off
    def _growth_blocks(self, k: int) -> int:
        """KV blocks the decoding batch allocates over its next ``k`` steps (no change)."""
        s0, B, res = self.steps, self.B, self._res
        full, part = divmod(k, B)
        new = full * len(self.decoding)
        for s in range(s0 + 1, s0 + part + 1):
            new += res[(1 - s) % B]
        return new

    def can_accept(self, kv_tokens: int) -> bool:
        """Could a transferred request with ``kv_tokens`` of KV reserve blocks now?

        Counts the blocks the running iteration allocates; a reservation cuts a running
        decode run at its next iteration boundary (:meth:`reserve`), so the decision is
        the same whether runs are advanced in closed form or one iteration per event.
        """
        cfg = self.cfg
        if len(self.decoding) + len(self.prefilling) + len(self.incoming) + self.n_reserved >= cfg.max_batch_size:
            return False
        nb = self._blocks(kv_tokens) + cfg.watermark_blocks
        free = self.free_kv_blocks
        if nb > free:
            return False  # growth only lowers it further
        if self._run is not None and nb <= free - self._growth_blocks(self._run[3]):
            return True  # fits even at the end of the whole run
        return nb <= self.free_kv_blocks_after_iteration

    @property
    def free_kv_blocks_after_iteration(self) -> int:
        """KV blocks free once the running iteration ends (exact mid-run, unlike the lazy
        :attr:`free_kv_blocks`, which lags a closed-form decode run until it ends)."""
        if self._run is not None:
            start, n, ctx0, k = self._run
            j = self.perf.decode_iterations_until(n, ctx0, k, self.sim.env.now - start)
            return self.free_kv_blocks - self._growth_blocks(j)
        if self.busy and self._iter_decode and self._batch:
            return self.free_kv_blocks - self._growth_blocks(1)
        return self.free_kv_blocks

    def reserve(self, kv_tokens: int) -> int:
        """Hold KV blocks for a request's ``kv_tokens`` until its transfer arrives; returns them."""
        nb = self._blocks(kv_tokens)
        self._prefill_blocks += nb
        self.n_reserved += 1
        if self._run is not None:
            self._cut_run(self._run)
        return nb

    def accept(self, r: Request, n_blocks: int) -> None:
        """``r``'s KV has arrived (``n_blocks`` reserved for it): it joins the decode batch
        at the next iteration boundary."""
        self.n_reserved -= 1
        r.blocks = n_blocks
        self.incoming.append(r)
        if not self.busy:
            self._schedule()
        elif self._run is not None:
            self._cut_run(self._run)

    def _join_incoming(self) -> None:
        for r in self.incoming:
            self._seq += 1
            r.seq = self._seq
            self._enter_decode(r)
        self.incoming.clear()

    def unreserve(self, n_blocks: int) -> None:
        """A reserved transfer will not arrive (its source failed): free its blocks."""
        self.n_reserved -= 1
        self._prefill_blocks -= n_blocks
        if not self.busy and (self.waiting or self.incoming):
            self._schedule()

    def release_blocks(self, n_blocks: int, r: Optional[Request] = None) -> None:
        """A handed-off request's KV has left this (prefill) instance: free its blocks
        (``r``'s prompt blocks stay in the prefix cache, if any, unreferenced)."""
        self._prefill_blocks -= n_blocks
        if self.prefix_cache is not None and r is not None:
            self._shared_blocks += self.prefix_cache.release(r.id)
        if not self.busy and self.waiting:
            self._schedule()

    def cached_prefix_tokens(self, request_id: int) -> int:
        """Tokens of the request's prompt prefix in this instance's prefix cache now (0
        without one), for routers. Evicts first what the running iteration displaced."""
        pc = self.prefix_cache
        if pc is None:
            return 0
        pc.fit(self.free_kv_blocks_after_iteration)
        return pc.cached_prefix_tokens(request_id)

    def check_drained(self) -> None:
        """Invariant at the end of a run: no work left, every KV block free."""
        if self.waiting or self.decoding or self.prefilling or self.busy or self.incoming or self.n_reserved:
            raise SimulationInvariantError(
                f"instance {self.index} ended with work left: {len(self.waiting)} waiting, "
                f"{len(self.decoding)} decoding, {len(self.prefilling)} prefilling"
            )
        if self._prefill_blocks != 0 or self._dec_blocks != 0 or self._shared_blocks != 0:
            raise SimulationInvariantError(
                f"instance {self.index} ended with KV blocks held "
                f"(prefill {self._prefill_blocks}, decode {self._dec_blocks}, shared {self._shared_blocks})"
            )
        if self.prefix_cache is not None:
            self.prefix_cache.check()
            if self.prefix_cache.held:
                raise SimulationInvariantError(
                    f"instance {self.index}: {len(self.prefix_cache.held)} requests still reference prefix-cache blocks"
                )
