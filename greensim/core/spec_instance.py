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

The phases run one after the other (no overlap); one SimPy event per iteration. In
split mode the draft runs on its own GPU (a :class:`DraftSide` with its own ledger) and
both GPUs hold a KV cache for every running request, so the block pool is the smaller
of the two caches (counted in tokens, the same on both sides). Colocated mode runs the
draft on the target's GPU (one ledger, weights and KV of both models in its memory).

Accepted counts come from a ``numpy.random.Generator`` owned by the instance (spawned
from the experiment seed, so it does not shift the arrival stream).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Deque, List, Optional, Protocol

import numpy as np

from ..errors import SimulationInvariantError
from .instance import InstanceConfig
from .interfaces import BoundPerformance
from .ledger import Ledger
from .requests import Request

if TYPE_CHECKING:  # pragma: no cover
    from .simulation import Simulation

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

    def choose(self, n_batch: int, gamma_max: int, expected_tokens: Callable[[int], float],
               iteration_time_s: Callable[[int], float]) -> int:
        """Return g in [0, gamma_max]; ``expected_tokens(g)`` is the mean tokens a request
        emits per iteration, ``iteration_time_s(g)`` the engine's estimate of its time [s]."""
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

    def expected_tokens(self, g: int) -> float:
        """Mean tokens per target iteration for a request drafting ``g`` tokens."""
        if self.alpha_by_position is not None:
            return expected_tokens_per_position_model(self.alpha_by_position, g)
        return expected_tokens_per_iteration(self.alpha, g)


class DraftSide:
    """The draft GPU of a split pair: a ledger and a view for the results tables."""

    def __init__(self, index: int, name: str, gpu: str, perf: BoundPerformance, ledger: Ledger, kv_blocks: int):
        self.index, self.perf, self.ledger = index, perf, ledger
        self.cfg = InstanceConfig(name=name, gpu=gpu, tp=1, kv_blocks=kv_blocks, block_tokens=1,
                                  max_batch_size=1, max_batched_tokens=1, chunked_prefill=False,
                                  watermark_blocks=0, mode="draft")
        self.total_kv_blocks = kv_blocks
        self.n_iterations = 0
        self.n_preemptions = 0
        self.handoff = None

    def check_drained(self) -> None:
        return None


