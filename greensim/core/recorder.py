"""Optional per-iteration recorder: raw tuples of every iteration, pass and KV transfer.

Off by default: the simulation then holds no recorder and the instances pay one ``None``
check per booked iteration. When on (``output.iterations``), instances hand it what they
booked on their ledger, in the order the engine completes the work:

* a colocated / DPD :class:`~greensim.core.instance.Instance` one iteration (prefill tokens,
  prefill sequences, decode batch, decode context tokens) or one closed-form decode run
  ``(n, ctx0, k)`` (expanded into its ``k`` iterations by :mod:`greensim.results.iterations`);
* a speculative instance and its draft GPU each pass booked on their ledger, with its phase
  (``prefill``, ``draft``, ``verify``, ...; through :attr:`Ledger.rec
  <greensim.core.ledger.Ledger>`);
* the DPD hand-off each completed KV transfer.

Size guard: at most ``max_rows`` rows are kept (a decode run counts ``k``); beyond that
nothing more is recorded (a run that crosses the limit keeps its first iterations) and
``n_dropped`` counts the rows left out, ``stopped_s`` says when recording stopped.
"""

from __future__ import annotations

from typing import Callable, List, Tuple

__all__ = ["IterationRecorder", "ITERATION", "DECODE_RUN", "PHASE", "TRANSFER"]

#: kinds of recorded entries (first field of each tuple in :attr:`IterationRecorder.entries`)
ITERATION, DECODE_RUN, PHASE, TRANSFER = 0, 1, 2, 3


class IterationRecorder:
    """Raw records of a run, kept as tuples ``(kind, instance, start_s, duration_s, energy_j, a, b, c, d)``:

    * ``ITERATION``: a = prefill tokens, b = prefill sequences, c = decode batch, d = decode context tokens;
    * ``DECODE_RUN``: a = n (batch), b = ctx0 (context of its first iteration), c = k (iterations),
      d = iterations kept (``k`` unless the size guard cut the run);
    * ``PHASE``: a = phase name, b = c = d = None;
    * ``TRANSFER``: instance = source, a = request id, b = destination, c = bytes, d = link name.
    """

    __slots__ = ("max_rows", "n_rows", "n_dropped", "stopped_s", "entries")

    def __init__(self, max_rows: int):
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self.max_rows = int(max_rows)
        self.n_rows = 0  # rows kept (a decode run counts its kept iterations)
        self.n_dropped = 0  # rows left out by the size guard
        self.stopped_s: float | None = None  # end of the first entry the guard cut [s]
        self.entries: List[Tuple] = []

    def _room(self, rows: int, end_s: float) -> int:
        """How many of ``rows`` new rows may be kept; counts the others as dropped."""
        room = self.max_rows - self.n_rows
        if rows <= room:
            self.n_rows += rows
            return rows
        keep = max(room, 0)
        self.n_rows += keep
        self.n_dropped += rows - keep
        if self.stopped_s is None:
            self.stopped_s = end_s
        return keep

    def iteration(
        self, inst: int, start: float, dur: float, energy: float, p_tok: int, n_seqs: int, n_dec: int, ctx: int
    ) -> None:
        """One iteration of a (non-speculative) instance."""
        if self._room(1, start + dur):
            self.entries.append((ITERATION, inst, start, dur, energy, p_tok, n_seqs, n_dec, ctx))

    def decode_run(self, inst: int, start: float, dur: float, energy: float, n: int, ctx0: int, k: int) -> None:
        """``k`` decode-only iterations of ``n`` requests booked as one run (context ``ctx0 + n*j``)."""
        keep = self._room(k, start + dur)
        if keep:
            self.entries.append((DECODE_RUN, inst, start, dur, energy, n, ctx0, k, keep))

    def phase(self, inst: int, start: float, dur: float, energy: float, phase: str) -> None:
        """One pass of a phase (speculative passes, lost work of an interrupted iteration)."""
        if self._room(1, start + dur):
            self.entries.append((PHASE, inst, start, dur, energy, phase, None, None, None))

    def transfer(self, src: int, start: float, end: float, request: int, dst: int, n_bytes: float, link: str) -> None:
        """A completed KV transfer (DPD) over ``link`` from instance ``src`` to ``dst``."""
        if self._room(1, end):
            self.entries.append((TRANSFER, src, start, end - start, 0.0, request, dst, float(n_bytes), link))

    def sink(self, inst: int) -> Callable[[float, float, float, str], None]:
        """A callable for :attr:`Ledger.rec <greensim.core.ledger.Ledger>`: each booking of that
        ledger becomes a ``PHASE`` entry of instance ``inst`` (untagged bookings: phase ``busy``)."""

        def rec(start: float, dur: float, energy: float, phase: str) -> None:
            self.phase(inst, start, dur, energy, phase or "busy")

        return rec
