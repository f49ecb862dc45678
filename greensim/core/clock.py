"""The simulation clock: SimPy's environment plus a lighter wake-up for the engine's own events.

The engine schedules several events per request (arrivals, iteration and decode-run ends, KV
transfers); each is a plain "call this at time t". :meth:`Clock.wake` puts such a call on
SimPy's own event queue with the key a :class:`simpy.Timeout` gets (time, normal priority, the
environment's running event id), so wake-ups and SimPy events interleave exactly as if every
wake-up were a ``timeout`` with one callback; it skips building the Timeout (its attributes,
the separate schedule call and the callback list append), ~0.25 us of ~0.7 us per event.
Policies keep using ``env.timeout`` / processes as usual.
"""

from __future__ import annotations

from heapq import heappush
from typing import Any, Callable

import simpy
from simpy.events import NORMAL

__all__ = ["Clock", "Wake"]


class Wake:
    """An event on the clock's queue that calls one function (the minimum ``Environment.step`` reads)."""

    __slots__ = ("callbacks", "_ok")

    def __init__(self, fn: Callable[[Any], None]):
        self.callbacks = [fn]
        self._ok = True


class Clock(simpy.Environment):
    """:class:`simpy.Environment` with :meth:`wake`."""

    def wake(self, delay: float, fn: Callable[[Any], None]) -> Wake:
        """Call ``fn(w)`` (``w`` the returned :class:`Wake`) ``delay`` seconds from now; ordered
        as ``timeout(delay)`` with ``fn`` as its only callback would be."""
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        w = Wake(fn)
        heappush(self._queue, (self._now + delay, NORMAL, next(self._eid), w))  # type: ignore[misc]  # a Wake stands for an Event
        return w