class SpecInstance:
    """A target model instance that decodes speculatively (see the module docstring)."""

    def __init__(self, sim: "Simulation", index: int, cfg: InstanceConfig, perf: BoundPerformance,
                 ledger: Ledger, setup: SpecSetup):
        if cfg.chunked_prefill:
            raise SimulationInvariantError("speculative instances do not support chunked prefill")
        self.sim, self.index, self.cfg, self.perf, self.ledger, self.setup = sim, index, cfg, perf, ledger, setup
        self.B = cfg.block_tokens
        self.total_kv_blocks = cfg.kv_blocks
        self.waiting: Deque[Request] = deque()
        self.running: List[Request] = []
        self._used = 0                 # KV blocks held by running requests (each side)
        self._seq = 0
        self.busy = False
        self.handoff = None
        self.draft: Optional[DraftSide] = None
        self.n_iterations = 0
        self.n_preemptions = 0
        self.n_in_transit = 0          # routed here, still on the network (counted in n_waiting)
        self.n_spec_iterations = 0     # target verify passes
        self.n_full_draws = 0          # request-iterations that drafted gamma_max tokens
        self.n_full_tokens = 0         # tokens those emitted
        self._plan: tuple = ()
        self._la = setup.gamma_max + 1  # lookahead tokens reserved at admission
        # slot arrays of the running batch: columns n_in, n_out, generated, seq, blocks,
        # n_in - 1 + lookahead, n_in + n_out - 1 (the KV-token cap) ...
        self._I = np.zeros((cfg.max_batch_size, 7), dtype=np.int64)
        # ... and target busy [s], target energy [J], draft busy [s], draft energy [J] shares
        self._F = np.zeros((cfg.max_batch_size, 4))
        self._sum_ctx = 0              # sum over running requests of n_in + generated - 1

    # ----------------------------------------------------------------- views
    @property
    def n_waiting(self) -> int:
        """Requests routed here that have not started: queued, or still on the network."""
        return len(self.waiting) + self.n_in_transit

    @property
    def n_running(self) -> int:
        return len(self.running)

    @property
    def free_kv_blocks(self) -> int:
        return self.total_kv_blocks - self._used

    def _blocks(self, tokens: int) -> int:
        return -(-tokens // self.B)

    def _need(self, r: Request) -> int:
        """Blocks for a (re)prefill of ``r`` plus its next iteration's lookahead."""
        return self._blocks(min(r.n_in + r.generated + self._la, r.n_in + r.n_out - 1))

    # ----------------------------------------------------------------- events
    def enqueue(self, r: Request) -> None:
        self.waiting.append(r)
        self.ledger.sample(self.sim.env.now, len(self.waiting), 0)
        if not self.busy:
            self._schedule()

    def _arm(self, delay: float) -> None:
        ev = self.sim.env.timeout(delay)
        ev.callbacks.append(self._on_event)

    def _on_event(self, _ev) -> None:
        kind = self._plan[0]
        if kind == "prefill":
            self._finish_prefill()
        else:
            self._finish_spec()
        self._schedule()

    def _schedule(self) -> None:
        if self.waiting and self._start_prefill():
            return
        if self.running and self._start_spec():
            return
        self.busy = False
        self.ledger.sample(self.sim.env.now, len(self.waiting), 0)

    # ----------------------------------------------------------------- prefill
    def _start_prefill(self) -> bool:
        cfg = self.cfg
        budget = cfg.max_batched_tokens
        free = self.free_kv_blocks - cfg.watermark_blocks
        chunks = []
        while self.waiting and len(self.running) + len(chunks) < cfg.max_batch_size:
            r = self.waiting[0]
            q = r.n_in + r.generated
            nb = self._need(r)
            if q > budget or nb > free:
                break
            self.waiting.popleft()
            free -= nb
            budget -= q
            r.blocks = nb
            self._used += nb
            self._seq += 1
            r.seq = self._seq
            if not r.admitted:
                r.admitted = True
                self.sim.on_first_scheduled(r, self.sim.env.now)
            chunks.append((r, q))
        if not chunks:
            return False
        pc = [(q, 0) for _, q in chunks]
        t_t = self.perf.iteration_time_s(pc, 0, 0)
        t_d = self.setup.draft_perf.iteration_time_s(pc, 0, 0)
        t = max(t_t, t_d) if self.setup.split else t_t + t_d
        self._plan = ("prefill", self.sim.env.now, chunks, t_t, t_d)
        self.busy = True
        self.ledger.sample(self.sim.env.now, len(self.waiting), len(self.running) + len(chunks))
        self._arm(t)
        return True

    def _finish_prefill(self) -> None:
        _, start, chunks, t_t, t_d = self._plan
        now = self.sim.env.now
        s = self.setup
        p_tok = sum(q for _, q in chunks)
        e_t = t_t * self.perf.power_w(p_tok, 0)
        e_d = t_d * s.draft_perf.power_w(p_tok, 0)
        self._book(start, t_t, e_t, t_d, e_d, 0.0)
        for r, q in chunks:
            w = q / p_tok
            self._share(r, t_t * w, e_t * w, t_d * w, e_d * w)
            r.generated += 1
            if r.generated == 1:
                self.sim.on_first_token(r, now)
            if r.generated >= r.n_out:
                self._used -= r.blocks
                r.blocks = 0
                self.sim.on_complete(r, now)
            else:
                self._join(r)
        self.n_iterations += 1

    # ----------------------------------------------------------------- running batch (slots)
    # The running batch lives in slot arrays (one row per request) so that a speculative
    # iteration costs a fixed number of numpy operations, not a Python loop per request.
    def _join(self, r: Request) -> None:
        i = len(self.running)
        self.running.append(r)
        self._I[i] = (r.n_in, r.n_out, r.generated, r.seq, r.blocks,
                      r.n_in - 1 + self._la, r.n_in + r.n_out - 1)
        self._F[i] = 0.0
        self._sum_ctx += r.n_in + r.generated - 1

    def _leave(self, i: int) -> Request:
        """Take slot ``i`` out of the batch, moving its shares and tokens onto the request."""
        r = self.running[i]
        I, F = self._I, self._F
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
        self._used -= int(I[i, 4])
        r.blocks = 0
        last = len(self.running) - 1
        if i != last:
            self.running[i] = self.running[last]
            I[i] = I[last]
            F[i] = F[last]
        self.running.pop()
        return r

    # ----------------------------------------------------------------- speculative iteration
    def _gammas(self, g: int) -> Optional[np.ndarray]:
        """Draft tokens per request, ``min(g, remaining - 1)``; None when all equal ``g``."""
        n = len(self.running)
        I = self._I
        rem = I[:n, 1] - I[:n, 2]
        if int(rem.min()) > g:
            return None
        return np.minimum(rem - 1, g)

    def _time_parts(self, gs: Optional[np.ndarray], g: int) -> tuple:
        s = self.setup
        n = len(self.running)
        ctx_sum = self._sum_ctx                 # tokens with KV: prompt + generated - 1, summed
        if gs is None:
            steps, n_draft = g, n * g
            t_v = self.perf.verify_uniform_time_s(n, g + 1, ctx_sum)
        else:
            steps, n_draft = int(gs.max()), int(gs.sum())
            I = self._I
            t_v = self.perf.verify_time_s(gs + 1, I[:n, 0] + I[:n, 2] - 1)
        t_d = s.draft_perf.decode_run_time_s(n, ctx_sum + n, steps) if steps else 0.0
        t_l = 0.0
        if s.split and steps:
            t_l = n_draft * s.bytes_per_draft_token / s.bandwidth_bps + 2.0 * s.latency_s
        return t_d, t_l, t_v, steps, n_draft

    def _start_spec(self) -> bool:
        s = self.setup
        g = s.gamma_max
        if s.gamma_policy is not None:
            g = s.gamma_policy.choose(len(self.running), s.gamma_max, s.expected_tokens,
                                      lambda x: sum(self._time_parts(self._gammas(x), x)[:3]))
            if not (0 <= g <= s.gamma_max):
                raise SimulationInvariantError(f"gamma policy returned {g}; valid 0..{s.gamma_max}")
        gs = self._gammas(g)
        # Reserved blocks (lookahead included) cover every peak unless they exceed the cache.
        while self._used > self.total_kv_blocks:
            n = len(self.running)
            I = self._I
            peak = I[:n, 0] + I[:n, 2] + (g if gs is None else gs)
            if int((-(-peak // self.B)).sum()) <= self.total_kv_blocks:
                break
            self._preempt()
            if not self.running:
                return False
            gs = self._gammas(g)
        t_d, t_l, t_v, steps, n_draft = self._time_parts(gs, g)
        n = len(self.running)
        if s.alpha_by_position is not None:
            if g:
                ok = s.rng.random((n, g)) < np.asarray(s.alpha_by_position[:g])
                drawn = ok.cumprod(axis=1).sum(axis=1)     # leading acceptances
            else:
                drawn = np.zeros(n, dtype=np.int64)
        elif s.alpha > 0:
            drawn = s.rng.geometric(1.0 - s.alpha, size=n) - 1
        else:
            drawn = np.zeros(n, dtype=np.int64)
        self._plan = ("spec", self.sim.env.now, gs, drawn, t_d, t_l, t_v, steps, g, n_draft)
        self.busy = True
        self.ledger.sample(self.sim.env.now, len(self.waiting), n)
        self._arm(t_d + t_l + t_v)
        return True

    def _finish_spec(self) -> None:
        _, start, gs, drawn, t_d, t_l, t_v, steps, g, n_draft = self._plan
        now = self.sim.env.now
        s = self.setup
        n = len(self.running)
        n_ver = n_draft + n
        e_v = t_v * self.perf.power_w(n_ver, 0)
        e_d = t_d * s.draft_perf.decode_power_w
        self._book(start, t_v, e_v, t_d, e_d, t_l)
        I, F = self._I, self._F
        if gs is None:                          # every request verified g + 1 positions
            F[:n] += (t_v / n, e_v / n, t_d / n, e_d / n)
            tok = np.minimum(drawn, g) + 1
            n_tok = int(tok.sum())
            self.n_full_draws += n
            self.n_full_tokens += n_tok
        else:
            w = (gs + 1) / n_ver
            F[:n, 0] += t_v * w
            F[:n, 1] += e_v * w
            F[:n, 2:] += (t_d / n, e_d / n)
            tok = np.minimum(drawn, gs) + 1
            n_tok = int(tok.sum())
            full = gs == g
            self.n_full_draws += int(full.sum())
            self.n_full_tokens += int(tok[full].sum())
        I[:n, 2] += tok
        self._sum_ctx += n_tok
        gen = I[:n, 2]
        blk = (np.minimum(I[:n, 5] + gen, I[:n, 6]) + (self.B - 1)) // self.B
        self._used += int(blk.sum()) - int(I[:n, 4].sum())
        I[:n, 4] = blk
        for i in np.flatnonzero(gen >= I[:n, 1])[::-1].tolist():
            r = self._leave(i)
            self.sim.on_complete(r, now)
        self.n_iterations += 1
        self.n_spec_iterations += 1
        if self.draft is not None and steps:
            self.draft.n_iterations += steps

    def _preempt(self) -> None:
        n = len(self.running)
        r = self._leave(int(np.argmax(self._I[:n, 3])))
        self.waiting.appendleft(r)
        self.n_preemptions += 1
        self.sim.on_preempted(r)

    # ----------------------------------------------------------------- accounting
    def _book(self, start: float, t_t: float, e_t: float, t_d: float, e_d: float, t_l: float) -> None:
        """Ledger entries: draft first, then the link, then the target (colocated: in turn)."""
        if self.draft is not None:
            if t_d > 0:
                self.draft.ledger.busy(start, t_d, e_d)
            if self._plan[0] == "prefill":
                self.ledger.busy(start, t_t, e_t)         # both prompts at once, two GPUs
            else:
                self.ledger.busy(start + t_d + t_l, t_t, e_t)
        else:
            if t_d > 0:
                self.ledger.busy(start, t_d, e_d)
            self.ledger.busy(start + t_d, t_t, e_t)

    def _share(self, r: Request, s_t: float, j_t: float, s_d: float, j_d: float) -> None:
        r.busy_s += s_t
        r.energy_j += j_t
        if self.draft is not None:
            self.sim.dsd_draft_busy_s[r.id] += s_d
            self.sim.dsd_draft_energy_j[r.id] += j_d
        else:
            r.busy_s += s_d
            r.energy_j += j_d

    def check_drained(self) -> None:
        if self.waiting or self.running or self.busy:
            raise SimulationInvariantError(
                f"instance {self.index} ended with work left: {len(self.waiting)} waiting, "
                f"{len(self.running)} running")
        if self._used != 0:
            raise SimulationInvariantError(f"instance {self.index} ended with {self._used} KV blocks held")
