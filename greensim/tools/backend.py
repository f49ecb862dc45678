"""The device interface the profiler drives (:class:`Backend`). Standard library only, so
the profiler runs standalone on a GPU machine (copy ``backend.py``, ``profiler.py`` and
``torch_decoder.py`` side by side)."""

from __future__ import annotations

from typing import Callable, List, Optional

__all__ = ["Backend"]


class Backend:
    """What :func:`profile_shape` needs from a device. A fake one makes tests torch-free.

    Every ``make_*`` returns a zero-argument callable running one iteration, or None when
    the cell does not fit in memory.
    """

    def sync(self) -> None:
        """Wait for queued device work."""

    def elapsed_s(self, fn: Callable[[], None], n: int) -> List[float]:
        """Run ``fn`` ``n`` times back to back; return each run's device time [s]."""
        raise NotImplementedError

    def energy_j(self) -> Optional[float]:
        """Cumulative board energy of the GPUs in use [J], or None if unavailable."""
        return None

    def power_w(self) -> Optional[float]:
        """Instantaneous board power of the GPUs in use [W], or None."""
        return None

    def make_prefill(self, tokens: int):
        raise NotImplementedError

    def make_decode(self, batch: int, ctx: int):
        raise NotImplementedError

    def make_mixed(self, prompt: int, batch: int, ctx: int):
        raise NotImplementedError

    def make_verify(self, batch: int, new_tokens: int, ctx: int):
        raise NotImplementedError

    def release(self) -> None:
        """Free what the last ``make_*`` allocated."""
