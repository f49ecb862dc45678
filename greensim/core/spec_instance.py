"""Speculative decoding: a draft model proposes, the target model verifies (DSD).

A :class:`SpecInstance` serves one target model with continuous batching like
:class:`~greensim.core.instance.Instance` (FCFS queue, prefill-prioritised iterations
of whole prompts, paged KV cache, recompute preemption of the latest-admitted request),
but every decode iteration is a *speculative* iteration over the whole batch:

1. the draft model runs ``g`` autoregressive decode steps for the batch (``g`` from the
   gamma policy; each request drafts ``g_i = min(g, remaining_i - 1)`` tokens);
2. split mode: the draft tokens and their probabilities cross the link,
   ``sum_i g_i * bytes_per_draft_token`` bytes, taking ``bytes / bandwidth + 2 latency``
   (there and back: the accepted count returns);
3. the target verifies ``g_i + 1`` positions per request in one prefill-like pass over
   the existing KV (chunks ``(g_i + 1, kv_i)``);
4. request ``i`` emits ``a_i + 1`` tokens, ``a_i = min(G_i, g_i)`` with ``G_i`` the number
   of draft tokens accepted before the first rejection: ``P(G_i >= k) = alpha^k``
   (Leviathan et al. 2023, i.i.d. acceptance), so the mean tokens per target iteration
   is ``(1 - alpha^(g+1)) / (1 - alpha)``. With a per-position model
   (``alpha_by_position = (a_1, ..., a_gamma)``) draft token ``k`` is accepted with
   probability ``a_k`` given all earlier ones were, and the mean is
   ``1 + sum_k prod_{j<=k} a_j``.

The phases run one after the other (no overlap); one SimPy event per iteration. Two
options change that (both off by default; with either, the slot path below is used):

* **Pipelined drafting** (``SpecSetup.pipeline``, split mode only). When the target starts
  verifying step k, the draft GPU drafts step k+1 for every request that would still need
  draft tokens if all of step k's were accepted (``min(g, remaining - g_i - 2)`` tokens, from
  the draft's own continuation). At the next step a request uses that pre-draft iff step k
  accepted all its ``g_i`` tokens (i.i.d. acceptance: probability ``alpha^g_i``) and it holds at
  least the ``g_i`` now needed; the others are redrafted after the verify, once the running
  pre-draft has ended (no abort). The wasted pre-drafts stay charged to the draft GPU (and to
  their requests' draft shares). So an iteration lasts
  ``max(0, pre-draft end - now) + t_redraft + t_link + t_verify``: ``max(t_verify, t_draft) +
  t_link`` when every pre-draft is used, ``max(t_verify, t_draft) + t_draft + t_link`` when a
  token was rejected (constant latencies). The link stays on the critical path, and the bonus
  token is taken to agree with the pre-draft's first token (optimistic: engines such as PEARL,
  Liu et al. 2024, arXiv 2408.11850, verify it). A prompt's draft prefill also waits for the
  running pre-draft. ``spec_stats`` adds the pre-drafts, the fraction used, the iterations
  with no redraft and the wasted draft time and energy; the draft time share counts the draft
  time on the critical path.
* **Chunked prefill on the target** (``InstanceConfig.chunked_prefill``, as in
  :class:`~greensim.core.instance.Instance`, Sarathi / vLLM): each verify pass also carries prompt
  chunks within ``max_batched_tokens`` less its verify positions (prompts already started first,
  then the queue); with nothing running, chunks alone. The pass takes the target's time for all
  its chunks (verify ``(g_i + 1, kv_i)`` and prompt ``(q, prefilled)``) at the power of such an
  iteration; the draft prefills the chunks during the target pass (split) or after it
  (colocated). A prompt's KV (and its first lookahead) is reserved when its first chunk runs.

In split mode the draft runs on its own GPU (a :class:`DraftSide` with its own ledger) and
both GPUs hold a KV cache for every running request, so the block pool is the smaller
of the two caches (counted in tokens, the same on both sides). Colocated mode runs the
draft on the target's GPU (one ledger, weights and KV of both models in its memory).

Accepted counts come from a ``numpy.random.Generator`` owned by the instance (spawned
from the experiment seed, so it does not shift the arrival stream). The instance draws
``G`` in chunks; each time a request joins the batch it takes the next ``N`` of them, ``N``
the iterations it needs to finish if not preempted, and its ``k``-th iteration in the
batch uses the ``k``-th: i.i.d. draws, the same law as one draw per request per iteration.

Two paths compute the same iterations. With a constant gamma (no policy, or one with
``always_gamma_max``) and a target performance model whose verify time depends only on
sums over the batch (``verify_from_sums``, the roofline), a request's whole run is known
when it joins: its tokens and KV blocks per iteration are added to per-iteration totals
of the instance, its completion and its last few iterations (those drafting fewer than
gamma tokens) are filed under their iteration numbers, and its time and energy shares are
differences of running per-iteration accumulators. An iteration then costs O(1) plus its
short and completing requests, whatever the batch size. Otherwise (gamma policies such
as goodput, other performance models) the batch lives in slot arrays and each iteration
runs numpy over them. ``tests/property/test_dsd_invariants.py`` checks that both give the
same results.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Tuple

import numpy as np

from greensim.base.errors import SimulationInvariantError
from greensim.core.downtime import DownTime
from greensim.core.instance import InstanceConfig
from greensim.core.interfaces import BoundPerformance, EngineHost
from greensim.core.ledger import Ledger
from greensim.core.requests import Request

__all__ = ["GammaPolicy", "SpecSetup", "SpecInstance", "DraftSide", "expected_tokens_per_iteration"]


def expected_tokens_per_iteration(alpha: float, gamma: int) -> float:
    """Mean tokens emitted per target iteration, ``(1 - alpha^(gamma+1)) / (1 - alpha)``.

    Leviathan, Kalman and Matias, "Fast inference from transformers via speculative
    decoding", ICML 2023, eq. (1).
    """
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


def expected_tokens_per_position_model(alpha_by_position, gamma: int) -> float:
    """Mean tokens per target iteration with per-position acceptance ``a_1..a_gamma``:
    ``1 + sum_{k<=gamma} prod_{j<=k} a_j``."""
    return 1.0 + float(np.cumprod(np.asarray(alpha_by_position[:gamma], dtype=float)).sum())


class GammaPolicy(Protocol):
    """Chooses the number of draft tokens for the next speculative iteration."""

    def choose(
        self,
        n_batch: int,
        gamma_max: int,
        expected_tokens: Callable[[int], float],
        iteration_time_s: Callable[[int], float],
    ) -> int:
        """Return g in [0, gamma_max]; ``expected_tokens(g)`` is the mean tokens a request
        emits per iteration, ``iteration_time_s(g)`` the engine's estimate of its time [s].

        A policy whose choice is always ``gamma_max`` may say so with a class attribute
        ``always_gamma_max = True``: the engine then plans each request's run ahead."""
        ...


