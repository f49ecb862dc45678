"""The small interfaces the core talks to. Plug-ins implement these."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, Optional, Protocol, Sequence, Tuple

__all__ = [
    "EngineHost",
    "BoundPerformance",
    "PerformanceModel",
    "InstanceView",
    "Router",
    "RouterContext",
    "ReleasePolicy",
    "FailureModel",
    "PrefillHandoff",
    "step_to_crossing",
]

#: A prefill chunk: (new tokens processed now, tokens already in the KV cache).
Chunk = Tuple[int, int]


class BoundPerformance(ABC):
    """Latency and power of one instance (GPU type x TP degree x model).

    All times in seconds, power in watts for the whole instance (all TP GPUs).
    """

    #: idle power of the whole instance [W]
    idle_power_w: float
    #: power during a decode-only iteration [W]
    decode_power_w: float

    @abstractmethod
    def iteration_time_s(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int) -> float:
        """Duration of one engine iteration [s].

        Parameters
        ----------
        chunks : prefill chunks in the batch, each (new tokens, cached tokens before).
        n_decode : number of requests decoding one token in this iteration.
        decode_ctx_tokens : sum over decode requests of the tokens each attends to.
        """

    @abstractmethod
    def power_w(self, n_prefill_tokens: int, n_decode: int) -> float:
        """Average instance power during an iteration of that composition [W]."""

    #: True where the power of an iteration depends on more than its composition (batch
    #: context, time): callers then use :meth:`iteration_power_w` and :meth:`decode_run_energy_j`.
    power_varies: bool = False

    def iteration_power_w(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int, time_s: float) -> float:
        """Average instance power during one iteration (arguments of :meth:`iteration_time_s`,
        and its duration ``time_s``) [W]. The default ignores context and time."""
        return self.power_w(sum(q for q, _ in chunks), n_decode)

    def verify_power_w(self, p_tok: int, ctx_sum: int, n_seqs: int, time_s: float) -> float:
        """Average instance power of a speculative verify iteration: ``p_tok`` new tokens over
        ``n_seqs`` sequences with ``ctx_sum`` cached tokens in all, lasting ``time_s`` [W].

        The default is the power of a decode iteration of ``n_seqs`` sequences: a verify pass of a
        few tokens per sequence streams the weights and the KV cache like a decode step (it is
        memory-bound), not a prefill. Models whose power follows the work refine it.
        """
        return self.power_w(0, max(1, n_seqs))

    def decode_run_energy_j(self, n: int, ctx0: int, k: int) -> float:
        """Energy of the run of :meth:`decode_run_time_s` [J]. The default: constant decode power."""
        return self.decode_power_w * self.decode_run_time_s(n, ctx0, k)

    def decode_run_time_s(self, n: int, ctx0: int, k: int) -> float:
        """Total time of ``k`` consecutive decode-only iterations of ``n`` requests [s].

        Iteration ``j`` (0-based) has decode context ``ctx0 + n*j``. Subclasses with
        a closed form override this; the default sums iteration by iteration.
        """
        return sum(self.iteration_time_s((), n, ctx0 + n * j) for j in range(k))

    def verify_time_s(self, new_tokens, ctx_tokens) -> float:
        """One prefill-like pass, request ``i`` processing ``new_tokens[i]`` tokens over
        ``ctx_tokens[i]`` cached ones (speculative verification) [s].

        Subclasses may override with a vectorised form; the default builds the chunks.
        """
        return self.iteration_time_s(list(zip([int(q) for q in new_tokens], [c for c in ctx_tokens])), 0, 0)

    def verify_uniform_time_s(self, n: int, new_tokens: int, ctx_sum: int) -> float:
        """:meth:`verify_time_s` for ``n`` requests of ``new_tokens`` each over ``ctx_sum``
        cached tokens in total [s]. The default spreads the context evenly (exact for
        models linear in per-request context, such as the roofline)."""
        return self.verify_time_s([new_tokens] * n, [ctx_sum / n] * n)

    #: True where :meth:`verify_sums_time_s` is implemented (models linear in the chunk sums)
    verify_from_sums: bool = False

    def verify_sums_time_s(self, p_tok: int, ctx_sum: int, s_qc: int, s_qq: int, n_seqs: int = 0) -> float:
        """:meth:`verify_time_s` from sums over the requests: ``p_tok = sum q_i``,
        ``ctx_sum = sum c_i``, ``s_qc = sum q_i c_i``, ``s_qq = sum q_i (q_i + 1)``, and the
        number of requests ``n_seqs`` (for per-sequence engine costs) [s].
        Only for models with ``verify_from_sums`` (the time depends on these sums alone)."""
        raise NotImplementedError(f"{type(self).__name__} has no verify_sums_time_s")

    def decode_iterations_until(self, n: int, ctx0: int, kmax: int, dt_s: float) -> int:
        """Smallest k in [1, kmax] whose run of k iterations ends at or after ``dt_s``."""
        lo, hi = 1, kmax
        while lo < hi:
            mid = (lo + hi) // 2
            if self.decode_run_time_s(n, ctx0, mid) >= dt_s:
                hi = mid
            else:
                lo = mid + 1
        return lo


class PerformanceModel(ABC):
    """Factory of :class:`BoundPerformance` for (GPU, model, TP degree)."""

    name: str = "performance-model"

    @abstractmethod
    def bind(self, gpu, model, tp: int) -> BoundPerformance:
        """Return the latency/power model of one instance."""


class InstanceView(Protocol):
    """What a router may read of an instance.

    ``cfg`` holds its static labels: ``name``, ``gpu``, ``tp``, ``group`` (index of its
    instance group in the experiment), ``site``, ``mode`` (colocated, prefill, decode,
    spec, dsd) and ``network_delay_s`` (one way, None when not modelled). ``n_waiting``
    counts requests queued or still on the network to it.

    The members are read-only properties: a router reads them, and an instance may
    provide each as a plain attribute or a computed property.
    """

    @property
    def index(self) -> int: ...
    @property
    def n_waiting(self) -> int: ...
    @property
    def n_running(self) -> int: ...
    @property
    def free_kv_blocks(self) -> int: ...
    @property
    def total_kv_blocks(self) -> int: ...
    @property
    def cfg(self) -> Any: ...


class RouterContext:
    """What a router may read of the run besides instances: the clock and plug-in extras.

    ``extras`` is filled by the layer that builds the simulation (e.g. the carbon
    forecast, per-site intensity sources); the core never reads it.
    """

    __slots__ = ("_env", "extras")

    def __init__(self, env, extras: Optional[Dict[str, Any]] = None):
        self._env = env
        self.extras: Dict[str, Any] = dict(extras or {})

    def now_s(self) -> float:
        """Current simulated time [s]."""
        return float(self._env.now)


class Router(Protocol):
    """Chooses the instance for each arriving request.

    A router may also define ``bind(ctx: RouterContext)``; the simulation calls it once
    before the first arrival.
    """

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        """Return the index (into ``instances``) of the instance to serve the request."""
        ...


class ReleasePolicy(Protocol):
    """Decides when an arriving request is handed to the router (admission / release).

    The core holds a request until the returned time and knows nothing of why (carbon-aware
    time shifting, :mod:`greensim.policies.defer`, is one plug-in). A policy may also define
    ``bind(ctx: RouterContext)``; the simulation calls it once before the first arrival.
    """

    def release_s(self, request_id: int, n_input_tokens: int, now_s: float) -> float:
        """Simulated time at which to route the request [s]: ``now_s`` (at once) or later."""
        ...


class FailureModel(Protocol):
    """Schedules instance failures and repairs (GPU aging). The core asks, the plug-in answers."""

    def time_to_failure_s(self, instance_index: int, now_s: float) -> Optional[float]:
        """Delay from ``now_s`` until the instance's next failure [s]; None = never fails."""
        ...

    def repair_time_s(self, instance_index: int, now_s: float) -> float:
        """How long an instance that fails at ``now_s`` stays down [s]."""
        ...

    def on_repaired(self, instance_index: int, now_s: float) -> None:
        """The instance is back up (a renewal model resets its age here)."""
        ...


