"""Shared pieces of the fuzzing harness: settings, bad values, the outcome contract.

The contract every entry point must keep for every input: either the run completes with
finite, physically sized numbers, or it stops with a :class:`~greensim.base.errors.GreensimError`
(exit status 2 on the command line, ``error: ...`` and no traceback) whose message names the
file, field or row at fault. Any other exception, a hang or a non-finite number fails the test.

Examples per test: ``GREENSIM_FUZZ_EXAMPLES`` (default 25, derandomized so CI is
deterministic); setting it (e.g. ``GREENSIM_FUZZ_EXAMPLES=2000``) also draws fresh random
examples on each run (hypothesis prints the seed of a failure to reproduce it).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import warnings
from typing import Any, Callable, Iterable, List, Sequence, Tuple

import numpy as np
from click.testing import CliRunner
from hypothesis import HealthCheck, event, settings

from greensim.base.errors import GreensimError

_ENV = os.environ.get("GREENSIM_FUZZ_EXAMPLES")
EXAMPLES = int(_ENV) if _ENV else 25

#: hypothesis settings of every fuzz test: bounded, no deadline, deterministic unless the
#: long profile is asked for.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=_ENV is None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

#: seconds one example may take before it counts as a hang
EXAMPLE_TIMEOUT_S = float(os.environ.get("GREENSIM_FUZZ_TIMEOUT_S", "30"))

#: values that a file may hold where a number, a name or a section is expected
BAD_VALUES: List[Any] = [
    0,
    -1,
    -0.5,
    0.5,
    1e-300,
    5e-324,
    1e300,
    10**30,
    2**63,
    -(2**63),
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "text",
    "1e3",
    "\u200b",
    None,
    True,
    [],
    {},
    [1, 2],
    {"a": 1},
]

#: a number any summary value of a completed tiny run stays below (absolute value)
SANE_MAX = 1e15


class Hang(AssertionError):
    """An example ran longer than EXAMPLE_TIMEOUT_S."""


@contextlib.contextmanager
def time_limit(seconds: float = EXAMPLE_TIMEOUT_S):
    """Fail an example that runs too long (a hang or an unbounded allocation), main thread only."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"example took more than {seconds:g} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def walk_numbers(x: Any, path: str = "") -> Iterable[Tuple[str, float]]:
    """(dotted path, value) of every number in a nested dict/list."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from walk_numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from walk_numbers(v, f"{path}.{i}")
    elif isinstance(x, (bool, np.bool_)):
        return
    elif isinstance(x, (int, float, np.integer, np.floating)):
        yield path, float(x)


def check_summary(summary: dict, requests=None) -> None:
    """A completed run: every number finite and of a physical size; counts add up.

    The one documented exception: TPOT statistics are NaN when no completed request has two
    or more output tokens (a time per output token needs a second token).
    """
    no_tpot = requests is not None and not bool(
        ((requests["n_output_tokens"] > 1) & ~requests["rejected"].astype(bool)).any()
    )
    bad = [
        (p, v)
        for p, v in walk_numbers(summary)
        if (not math.isfinite(v) or abs(v) > SANE_MAX) and not (no_tpot and "tpot_s" in p and math.isnan(v))
    ]
    assert not bad, f"a completed run reported non-finite or absurd numbers: {bad[:5]}"
    n = summary["n_requests"]
    assert summary["n_completed"] + summary["n_rejected"] == n
    assert summary["n_completed"] >= 1, "a run that completed nothing should have stopped with the reason"
    for k in ("energy_kwh", "operational_gco2", "embodied_gco2", "duration_s"):
        assert summary[k] >= 0, (k, summary[k])


def check_message(msg: str, locators: Sequence[str]) -> None:
    """A greensim error message: one readable paragraph that names one of ``locators``."""
    assert msg.strip(), "empty error message"
    assert "Traceback" not in msg, msg
    low = msg.lower()
    named = [loc for loc in locators if loc and str(loc).lower() in low]
    assert named, f"the message names none of {list(locators)}: {msg}"


def api_outcome(fn: Callable[[], Any], locators: Sequence[str]) -> str:
    """Call an API entry point; 'ok' (result checked by the caller) or 'error' (message checked).

    Any exception other than a GreensimError propagates, and so fails the test. numpy overflow
    warnings are errors too: they mean a value was accepted that should have been refused.
    """
    with time_limit(), warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*overflow.*", category=RuntimeWarning)
        try:
            out = fn()
        except GreensimError as exc:
            check_message(str(exc), locators)
            event(f"error: {type(exc).__name__}")
            return "error"
    event("completed")
    return out


def cli_outcome(args: Sequence[Any], locators: Sequence[str]) -> Any:
    """Run the command line in-process; exit 0 (the result is returned) or 2 with a clear message."""
    from greensim.cli import main

    with time_limit(), warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*overflow.*", category=RuntimeWarning)
        res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exit_code == 0:
        event(f"{args[0]}: exit 0")
        return res
    exc = res.exception
    if res.exit_code != 2 or not isinstance(exc, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) if exc else ""
        raise AssertionError(f"greensim {' '.join(map(str, args))}: exit {res.exit_code}\n{res.output}\n{tb}")
    err = res.stderr if res.stderr else res.output
    assert err.lstrip().startswith("error:") or "Usage:" in err, err
    check_message(err, list(locators) + (["Usage:"] if "Usage:" in err else []))
    event(f"{args[0]}: exit 2")
    return None
