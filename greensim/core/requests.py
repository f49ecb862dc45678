"""Request workload table (inputs) and the per-request record of results."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from greensim.base.errors import TraceError

__all__ = ["RequestTable", "Request", "RequestRecord"]


@dataclass(frozen=True)
class RequestTable:
    """The workload: one row per request, sorted by arrival.

    arrival_s [s], n_input_tokens, n_output_tokens (>= 1), slo_class (names; '' = default SLO).
    prefix_ids: optional prefix identity, per request a sequence of int keys, one per
    ``prefix_block_tokens``-token block of its token stream (equal leading keys = a shared
    prefix; :mod:`greensim.core.prefix_cache`), or None for a request without one.
    """

    arrival_s: np.ndarray
    n_input_tokens: np.ndarray
    n_output_tokens: np.ndarray
    slo_class: np.ndarray | None = None
    notes: tuple = field(default=(), compare=False)  # what the workload builder did (rows dropped...)
    prefix_ids: Optional[Sequence[Any]] = field(default=None, compare=False)
    prefix_block_tokens: int = 0  # tokens per prefix key (0: no prefix identity)

    def __post_init__(self):
        n = len(self.arrival_s)
        if len(self.n_input_tokens) != n or len(self.n_output_tokens) != n:
            raise TraceError("workload: arrival_s, n_input_tokens and n_output_tokens differ in length.")
        if self.prefix_ids is not None and len(self.prefix_ids) != n:
            raise TraceError("workload: prefix_ids and arrival_s differ in length.")

    def select(self, keep: np.ndarray, **changes: Any) -> "RequestTable":
        """The rows ``keep`` (a boolean mask or index array) of every column, prefix ids included."""
        return dataclasses.replace(
            self,
            arrival_s=self.arrival_s[keep],
            n_input_tokens=self.n_input_tokens[keep],
            n_output_tokens=self.n_output_tokens[keep],
            slo_class=None if self.slo_class is None else self.slo_class[keep],
            prefix_ids=None if self.prefix_ids is None else [self.prefix_ids[i] for i in np.arange(len(self))[keep]],
            **changes,
        )

    def __len__(self) -> int:
        return len(self.arrival_s)

    @classmethod
    def from_arrays(
        cls, arrival_s, n_input_tokens, n_output_tokens, slo_class=None, where: str = "workload"
    ) -> "RequestTable":
        """Validate and build. Raises :class:`TraceError` naming the bad column and row."""
        a = np.asarray(arrival_s, dtype=float)
        cols = {"arrival_time_s": a}
        out = []
        for name, v in (("input_tokens", n_input_tokens), ("output_tokens", n_output_tokens)):
            x = np.asarray(v, dtype=float)
            cols[name] = x
            out.append(x)
        for name, x in cols.items():
            bad = np.flatnonzero(~np.isfinite(x))
            if bad.size:
                raise TraceError(
                    f"{where}: column '{name}' has NaN/inf at row {bad[0]} ({bad.size} rows). Drop or fill those rows."
                )
            neg = np.flatnonzero(x < 0)
            if neg.size:
                raise TraceError(
                    f"{where}: column '{name}' is negative at row {neg[0]} "
                    f"(value {x[neg[0]]}). Token counts and times must be >= 0."
                )
        for name, x in (("input_tokens", out[0]), ("output_tokens", out[1])):
            frac = np.flatnonzero(x != np.floor(x))
            if frac.size:
                raise TraceError(
                    f"{where}: column '{name}' has a non-integer value {x[frac[0]]} "
                    f"at row {frac[0]}. Token counts must be whole numbers."
                )
            zero = np.flatnonzero(x < 1)
            if zero.size:
                raise TraceError(
                    f"{where}: column '{name}' is 0 at row {zero[0]} ({zero.size} rows). "
                    f"Every request needs >= 1 input and >= 1 output token; filter those rows."
                )
        if a.size > 1:
            dec = np.flatnonzero(np.diff(a) < 0)
            if dec.size:
                raise TraceError(
                    f"{where}: column 'arrival_time_s' is not sorted (row {dec[0] + 1} "
                    f"arrives before row {dec[0]}). Sort the trace by arrival time."
                )
        sc = None
        if slo_class is not None:
            sc = np.array(["" if (v is None or v != v) else str(v) for v in slo_class], dtype=object)
        return cls(a, out[0].astype(np.int64), out[1].astype(np.int64), sc)


class Request:
    """An in-flight request. Results are copied to the :class:`RequestRecord` arrays."""

    __slots__ = (
        "id",
        "n_in",
        "n_out",
        "generated",
        "kv_len",
        "prefilled",
        "blocks",
        "step_base",
        "kv_base",
        "finish_step",
        "share_base_s",
        "share_base_j",
        "busy_s",
        "energy_j",
        "admitted",
        "seq",
        "redo",
        "cached",
        # speculative decoding only (set at batch entry): acceptance-draw segment,
        # draws used (slot path), planned run and share accumulators (planned path)
        "spec_draws",
        "spec_k",
        "spec_traj",
        "spec_base",
    )

    # Types of the speculative slots, which only greensim.core.spec_instance sets (no
    # default: a slot stays unset until then). Annotations only: no class attributes, so
    # the slots and the memory layout are unchanged.
    spec_draws: Tuple[np.ndarray, np.ndarray, int]  # (draws G, cumulative tokens C, first index)
    spec_k: int  # draws used so far (slot path)
    spec_traj: Tuple[int, int, np.ndarray, int, int]  # (join iteration, generated, C, first, N) (planned path)
    spec_base: Tuple[float, float, float, float]  # share accumulators at join (planned path)

    def __init__(self, rid: int, n_in: int, n_out: int):
        self.id = rid
        self.n_in = n_in
        self.n_out = n_out
        self.generated = 0  # output tokens produced so far
        self.kv_len = 0  # tokens whose KV is cached (valid when not decoding)
        self.prefilled = 0  # tokens of the current prefill target already processed
        self.blocks = 0  # KV blocks held (valid when not decoding)
        self.step_base = 0  # instance decode step when it entered decoding
        self.kv_base = 0  # kv_len - step_base at decode entry
        self.finish_step = 0  # decode step at which it finishes
        self.share_base_s = 0.0  # instance per-token busy-time accumulator at decode entry
        self.share_base_j = 0.0  # same, energy
        self.busy_s = 0.0  # GPU-time share [s]
        self.energy_j = 0.0  # busy-energy share [J]
        self.admitted = False
        self.seq = 0  # admission order (preemption picks the latest)
        self.redo = False  # a failure destroyed its KV: its next prefill recomputes lost work
        self.cached = 0  # prompt tokens whose KV its next prefill finds cached (DPD resend)


class RequestRecord:
    """Column arrays of per-request results, indexed by request id."""

    def __init__(self, n: int):
        nan = np.full(n, np.nan)
        self.instance = np.full(n, -1, dtype=np.int64)
        self.first_scheduled_s = nan.copy()
        self.first_token_s = nan.copy()
        self.done_s = nan.copy()
        self.n_preemptions = np.zeros(n, dtype=np.int64)
        self.n_requeues = np.zeros(n, dtype=np.int64)  # re-routed after an instance failure
        self.n_generated = np.zeros(n, dtype=np.int64)
        self.busy_s = np.zeros(n)
        self.energy_j = np.zeros(n)
        self.rejected = np.zeros(n, dtype=bool)
        self.reject_reason = np.full(n, "", dtype=object)
        # Extra (instance, busy_s, energy_j) columns for requests served by a second
        # instance (DPD decode, DSD draft); attribution sums over all parts.
        self.parts: list = []
        # Extra per-request result columns by name (added by disaggregation modes).
        self.extra: dict = {}
        # Runs with GPU failures: the parts holding work moved off restarted requests, and
        # those of them that are lost work (None without failures).
        self.failure_parts: list = []
        self.lost_parts: Optional[list] = None