class PrefillHandoff(Protocol):
    """Where a prefill instance sends its prefilled requests (disaggregated prefill/decode):
    :class:`~greensim.core.disagg.KVHandoff`. Instances never import it."""

    #: send KV layer by layer while the last prefill iteration runs
    layerwise: bool

    def on_prefill_start(self, src: Any, r: Any) -> None:
        """``r``'s last prefill iteration starts on instance ``src``."""
        ...

    def on_prefilled(self, src: Any, r: Any) -> None:
        """``r`` finished its prefill on instance ``src``."""
        ...


class EngineHost(Protocol):
    """What an instance (and the DPD hand-off) may see of the engine that drives it.

    The narrow interface between :class:`~greensim.core.simulation.Simulation` and the
    instances it owns: the SimPy environment, the per-request record, and four callbacks
    as a request moves through its life. Instances never import the simulation.
    """

    env: Any  # greensim.core.clock.Clock (a simpy.Environment with wake)
    max_run_iterations: Optional[int]
    table: Any  # RequestTable: the workload
    record: Any  # RequestRecord: per-request outcome arrays
    dsd_draft_busy_s: Any  # per-request draft-GPU busy time [s] (DSD only)
    dsd_draft_energy_j: Any  # per-request draft-GPU energy [J] (DSD only)

    @property
    def instances(self) -> Sequence[Any]:
        """The engine's instances, by index (read-only here: any sequence type fits)."""
        ...

    def on_first_scheduled(self, r: Any, now: float) -> None:
        """``r`` entered a batch for the first time."""
        ...

    def on_first_token(self, r: Any, now: float) -> None:
        """``r`` produced its first output token."""
        ...

    def on_complete(self, r: Any, now: float) -> None:
        """``r`` produced its last token."""
        ...

    def on_preempted(self, r: Any) -> None:
        """``r`` was evicted from its batch (it will be re-prefilled)."""
        ...

    def place(self, r: Any, inst: Any) -> None:
        """Send ``r`` to serving instance ``inst`` (or reject it there); DPD resend uses it."""
        ...

    def on_recomputed(self, r: Any, instance_index: int) -> None:
        """``r`` finished the prefill recomputing KV a failure destroyed (failures only)."""
        ...

    def on_lost_work(self, r: Any, instance_index: int, busy_s: float, energy_j: float) -> None:
        """``r``'s share of an iteration a failure interrupted (failures only)."""
        ...

    def on_draft_lost_work(self, r: Any, draft_index: int, busy_s: float, energy_j: float) -> None:
        """``r``'s share of draft-GPU work lost to a failure (failures only)."""
        ...


def step_to_crossing(run_time: Callable[[int], float], j: int, kmax: int, dt_s: float) -> int:
    """:meth:`BoundPerformance.decode_iterations_until`'s answer (smallest k in [1, kmax] with
    ``run_time(k) >= dt_s``, else kmax) found by stepping from a guess ``j``; exact for run times
    that rise by a whole iteration per step (far above rounding), so a guess from a closed form or
    from a related model costs one or two evaluations instead of a bisection."""
    j = min(kmax, max(1, j))
    while j > 1 and run_time(j - 1) >= dt_s:
        j -= 1
    while j < kmax and run_time(j) < dt_s:
        j += 1
    return j