@dataclass
class SpecSetup:
    """Everything a :class:`SpecInstance` needs besides the target's config and model.

    Parameters
    ----------
    draft_perf : draft model's performance on the draft GPU (or the target GPU).
    split : draft on its own GPU (True) or on the target's GPU (False).
    draft_name : label of the draft GPU side.
    draft_gpu : draft GPU type name.
    alpha : per-token acceptance probability, in [0, 1).
    alpha_by_position : optional per-position acceptance ``a_1..a_gamma_max`` (replaces alpha).
    gamma_max : largest number of draft tokens per iteration.
    gamma_policy : a :class:`GammaPolicy`.
    bytes_per_draft_token : link payload per draft token [bytes].
    bandwidth_bps : link bandwidth [bytes/s] (split mode).
    latency_s : link latency, one way [s] (split mode).
    rng : this instance's random generator.
    pipeline : split mode: draft step k+1 on the draft GPU while the target verifies step k
        (see :class:`SpecInstance`); default False (one phase after the other).
    on_draft_failure : split mode, when the draft GPU fails: ``"fallback"`` (the target decodes
        plain autoregressively, one token per verify pass, until the draft GPU is repaired) or
        ``"stall"`` (the instance does nothing until then).
    failable : failures may strike this instance or its draft GPU (runs then take the slot path).
    """

    draft_perf: BoundPerformance
    split: bool
    draft_name: str
    draft_gpu: str
    alpha: float
    gamma_max: int
    gamma_policy: Any
    bytes_per_draft_token: float
    bandwidth_bps: float
    latency_s: float
    rng: np.random.Generator
    alpha_by_position: Optional[tuple] = None
    pipeline: bool = False
    on_draft_failure: str = "fallback"
    failable: bool = False

    def expected_tokens(self, g: int) -> float:
        """Mean tokens per target iteration for a request drafting ``g`` tokens."""
        if self.alpha_by_position is not None:
            return expected_tokens_per_position_model(self.alpha_by_position, g)
        return expected_tokens_per_iteration(self.alpha, g)


class DraftSide(DownTime):
    """The draft GPU of a split pair: a ledger and a view for the results tables."""

    def __init__(self, index: int, name: str, gpu: str, perf: BoundPerformance, ledger: Ledger, kv_blocks: int):
        self.index, self.perf, self.ledger = index, perf, ledger
        self.cfg = InstanceConfig(
            name=name,
            gpu=gpu,
            tp=1,
            kv_blocks=kv_blocks,
            block_tokens=1,
            max_batch_size=1,
            max_batched_tokens=1,
            chunked_prefill=False,
            watermark_blocks=0,
            mode="draft",
        )
        self.total_kv_blocks = kv_blocks
        self.n_iterations = 0
        self.n_preemptions = 0
        self.handoff = None
        self.target: Any = None  # its SpecInstance (set by the simulation)
        DownTime.__init__(self)

    def fail(self, now: float) -> None:
        """The draft GPU fails (its KV caches are lost; the target reacts, :meth:`SpecInstance.draft_failed`)."""
        self.mark_down(now)

    def recover(self, now: float) -> None:
        self.mark_up(now)

    def check_drained(self) -> None:
        return None


