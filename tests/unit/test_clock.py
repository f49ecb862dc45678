"""Clock.wake orders its calls exactly as SimPy orders timeouts (time, then scheduling order)."""

import pytest

from greensim.core.clock import Clock


def test_wakes_and_timeouts_interleave_in_scheduling_order() -> None:
    env = Clock()
    seen = []
    # equal times on purpose: the order must follow the scheduling order, whichever kind scheduled
    for i, delay in enumerate([1.0, 0.5, 1.0, 0.5, 1.0, 0.0, 0.5]):
        if i % 2:
            env.wake(delay, lambda _e, i=i: seen.append((env.now, i)))
        else:
            env.timeout(delay).callbacks.append(lambda _e, i=i: seen.append((env.now, i)))
    env.run()
    assert seen == [(0.0, 5), (0.5, 1), (0.5, 3), (0.5, 6), (1.0, 0), (1.0, 2), (1.0, 4)]


def test_wake_inside_a_callback_is_relative_to_now_and_rejects_negative_delays() -> None:
    env = Clock()
    seen = []
    env.wake(2.0, lambda _e: env.wake(0.25, lambda _f: seen.append(env.now)))
    env.run()
    assert seen == [2.25]
    with pytest.raises(ValueError, match="negative delay"):
        env.wake(-1e-9, lambda _e: None)