class SpecInstance(DownTime):
    """A target model instance that decodes speculatively (see the module docstring)."""

    #: allow the planned-run path where it applies (tests switch it off to compare)
    plan_runs = True

    def __init__(
        self,
        sim: "EngineHost",
        index: int,
        cfg: InstanceConfig,
        perf: BoundPerformance,
        ledger: Ledger,
        setup: SpecSetup,
    ):
        if setup.pipeline and (cfg.chunked_prefill or not setup.split):
            raise SimulationInvariantError(
                "pipelined drafting needs a split draft GPU and no chunked prefill (the config layer rejects this)"
            )
        self.sim, self.index, self.cfg, self.perf, self.ledger, self.setup = sim, index, cfg, perf, ledger, setup
        self.B = cfg.block_tokens
        self.total_kv_blocks = cfg.kv_blocks
        self.waiting: Deque[Request] = deque()
        self.running: List[Request] = []
        # KV blocks held (each side): all of them on the slot path; on the planned path
        # those of prompts in prefill, the running batch's being counted when asked
        self._held = 0
        self._seq = 0
        self.busy = False
        self.handoff = None
        self.draft: Optional[DraftSide] = None
        self.n_iterations = 0
        self.n_preemptions = 0
        self.n_in_transit = 0  # routed here, still on the network (counted in n_waiting)
        self.n_spec_iterations = 0  # target verify passes
        self.n_full_draws = 0  # request-iterations that drafted gamma_max tokens
        self.n_full_tokens = 0  # tokens those emitted
        # speculative statistics: request-iterations (verify steps), draft tokens proposed,
        # tokens emitted (accepted + 1 each), draft / link / verify time [s]
        self.n_verify_steps = 0
        self.n_drafted = 0
        self.n_emitted = 0
        self.draft_time_s = 0.0
        self.link_time_s = 0.0
        self.verify_time_s = 0.0
        self._plan: tuple = ()
        self._event: Any = None
        # failures: of the target (fail/recover) and of the split draft GPU
        DownTime.__init__(self)  # available, n_failures, down_intervals, down_s
        self._draft_stale = False  # the draft GPU lost its KV: rebuild it before speculating
        self.n_fallback_iterations = 0  # plain decoding passes while the draft GPU was down
        self._la = setup.gamma_max + 1  # lookahead tokens reserved at admission
        self._sum_ctx = 0  # sum over running requests of n_in + generated - 1
        self._g = setup.gamma_max
        # acceptance draws, drawn in chunks and handed out in consecutive segments:
        # G, and the cumulative tokens C[i] = sum_{j<i} (min(G_j, gamma_max) + 1)
        self._pool_G = np.zeros(0, dtype=np.int64)
        self._pool_C = np.zeros(1, dtype=np.int64)
        self._pool_c = np.zeros(0, dtype=np.int64)
        self._pool_p = 0
        # pipelined drafting (split mode): pre-drafted tokens per slot usable at the next step,
        # when the running pre-draft ends on the draft GPU, and its statistics
        self._pipe = self.pipelined = setup.pipeline
        self._pre_end = 0.0
        self._pipe_plan: tuple = ()
        self.n_predrafts = 0  # request-steps drafted ahead during a verify
        self.n_predrafts_used = 0  # of those, verified at the next step as drafted
        self.n_pipe_iterations = 0  # speculative iterations that needed draft tokens
        self.n_overlapped = 0  # of those, with every draft ready (no redraft after the verify)
        self._pre_total = [0.0, 0.0]  # draft time [s] and energy [J] of all pre-drafts
        self._used_pre = [0.0, 0.0]  # of the pre-drafts used
        # chunked prefill: admitted requests whose prompt is not finished, and the prompt
        # chunks (request, tokens) riding in the running iteration
        self._chunked = cfg.chunked_prefill
        self.prefilling: List[Request] = []
        self._chunks: List[Tuple[Request, int]] = []
        self._chunk_plan: tuple = ()
        pol = setup.gamma_policy
        self._planned = (
            self.plan_runs
            and not self._pipe
            and not self._chunked
            and not setup.failable
            and (pol is None or getattr(pol, "always_gamma_max", False))
            and getattr(perf, "verify_from_sums", False)
        )
        if self._planned:
            self._t = 0  # index of the next speculative iteration
            self._tok = np.zeros(1024, dtype=np.int64)  # tokens emitted by iteration t
            # t -> [(request, g_i < g, context, tokens)]
            self._short: Dict[int, List[Tuple[Request, int, int, int]]] = {}
            self._done: Dict[int, List[Request]] = {}  # t -> requests completing in iteration t
            self._cap_blocks = 0  # running batch: sum of blocks at each one's KV cap
            # running sums of per-request shares: target time and energy per verified
            # position, draft time and energy per request
            self._acc = [0.0, 0.0, 0.0, 0.0]
        else:
            # slot arrays of the running batch: columns n_in, n_out, generated, seq, blocks,
            # n_in - 1 + lookahead, n_in + n_out - 1 (the KV-token cap) ...
            self._slots = np.zeros((cfg.max_batch_size, 7), dtype=np.int64)
            # ... and target busy [s], target energy [J], draft busy [s], draft energy [J] shares
            self._F = np.zeros((cfg.max_batch_size, 4))
            self._pd = np.zeros(cfg.max_batch_size, dtype=np.int64)  # pre-drafted tokens per slot
            self._pds = np.zeros((cfg.max_batch_size, 2))  # and their draft time [s], energy [J] shares

    # ----------------------------------------------------------------- views
    @property
    def n_waiting(self) -> int:
        """Requests routed here that have not started: queued, or still on the network."""
        return len(self.waiting) + self.n_in_transit

    @property
    def n_running(self) -> int:
        return len(self.running)

    @property
    def _used(self) -> int:
        """KV blocks held by admitted requests (each side)."""
        if not self._planned:
            return self._held
        return self._held + self._running_blocks()

    @property
    def free_kv_blocks(self) -> int:
        return self.total_kv_blocks - self._used

    @property
    def _I(self) -> np.ndarray:
        """Running batch, one row per request in ``running`` order: n_in, n_out, generated,
        seq, blocks, n_in - 1 + lookahead, n_in + n_out - 1 (a copy on the planned path)."""
        if not self._planned:
            return self._slots
        rows = []
        for r in self.running:
            gen = self._generated_now(r)
            rows.append(
                (r.n_in, r.n_out, gen, r.seq, self._run_blocks(r, gen), r.n_in - 1 + self._la, r.n_in + r.n_out - 1)
            )
        return np.array(rows, dtype=np.int64).reshape(-1, 7)

    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.B)

    def _need(self, r: Request) -> int:
        """Blocks for a (re)prefill of ``r`` plus its next iteration's lookahead."""
        return self._blocks(min(r.n_in + r.generated + self._la, r.n_in + r.n_out - 1))

    def _take_draws(self, r: Request) -> tuple:
        """Hand ``r`` the acceptance draws ``G`` (leading accepted draft tokens out of
        gamma_max) for its run from now to completion if not preempted: the next ``N`` of
        the instance's pool, ``N`` the number of iterations to emit its remaining ``m``
        tokens. Sets ``r.spec_draws = (G, C, first index)``; returns (first, N, C[first])."""
        m = r.n_out - r.generated
        p = self._pool_p
        G, C = self._pool_G, self._pool_C
        if p + m > len(G):  # a run takes at most m draws
            s = self.setup
            k = max(4096, m)
            if s.alpha_by_position is not None:
                if s.gamma_max == 0:
                    new = np.zeros(k, dtype=np.int64)
                else:
                    ok = s.rng.random((k, s.gamma_max)) < np.asarray(s.alpha_by_position[: s.gamma_max])
                    new = ok.cumprod(axis=1).sum(axis=1)
            elif s.alpha > 0:
                new = s.rng.geometric(1.0 - s.alpha, size=k) - 1
            else:
                new = np.zeros(k, dtype=np.int64)
            G = np.concatenate((G[p:], new))  # segments handed out keep the old arrays
            self._pool_c = np.minimum(G, self._g) + 1
            C = np.zeros(len(G) + 1, dtype=np.int64)
            np.cumsum(self._pool_c, out=C[1:])
            self._pool_G, self._pool_C, p = G, C, 0
        base = int(C[p])
        e = int(C.searchsorted(base + m))  # first e with C[e] - C[p] >= m
        r.spec_draws = (G, C, p)
        r.spec_k = 0
        self._pool_p = e
        return p, e - p, base

    # ----------------------------------------------------------------- events
    def enqueue(self, r: Request) -> None:
        self.waiting.append(r)
        self.ledger.sample(self.sim.env.now, len(self.waiting))  # the running batch is unchanged
        if not self.busy:
            self._schedule()

    def _arm(self, delay: float) -> None:
        self._event = self.sim.env.wake(delay, self._on_event)

    def _on_event(self, ev) -> None:
        if ev is not self._event:
            return  # superseded (a failure)
        kind = self._plan[0]
        if kind == "catchup":
            self._finish_catchup()
        elif kind == "prefill":
            self._finish_prefill()
        elif self._planned:
            self._finish_planned()
        else:
            self._finish_spec()
        self._schedule()

    def _schedule(self) -> None:
        if self.draft is not None and (self._draft_stale or not self.draft.available) and self._draft_gate():
            return
        if self.waiting and not self._chunked and self._start_prefill():
            return
        if self.running and (self._start_planned() if self._planned else self._start_spec()):
            return
        if self._chunked and (self.waiting or self.prefilling) and self._start_prefill():
            return  # chunked prefill: prompt chunks alone when nothing is running
        self.busy = False
        self.ledger.sample(self.sim.env.now, len(self.waiting), 0)

    # ----------------------------------------------------------------- prefill
    def _start_prefill(self) -> bool:
        cfg = self.cfg
        budget = cfg.max_batched_tokens
        if self._planned:  # a lower bound first: each running request at its KV cap
            free, exact = self.total_kv_blocks - self._held - self._cap_blocks - cfg.watermark_blocks, False
        else:
            free, exact = self.total_kv_blocks - self._held - cfg.watermark_blocks, True
        chunks: List[Tuple[Request, int]] = []  # (request, tokens to prefill)
        if self._chunked:
            chunks = self._admit_chunks(budget)
        while not self._chunked and self.waiting and len(self.running) + len(chunks) < cfg.max_batch_size:
            r = self.waiting[0]
            q = r.n_in + r.generated
            nb = self._need(r)
            if q > budget:
                break
            if nb > free:
                if exact:
                    break
                free += self._cap_blocks - self._running_blocks()
                exact = True
                if nb > free:
                    break
            self.waiting.popleft()
            free -= nb
            budget -= q
            r.blocks = nb
            self._held += nb
            self._seq += 1
            r.seq = self._seq
            if not r.admitted:
                r.admitted = True
                self.sim.on_first_scheduled(r, self.sim.env.now)
            chunks.append((r, q))
        if not chunks:
            return False
        pc = [(q, r.prefilled) for r, q in chunks] if self._chunked else [(q, 0) for _, q in chunks]
        t_t = self.perf.iteration_time_s(pc, 0, 0)
        t_d = self.setup.draft_perf.iteration_time_s(pc, 0, 0) if self._draft_up else 0.0
        # pipelined drafting: the draft GPU starts the prompts when its running pre-draft ends
        off = max(0.0, self._pre_end - self.sim.env.now) if self._pipe else 0.0
        t = max(t_t, off + t_d) if self.setup.split else t_t + t_d
        self._plan = ("prefill", self.sim.env.now, chunks, t_t, t_d)
        self._pipe_plan = (off,)
        self.busy = True
        n_run = len(self.running) + (len(self.prefilling) if self._chunked else len(chunks))
        self.ledger.sample(self.sim.env.now, len(self.waiting), n_run)
        self._arm(t)
        return True

    def _finish_prefill(self) -> None:
        _, start, chunks, t_t, t_d = self._plan
        now = self.sim.env.now
        s = self.setup
        p_tok = sum(q for _, q in chunks)
        e_t = t_t * self.perf.power_w(p_tok, 0)
        e_d = t_d * s.draft_perf.power_w(p_tok, 0)
        self._book(
            start, t_t, e_t, t_d, e_d, 0.0, self._pipe_plan[0] if self._pipe else 0.0, "draft_prefill", "prefill"
        )
        join = self._join_planned if self._planned else self._join
        for r, q in chunks:
            w = q / p_tok
            self._share(r, t_t * w, e_t * w, t_d * w, e_d * w)
            if self._chunked:
                r.prefilled += q
                if r.prefilled < r.n_in + r.generated:
                    continue  # the prompt continues in a later iteration
                self.prefilling.remove(r)
            r.generated += 1
            if r.generated == 1:
                self.sim.on_first_token(r, now)
            if r.redo:
                self.sim.on_recomputed(r, self.index)
            if r.generated >= r.n_out:
                self._held -= r.blocks
                r.blocks = 0
                self.sim.on_complete(r, now)
            else:
                join(r)
        self.n_iterations += 1

    # ----------------------------------------------------------------- planned runs (constant gamma)
    def _join_planned(self, r: Request) -> None:
        """Plan ``r``'s run from now to completion: its tokens per iteration go into the
        instance's totals, its completion and short iterations under their indices."""
        t0, g = self._t, self._g
        m = r.n_out - r.generated  # tokens left
        a, N, base = self._take_draws(r)
        C = self._pool_C
        e = a + N
        end = t0 + N
        if end > len(self._tok):
            self._tok = np.concatenate((self._tok, np.zeros(max(len(self._tok), end), dtype=np.int64)))
        tok = self._tok
        # iterations in which r drafts fewer than g tokens (remaining - 1 < g): the last few
        lo = max(a, e - g - 1)
        tail = C[lo : e + 1].tolist()  # tail[i] = C[lo + i]
        tok[t0:end] += self._pool_c[a:e]
        tok[end - 1] -= tail[-1] - base - m  # the last iteration emits what is left
        ctx0 = r.n_in + r.generated - 1
        short = self._short
        j = N - 1
        while j >= 0:
            prev = tail[a + j - lo] - base  # tokens emitted before iteration j
            rem = m - prev
            if rem > g:
                break
            ent = (r, rem - 1, ctx0 + prev, min(tail[a + j + 1 - lo] - base, m) - prev)
            lst = short.get(t0 + j)
            if lst is None:
                short[t0 + j] = [ent]
            else:
                lst.append(ent)
            j -= 1
        fin = self._done.get(end - 1)
        if fin is None:
            self._done[end - 1] = [r]
        else:
            fin.append(r)
        r.spec_traj = (t0, r.generated, C, a, N)
        acc = self._acc
        r.spec_base = (acc[0], acc[1], acc[2], acc[3])
        self.running.append(r)
        self._held -= r.blocks  # now counted from its generated tokens
        r.blocks = 0
        self._cap_blocks += self._blocks(r.n_in + r.n_out - 1)
        self._sum_ctx += ctx0

    def _generated_now(self, r: Request) -> int:
        """Tokens generated by a running request on the planned path, now."""
        t0, gen0, C, a, _ = r.spec_traj
        return gen0 + int(C[a + self._t - t0]) - int(C[a])

    def _run_blocks(self, r: Request, gen: int) -> int:
        return self._blocks(min(r.n_in - 1 + self._la + gen, r.n_in + r.n_out - 1))

    def _running_blocks(self) -> int:
        return sum(self._run_blocks(r, self._generated_now(r)) for r in self.running)

    def _settle_planned(self, r: Request) -> None:
        """Move the shares accumulated since ``r`` joined onto it."""
        a, b = self._acc, r.spec_base
        q = self._g + 1
        r.busy_s += q * (a[0] - b[0])
        r.energy_j += q * (a[1] - b[1])
        if self.draft is not None:
            self.sim.dsd_draft_busy_s[r.id] += a[2] - b[2]
            self.sim.dsd_draft_energy_j[r.id] += a[3] - b[3]
        else:
            r.busy_s += a[2] - b[2]
            r.energy_j += a[3] - b[3]

    def _start_planned(self) -> bool:
        g = self._g
        t = self._t
        if self._held + self._cap_blocks > self.total_kv_blocks:
            # Reserved blocks (lookahead included) cover every peak unless they exceed the cache.
            while self._used > self.total_kv_blocks:
                peak = 0
                for r in self.running:
                    gen = self._generated_now(r)
                    peak += self._blocks(r.n_in + gen + min(g, r.n_out - gen - 1))
                if peak <= self.total_kv_blocks:
                    break
                self._preempt_planned()
                if not self.running:
                    return False
        n = len(self.running)
        ctx_sum = self._sum_ctx
        q = g + 1
        p_tok, s_qc, s_qq = n * q, q * ctx_sum, n * q * (q + 1)
        ent = self._short.get(t)
        ns = 0
        steps = g
        if ent:
            ns = len(ent)
            gmax = 0
            for _, gi, ctx, _ in ent:
                p_tok += gi - g
                s_qc += (gi - g) * ctx
                s_qq += (gi + 1) * (gi + 2) - q * (q + 1)
                if gi > gmax:
                    gmax = gi
            if ns == n:
                steps = gmax
        n_draft = p_tok - n
        s = self.setup
        t_v = self.perf.verify_sums_time_s(p_tok, ctx_sum, s_qc, s_qq, n)
        t_d = s.draft_perf.decode_run_time_s(n, ctx_sum + n, steps) if steps else 0.0
        t_l = 0.0
        if s.split and steps:
            t_l = n_draft * s.bytes_per_draft_token / s.bandwidth_bps + 2.0 * s.latency_s
        gs = _PlannedGammas(self, g) if ns else None
        now = self.sim.env.now
        self._plan = ("spec", now, gs, ent, t_d, t_l, t_v, steps, g, n_draft, ns)
        self.busy = True
        self.ledger.sample(now, len(self.waiting), n)
        self._arm(t_d + t_l + t_v)
        return True

    def _finish_planned(self) -> None:
        _, start, _, ent, t_d, t_l, t_v, steps, g, n_draft, ns = self._plan
        now = self.sim.env.now
        n = len(self.running)
        n_ver = n_draft + n
        e_v, e_d = self._spec_energy(n_ver, n, t_v, t_d, steps)
        if self.draft is not None:  # as _book: draft, link, then target
            if t_d > 0:
                self.draft.ledger.busy(start, t_d, e_d, "draft")
            self.ledger.busy(start + t_d + t_l, t_v, e_v, "verify")
        else:
            if t_d > 0:
                self.ledger.busy(start, t_d, e_d, "draft")
            self.ledger.busy(start + t_d, t_v, e_v, "verify")
        x, y = t_v / n_ver, e_v / n_ver  # per verified position
        a = self._acc
        a[0] += x
        a[1] += y
        a[2] += t_d / n
        a[3] += e_d / n
        t = self._t
        tok = int(self._tok[t])
        full_tok = tok
        if ent:
            for r, gi, _, tk in ent:
                d = gi - g
                r.busy_s += d * x
                r.energy_j += d * y
                full_tok -= tk
            del self._short[t]
        self.n_full_draws += n - ns
        self.n_full_tokens += full_tok
        self._count(n, n_draft, tok, t_d, t_l, t_v)
        self._sum_ctx += tok
        self._t = t + 1
        self.n_iterations += 1
        self.n_spec_iterations += 1
        if self.draft is not None and steps:
            self.draft.n_iterations += steps
        done = self._done.pop(t, None)
        if done:
            for r in done:
                self._settle_planned(r)
                self.running.remove(r)
                r.generated = r.n_out
                r.spec_traj = None  # type: ignore[assignment]  # drop the run's arrays; read only while planned
                self._cap_blocks -= self._blocks(r.n_in + r.n_out - 1)
                self._sum_ctx -= r.n_in + r.n_out - 1
                self.sim.on_complete(r, now)

    def _preempt_planned(self) -> None:
        r = max(self.running, key=lambda x: x.seq)
        gen = self._generated_now(r)
        t = self._t
        t0, _, C, a, N = r.spec_traj
        j, end = t - t0, t0 + N
        self._tok[t:end] -= C[a + j + 1 : a + N + 1] - C[a + j : a + N]  # unplan the rest of its run
        self._tok[end - 1] += int(C[a + N]) - int(C[a]) - (r.n_out - r.spec_traj[1])
        for u in range(max(t, end - self._g - 1), end):
            lst = self._short.get(u)
            if lst:
                lst[:] = [e for e in lst if e[0] is not r]
                if not lst:
                    del self._short[u]
        self._done[end - 1].remove(r)
        if not self._done[end - 1]:
            del self._done[end - 1]
        self._settle_planned(r)
        self.running.remove(r)
        self._cap_blocks -= self._blocks(r.n_in + r.n_out - 1)
        self._sum_ctx -= r.n_in + gen - 1
        r.generated = gen
        r.spec_traj = None  # type: ignore[assignment]  # drop the run's arrays; read only while planned
        self.waiting.appendleft(r)
        self.n_preemptions += 1
        self.sim.on_preempted(r)

    # ----------------------------------------------------------------- running batch (slots)
    # Otherwise the running batch lives in slot arrays (one row per request) so that a
    # speculative iteration costs a fixed number of numpy operations, not a Python loop
    # per request.
    def _join(self, r: Request) -> None:
        self._take_draws(r)
        i = len(self.running)
        self.running.append(r)
        self._slots[i] = (r.n_in, r.n_out, r.generated, r.seq, r.blocks, r.n_in - 1 + self._la, r.n_in + r.n_out - 1)
        self._F[i] = 0.0
        self._pd[i] = 0
        self._pds[i] = 0.0
        self._sum_ctx += r.n_in + r.generated - 1

    def _leave(self, i: int) -> Request:
        """Take slot ``i`` out of the batch, moving its shares and tokens onto the request."""
        r = self.running[i]
        I, F = self._slots, self._F
        r.generated = int(I[i, 2])
        self._sum_ctx -= r.n_in + r.generated - 1
        r.busy_s += float(F[i, 0])
        r.energy_j += float(F[i, 1])
        if self.draft is not None:
            self.sim.dsd_draft_busy_s[r.id] += float(F[i, 2])
            self.sim.dsd_draft_energy_j[r.id] += float(F[i, 3])
        else:
            r.busy_s += float(F[i, 2])
            r.energy_j += float(F[i, 3])
        self._held -= int(I[i, 4])
        r.blocks = 0
        last = len(self.running) - 1
        if i != last:
            self.running[i] = self.running[last]
            I[i] = I[last]
            F[i] = F[last]
            self._pd[i] = self._pd[last]
            self._pds[i] = self._pds[last]
        self.running.pop()
        return r

    # ----------------------------------------------------------------- speculative iteration
    def _gammas(self, g: int) -> Optional[np.ndarray]:
        """Draft tokens per request, ``min(g, remaining - 1)``; None when all equal ``g``."""
        n = len(self.running)
        I = self._slots
        rem = I[:n, 1] - I[:n, 2]
        if int(rem.min()) > g:
            return None
        return np.minimum(rem - 1, g)

    def _time_parts(self, gs: Optional[np.ndarray], g: int) -> tuple:
        s = self.setup
        n = len(self.running)
        ctx_sum = self._sum_ctx  # tokens with KV: prompt + generated - 1, summed
        if gs is None:
            steps, n_draft = g, n * g
            t_v = self.perf.verify_uniform_time_s(n, g + 1, ctx_sum)
        else:
            steps, n_draft = int(gs.max()), int(gs.sum())
            I = self._slots
            t_v = self.perf.verify_time_s(gs + 1, I[:n, 0] + I[:n, 2] - 1)
        t_d = s.draft_perf.decode_run_time_s(n, ctx_sum + n, steps) if steps else 0.0
        t_l = 0.0
        if s.split and steps:
            t_l = n_draft * s.bytes_per_draft_token / s.bandwidth_bps + 2.0 * s.latency_s
        return t_d, t_l, t_v, steps, n_draft

    def _start_spec(self) -> bool:
        s = self.setup
        g = s.gamma_max
        if not self._draft_up:
            g = 0  # the draft GPU is down: plain decoding (fallback)
        elif s.gamma_policy is not None:
            g = s.gamma_policy.choose(
                len(self.running),
                s.gamma_max,
                s.expected_tokens,
                lambda x: sum(self._time_parts(self._gammas(x), x)[:3]),
            )
            if not (0 <= g <= s.gamma_max):
                raise SimulationInvariantError(f"gamma policy returned {g}; valid 0..{s.gamma_max}")
        gs = self._gammas(g)
        # Reserved blocks (lookahead included) cover every peak unless they exceed the cache.
        while self._held > self.total_kv_blocks:
            n = len(self.running)
            I = self._slots
            peak = I[:n, 0] + I[:n, 2] + (g if gs is None else gs)
            if int((-(-peak // self.B)).sum()) <= self.total_kv_blocks:
                break
            self._preempt()
            if not self.running:
                return False
            gs = self._gammas(g)
        t_d, t_l, t_v, steps, n_draft = self._time_parts(gs, g)
        n = len(self.running)
        t_x = 0.0  # chunked prefill: the draft's prefill of the chunks beyond the target pass
        if self._pipe:
            t_d = self._pipe_start(gs, g, steps)
        elif self._chunked:
            t_v, t_x = self._chunk_start(gs, g, n_draft + n, t_v)
        drawn = np.empty(n, dtype=np.int64)
        if not self._draft_up:
            drawn[:] = 0  # no draft tokens: no draws used
            self.n_fallback_iterations += 1
        else:
            for i, r in enumerate(self.running):  # each request's next draw
                drawn[i] = r.spec_draws[0][r.spec_draws[2] + r.spec_k]
                r.spec_k += 1
        self._plan = ("spec", self.sim.env.now, gs, drawn, t_d, t_l, t_v, steps, g, n_draft)
        self.busy = True
        self.ledger.sample(self.sim.env.now, len(self.waiting), n + len(self.prefilling))
        self._arm(t_d + t_l + t_v + t_x)
        return True

    def _finish_spec(self) -> None:
        _, start, gs, drawn, t_d, t_l, t_v, steps, g, n_draft = self._plan
        now = self.sim.env.now
        n = len(self.running)
        n_ver = n_draft + n
        I, F = self._slots, self._F
        if self._pipe:
            e_v, _ = self._spec_energy(n_ver, n, t_v, 0.0, 0)
            self._pipe_finish(start, t_d, t_l, t_v, e_v, drawn, gs, g)
        elif self._chunks:
            e_v, e_d = self._chunk_finish(start, t_d, t_l, t_v, n_ver, n, steps)
        else:
            e_v, e_d = self._spec_energy(n_ver, n, t_v, t_d, steps)
            self._book(start, t_v, e_v, t_d, e_d, t_l)
            F[:n, 2:] += (t_d / n, e_d / n)
        if self._chunks:  # the verify positions' part of a pass shared with prompt chunks
            f = n_ver / (n_ver + sum(q for _, q in self._chunks))
            tv, ev = t_v * f, e_v * f
        else:
            tv, ev = t_v, e_v
        if gs is None:  # every request verified g + 1 positions
            F[:n, :2] += (tv / n, ev / n)
            tok = np.minimum(drawn, g) + 1
            n_tok = int(tok.sum())
            self.n_full_draws += n
            self.n_full_tokens += n_tok
        else:
            w = (gs + 1) / n_ver
            F[:n, 0] += tv * w
            F[:n, 1] += ev * w
            tok = np.minimum(drawn, gs) + 1
            n_tok = int(tok.sum())
            full = gs == g
            self.n_full_draws += int(full.sum())
            self.n_full_tokens += int(tok[full].sum())
        I[:n, 2] += tok
        self._sum_ctx += n_tok
        self._count(n, n_draft, n_tok, t_d, t_l, t_v)
        gen = I[:n, 2]
        blk = (np.minimum(I[:n, 5] + gen, I[:n, 6]) + (self.B - 1)) // self.B
        self._held += int(blk.sum()) - int(I[:n, 4].sum())
        I[:n, 4] = blk
        for i in np.flatnonzero(gen >= I[:n, 1])[::-1].tolist():
            r = self._leave(i)
            self.sim.on_complete(r, now)
        self.n_iterations += 1
        self.n_spec_iterations += 1
        if self.draft is not None and steps:
            self.draft.n_iterations += steps
        if self._chunks:
            self._finish_chunks(now)

    # ----------------------------------------------------------------- pipelined drafting
    def _draft_run(self, n: int, ctx0: int, k: int) -> Tuple[float, float]:
        """Time [s] and energy [J] of ``k`` draft decode steps of ``n`` sequences (as :meth:`_spec_energy`)."""
        dp = self.setup.draft_perf
        t = dp.decode_run_time_s(n, ctx0, k)
        return t, (dp.decode_run_energy_j(n, ctx0, k) if dp.power_varies else t * dp.decode_power_w)

    def _pipe_start(self, gs: Optional[np.ndarray], g: int, steps: int) -> float:
        """Plan the draft GPU's part of a pipelined iteration; return the time from now until the
        draft tokens can leave for the target [s].

        Request ``i`` verifies ``g_i`` draft tokens. Its pre-draft (drafted during the last verify,
        assuming all of that step's tokens accepted) is used if that step accepted all its tokens
        and drafted at least ``g_i``; the others are redrafted now, after the running pre-draft
        ends (no abort). The wait is ``max(0, pre-draft end - now) + redraft time``. When the
        target starts verifying, the draft GPU drafts the next step for every request that will
        still need tokens if all of this step's are accepted: ``min(g, remaining - g_i - 2)``."""
        n = len(self.running)
        I = self._slots
        need = np.full(n, g, dtype=np.int64) if gs is None else gs
        pd = self._pd[:n]
        ctx = I[:n, 0] + I[:n, 2] - 1
        now = self.sim.env.now
        re = (need > 0) & (pd < need)
        n_re = int(re.sum())
        wait = max(0.0, self._pre_end - now) if steps else 0.0
        t_re = e_re = 0.0
        if n_re:
            c = int(ctx[re].sum())
            t_re, e_re = self._draft_run(n_re, c + n_re, int(need[re].max()))
        used = (need > 0) & ~re
        self.n_predrafts_used += int(used.sum())
        if steps:
            self.n_pipe_iterations += 1
            self.n_overlapped += n_re == 0
        gp = np.maximum(np.minimum(g, I[:n, 1] - I[:n, 2] - need - 2), 0)  # next step, all accepted
        pm = gp > 0
        n_pre = int(pm.sum())
        t_pre = e_pre = 0.0
        if n_pre:
            c = int((ctx + need + 1)[pm].sum())
            t_pre, e_pre = self._draft_run(n_pre, c + n_pre, int(gp.max()))
        self._pipe_plan = (wait, re, n_re, t_re, e_re, used, gp, pm, n_pre, t_pre, e_pre)
        return wait + t_re

    def _pipe_finish(self, start, t_d, t_l, t_v, e_v, drawn, gs, g) -> None:
        """Book a pipelined iteration: the redraft, the target's verify, and the pre-draft of the
        next step (on the draft GPU from the verify's start); keep the pre-drafts still valid."""
        wait, re, n_re, t_re, e_re, used, gp, pm, n_pre, t_pre, e_pre = self._pipe_plan
        n = len(self.running)
        F, pds = self._F, self._pds
        v0 = start + t_d + t_l
        dl = self.draft.ledger  # type: ignore[union-attr]  # pipelining needs a split draft GPU
        if n_re:
            dl.busy(start + wait, t_re, e_re, "redraft")
            F[:n, 2][re] += t_re / n_re
            F[:n, 3][re] += e_re / n_re
        self.ledger.busy(v0, t_v, e_v, "verify")
        self._used_pre[0] += float(pds[:n, 0][used].sum())
        self._used_pre[1] += float(pds[:n, 1][used].sum())
        need = np.full(n, g, dtype=np.int64) if gs is None else gs
        ok = pm & (drawn >= need)  # every token of this step accepted: the pre-draft stands
        self._pd[:n] = np.where(ok, gp, 0)
        if n_pre:
            dl.busy(v0, t_pre, e_pre, "predraft")
            self._pre_end = v0 + t_pre
            self.n_predrafts += n_pre
            self._pre_total[0] += t_pre
            self._pre_total[1] += e_pre
            x, y = t_pre / n_pre, e_pre / n_pre
            F[:n, 2][pm] += x
            F[:n, 3][pm] += y
            pds[:n] = 0.0
            pds[:n][pm] = (x, y)

    # ----------------------------------------------------------------- chunked prefill
    def _admit_chunks(self, budget: int) -> List[Tuple[Request, int]]:
        """Chunked prefill (Sarathi / vLLM, as :class:`~greensim.core.instance.Instance`): prompts
        already started first, then queued requests, in chunks filling ``budget`` tokens. A request's
        KV for its whole prompt and first lookahead is reserved when its first chunk is scheduled."""
        cfg = self.cfg
        chunks: List[Tuple[Request, int]] = []
        for r in self.prefilling:
            if budget <= 0:
                break
            q = min(budget, r.n_in + r.generated - r.prefilled)
            chunks.append((r, q))
            budget -= q
        free = self.total_kv_blocks - self._held - cfg.watermark_blocks
        while self.waiting and budget > 0 and len(self.running) + len(self.prefilling) < cfg.max_batch_size:
            r = self.waiting[0]
            nb = self._need(r)
            if nb > free:
                break
            self.waiting.popleft()
            free -= nb
            r.blocks = nb
            r.prefilled = 0
            self._held += nb
            self._seq += 1
            r.seq = self._seq
            if not r.admitted:
                r.admitted = True
                self.sim.on_first_scheduled(r, self.sim.env.now)
            self.prefilling.append(r)
            q = min(budget, r.n_in + r.generated)
            chunks.append((r, q))
            budget -= q
        return chunks

    def _chunk_start(self, gs: Optional[np.ndarray], g: int, n_ver: int, t_v: float) -> Tuple[float, float]:
        """Add prompt chunks to a verify pass within the token budget (verify positions first).
        Returns the target pass's time [s] (verify positions and chunks in one pass) and the time
        the draft's prefill of the chunks adds beyond it [s]: split, it runs on the draft GPU during
        the target pass (``max(0, t_draft_prefill - t_pass)``); colocated, after it."""
        budget = self.cfg.max_batched_tokens - n_ver
        chunks = self._admit_chunks(budget) if budget > 0 and (self.waiting or self.prefilling) else []
        self._chunks = chunks
        if not chunks:
            return t_v, 0.0
        n = len(self.running)
        I = self._slots
        q = [g + 1] * n if gs is None else (gs + 1).tolist()
        pc = [(x, r.prefilled) for r, x in chunks]
        allc = list(zip(q, (I[:n, 0] + I[:n, 2] - 1).tolist())) + pc
        t_p = self.perf.iteration_time_s(allc, 0, 0)
        t_dp = self.setup.draft_perf.iteration_time_s(pc, 0, 0)
        self._chunk_plan = (allc, t_dp)
        return t_p, (max(0.0, t_dp - t_p) if self.setup.split else t_dp)

    def _chunk_finish(self, start, t_d, t_l, t_p, n_ver, n, steps) -> Tuple[float, float]:
        """Book a verify pass carrying prompt chunks: the draft's decode steps, the target pass at
        the power of an iteration of those chunks, and the draft's prefill of the chunks; the
        chunks' requests take their shares. Returns the pass's and the draft steps' energy [J]."""
        allc, t_dp = self._chunk_plan
        s = self.setup
        _, e_d = self._spec_energy(n_ver, n, t_p, t_d, steps)
        e_p = t_p * self.perf.iteration_power_w(allc, 0, 0, t_p)
        p_pr = sum(q for _, q in self._chunks)
        e_dp = t_dp * s.draft_perf.power_w(p_pr, 0)
        self._book(start, t_p, e_p, t_d, e_d, t_l, pt="verify_prefill")
        if self.draft is not None:
            self.draft.ledger.busy(start + t_d + t_l, t_dp, e_dp, "draft_prefill")
        else:
            self.ledger.busy(start + t_d + t_p, t_dp, e_dp, "draft_prefill")
        if n:
            self._F[:n, 2:] += (t_d / n, e_d / n)
        P = n_ver + p_pr
        for r, q in self._chunks:
            self._share(r, t_p * q / P, e_p * q / P, t_dp * q / p_pr, e_dp * q / p_pr)
        return e_p, e_d

    def _finish_chunks(self, now: float) -> None:
        """Advance the prompt chunks of the iteration just done; finished prompts emit their first
        token and join the running batch."""
        chunks, self._chunks = self._chunks, []
        for r, q in chunks:
            r.prefilled += q
            if r.prefilled < r.n_in + r.generated:
                continue  # the prompt continues in a later iteration
            self.prefilling.remove(r)
            r.generated += 1
            if r.generated == 1:
                self.sim.on_first_token(r, now)
            if r.generated >= r.n_out:
                self._held -= r.blocks
                r.blocks = 0
                self.sim.on_complete(r, now)
            else:
                self._join(r)

    def _count(self, n: int, n_draft: int, n_tok: int, t_d: float, t_l: float, t_v: float) -> None:
        """Add one speculative iteration to the statistics of :meth:`spec_stats`."""
        self.n_verify_steps += n
        self.n_drafted += n_draft
        self.n_emitted += n_tok
        self.draft_time_s += t_d
        self.link_time_s += t_l
        self.verify_time_s += t_v

    def spec_stats(self) -> Dict[str, float]:
        """Acceptance (accepted / drafted draft tokens), mean tokens per verify step (one
        request's emitted tokens per target iteration, bonus token included), and the draft,
        link and verify shares of the speculative iterations' time."""
        acc = self.n_emitted - self.n_verify_steps
        tot = self.draft_time_s + self.link_time_s + self.verify_time_s
        out = {
            "spec_verify_steps": float(self.n_verify_steps),
            "spec_drafted_tokens": float(self.n_drafted),
            "spec_accepted_tokens": float(acc),
            "spec_acceptance": acc / self.n_drafted if self.n_drafted else float("nan"),
            "spec_tokens_per_verify": self.n_emitted / self.n_verify_steps if self.n_verify_steps else float("nan"),
            "spec_draft_time_share": self.draft_time_s / tot if tot > 0 else float("nan"),
            "spec_link_time_share": self.link_time_s / tot if tot > 0 else float("nan"),
            "spec_verify_time_share": self.verify_time_s / tot if tot > 0 else float("nan"),
        }
        if self._pipe:
            # pipelined drafting: the draft time above is the part on the critical path
            out.update(
                {
                    "spec_predrafts": float(self.n_predrafts),
                    "spec_predraft_used_frac": self.n_predrafts_used / self.n_predrafts
                    if self.n_predrafts
                    else float("nan"),
                    "spec_overlapped_iteration_frac": self.n_overlapped / self.n_pipe_iterations
                    if self.n_pipe_iterations
                    else float("nan"),
                    "spec_wasted_draft_s": self._pre_total[0] - self._used_pre[0],
                    "spec_wasted_draft_j": self._pre_total[1] - self._used_pre[1],
                }
            )
        return out

    def _preempt(self) -> None:
        n = len(self.running)
        r = self._leave(int(np.argmax(self._slots[:n, 3])))
        self.waiting.appendleft(r)
        self.n_preemptions += 1
        self.sim.on_preempted(r)

    # ----------------------------------------------------------------- accounting
    def _spec_energy(self, n_ver: int, n: int, t_v: float, t_d: float, steps: int) -> tuple:
        """(verify, draft) energy of a speculative iteration [J], before its tokens are booked.

        Verify at the target model's verify power (memory-bound like decode, not prefill power);
        the draft's ``steps`` decode iterations of ``n`` sequences as the draft model's decode run.
        """
        s = self.setup
        e_v = t_v * self.perf.verify_power_w(n_ver, self._sum_ctx, n, t_v)
        if s.draft_perf.power_varies and steps:
            e_d = s.draft_perf.decode_run_energy_j(n, self._sum_ctx + n, steps)
        else:
            e_d = t_d * s.draft_perf.decode_power_w
        return e_v, e_d

    def _book(
        self,
        start: float,
        t_t: float,
        e_t: float,
        t_d: float,
        e_d: float,
        t_l: float,
        d_off: float = 0.0,
        pd: str = "draft",
        pt: str = "verify",
    ) -> None:
        """Ledger entries: draft first (from ``start + d_off``), then the link, then the target
        (colocated: in turn); ``pd`` and ``pt`` name the draft's and the target's phases."""
        if self.draft is not None:
            if t_d > 0:
                self.draft.ledger.busy(start + d_off, t_d, e_d, pd)
            if self._plan[0] == "prefill":
                self.ledger.busy(start, t_t, e_t, pt)  # both prompts at once, two GPUs
            else:
                self.ledger.busy(start + t_d + t_l, t_t, e_t, pt)
        else:
            if t_d > 0:
                self.ledger.busy(start, t_d, e_d, pd)
            self.ledger.busy(start + t_d, t_t, e_t, pt)

    def _share(self, r: Request, s_t: float, j_t: float, s_d: float, j_d: float) -> None:
        r.busy_s += s_t
        r.energy_j += j_t
        if self.draft is not None:
            self.sim.dsd_draft_busy_s[r.id] += s_d
            self.sim.dsd_draft_energy_j[r.id] += j_d
        else:
            r.busy_s += s_d
            r.energy_j += j_d

    # ----------------------------------------------------------------- failures (GPU aging)
    # Runs that may fail take the slot path (``SpecSetup.failable``); only it is handled here.
    @property
    def _draft_up(self) -> bool:
        return self.draft is None or self.draft.available

    def _draft_gate(self) -> bool:
        """At a boundary with the draft GPU down or its KV lost: stall (True), go on without
        it (False), or first rebuild the draft KV of the running batch (True)."""
        if not self.draft.available:  # type: ignore[union-attr]
            if self.setup.on_draft_failure == "stall":
                self.busy = False
                self.ledger.sample(self.sim.env.now, len(self.waiting), 0)
                return True
            return False
        if not self.running:
            self._draft_stale = False
            return False
        # The draft GPU is back without the batch's KV: one draft prefill over each running
        # request's context rebuilds it (lost work) before speculation resumes.
        n = len(self.running)
        ctx = (self._slots[:n, 0] + self._slots[:n, 2] - 1).tolist()
        dp = self.setup.draft_perf
        t_c = dp.iteration_time_s([(c, 0) for c in ctx], 0, 0)
        self._plan = ("catchup", self.sim.env.now, t_c, t_c * dp.power_w(sum(ctx), 0), ctx)
        self.busy = True
        self._arm(t_c)
        return True

    def _finish_catchup(self, end: Optional[float] = None) -> None:
        _, start, t_c, e_c, ctx = self._plan
        dt = t_c if end is None else min(end - start, t_c)
        e = e_c * dt / t_c if t_c > 0 else 0.0
        d = self.draft
        d.ledger.busy(start, dt, e, "catchup")  # type: ignore[union-attr]
        tot = sum(ctx)
        for r, c in zip(self.running, ctx):
            self.sim.on_draft_lost_work(r, d.index, dt * c / tot, e * c / tot)  # type: ignore[union-attr]
        if end is None:
            self._draft_stale = False
            d.n_iterations += 1  # type: ignore[union-attr]

    def _book_partial(self, now: float) -> None:
        """A failure at ``now`` interrupts the running iteration: book its work so far (lost)."""
        kind, start = self._plan[0], self._plan[1]
        dt = now - start
        split = self.draft is not None
        di = self.draft.index if split else self.index  # type: ignore[union-attr]
        dled = self.draft.ledger if split else self.ledger  # type: ignore[union-attr]
        s = self.setup
        if kind == "catchup":
            self._finish_catchup(end=now)
            return
        if kind == "prefill":
            _, _, chunks, t_t, t_d = self._plan
            p_tok = sum(q for _, q in chunks)
            td = min(dt, t_d)
            tt = min(dt, t_t) if split else min(max(dt - t_d, 0.0), t_t)
            et, ed = tt * self.perf.power_w(p_tok, 0), td * s.draft_perf.power_w(p_tok, 0)
            ws = [q / p_tok for _, q in chunks]
            reqs = [r for r, _ in chunks]
            tv_shares = ws
            dv_shares = ws
        else:
            _, _, gs, _, t_d, t_l, t_v, steps, g, n_draft = self._plan
            n = len(self.running)
            n_ver = n_draft + n
            e_v, e_d = self._spec_energy(n_ver, n, t_v, t_d, steps)
            td = min(dt, t_d)
            tt = min(max(dt - t_d - t_l, 0.0), t_v)
            ed = e_d * td / t_d if t_d > 0 else 0.0
            et = e_v * tt / t_v if t_v > 0 else 0.0
            reqs = list(self.running)
            gsa = np.full(n, g) if gs is None else np.asarray(gs)
            tv_shares = ((gsa + 1) / n_ver).tolist()
            dv_shares = [1.0 / n] * n
        dstart = start
        tstart = start if (split and kind == "prefill") else start + (t_d if kind == "prefill" else t_d + t_l)
        if td > 0:
            dled.busy(dstart, td, ed, "lost")
        if tt > 0:
            self.ledger.busy(tstart, tt, et, "lost")
        for r, wt, wd in zip(reqs, tv_shares, dv_shares):
            self.sim.on_lost_work(r, self.index, tt * wt, et * wt)
            if split:
                self.sim.on_draft_lost_work(r, di, td * wd, ed * wd)
            else:
                self.sim.on_lost_work(r, self.index, td * wd, ed * wd)

    def fail(self) -> List[Tuple[Request, int]]:
        """The target GPU fails: book the interrupted iteration as lost work, drop every KV
        cache and return all requests with the tokens of KV each lost, in request-id order
        (they restart elsewhere, as :meth:`Instance.fail <greensim.core.instance.Instance.fail>`)."""
        now = self.sim.env.now
        out: Dict[int, Tuple[Request, int]] = {}
        if self.busy:
            self._book_partial(now)
            if self._plan[0] == "prefill":
                for r, _ in self._plan[2]:
                    out[r.id] = (r, 0)
        while self.running:
            r = self._leave(len(self.running) - 1)
            out[r.id] = (r, r.n_in + r.generated - 1)
        for r in self.waiting:
            out[r.id] = (r, 0)
        for r, _ in out.values():
            r.blocks = 0
        self.waiting.clear()
        self._held = 0
        self._sum_ctx = 0
        self._draft_stale = False
        self.busy = False
        self._event = None
        self._plan = ()
        self.mark_down(now)
        self.ledger.sample(now, 0, 0)
        return [out[i] for i in sorted(out)]

    def recover(self) -> None:
        """Back in service after a repair (the target; the draft GPU has its own row)."""
        self.mark_up(self.sim.env.now)

    def draft_failed(self) -> None:
        """The draft GPU failed: its KV is lost. A speculative iteration still drafting (or
        sending draft tokens) is abandoned, its draft work booked as lost; a prefill's draft
        part stops there. Then fall back to plain decoding or stall (``on_draft_failure``)."""
        if not self.available:
            return
        self._draft_stale = True
        if not self.busy:
            return
        now = self.sim.env.now
        kind, start = self._plan[0], self._plan[1]
        if kind == "catchup" or (kind == "spec" and now < start + self._plan[4] + self._plan[5]):
            if kind == "spec":  # the draws of the abandoned iteration were not used
                for r in self.running:
                    r.spec_k -= 1
            self._book_partial(now)
            self.busy = False
            self._event = None
            self._schedule()
        elif kind == "prefill" and self.draft is not None and now < start + self._plan[4]:
            _, _, chunks, t_t, t_d = self._plan
            p_tok = sum(q for _, q in chunks)
            dd = now - start
            e = dd * self.setup.draft_perf.power_w(p_tok, 0)
            self.draft.ledger.busy(start, dd, e, "lost")
            for r, q in chunks:
                self.sim.on_draft_lost_work(r, self.draft.index, dd * q / p_tok, e * q / p_tok)
            self._plan = ("prefill", start, chunks, t_t, 0.0)
            self._arm(max(0.0, start + t_t - now))

    def draft_repaired(self) -> None:
        """The draft GPU is back (without KV): an idle or stalled instance resumes."""
        if self.available and not self.busy:
            self._schedule()

    def check_drained(self) -> None:
        if self.waiting or self.running or self.busy:
            raise SimulationInvariantError(
                f"instance {self.index} ended with work left: {len(self.waiting)} waiting, {len(self.running)} running"
            )
        if self._used != 0:
            raise SimulationInvariantError(f"instance {self.index} ended with {self._used} KV blocks held")
        if self._planned and (self._short or self._done or self._sum_ctx):
            raise SimulationInvariantError(f"instance {self.index} ended with planned iterations left")


class _PlannedGammas:
    """Draft tokens per running request this iteration, built only when read (as an array)."""

    __slots__ = ("inst", "g")

    def __init__(self, inst: SpecInstance, g: int):
        self.inst, self.g = inst, g

    def __array__(self, dtype=None, copy=None):
        out = []
        for r in self.inst.running:
            gen = self.inst._generated_now(r)
            out.append(min(self.g, r.n_out - gen - 1))
        return np.array(out, dtype=dtype or np.int64)
