"""Properties of workload options and generators: rate scaling, windows, determinism."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_experiment
from hypothesis import given, settings
from hypothesis import strategies as st

from greensim.experiment.load import parse_experiment
from greensim.workloads import build_workload


def build(wl, seed=1):
    e = parse_experiment(make_experiment(workload=wl, seed=seed))
    return build_workload(e.workload, np.random.SeedSequence(seed))


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """A 400-request Poisson trace with random lengths (written once per module)."""
    rng = np.random.default_rng(0)
    p = tmp_path_factory.mktemp("wl") / "trace.csv"
    t = np.cumsum(rng.exponential(0.5, 400))
    pd.DataFrame(
        {
            "arrival_time_s": t,
            "input_tokens": rng.integers(1, 4000, t.size),
            "output_tokens": rng.integers(1, 500, t.size),
        }
    ).to_csv(p, index=False)
    return str(p)


@given(k=st.floats(0.05, 20.0))
def test_rate_scale_scales_rate_and_keeps_lengths(src, k):
    base = build({"kind": "trace", "path": src})
    scaled = build({"kind": "trace", "path": src, "rate_scale": k})
    assert np.allclose(scaled.arrival_s * k, base.arrival_s)
    rate = lambda t: (len(t) - 1) / (t[-1] - t[0])  # noqa: E731
    assert rate(scaled.arrival_s) == pytest.approx(k * rate(base.arrival_s), rel=1e-9)
    assert (scaled.n_input_tokens == base.n_input_tokens).all() and (
        scaled.n_output_tokens == base.n_output_tokens
    ).all()


@given(a=st.floats(0, 150), w=st.floats(1, 100))
def test_window_keeps_exactly_the_arrivals_inside(src, a, w):
    base = build({"kind": "trace", "path": src})
    inside = (base.arrival_s >= a) & (base.arrival_s < a + w)
    if not inside.any():
        return
    win = build({"kind": "trace", "path": src, "window_start_s": a, "window_end_s": a + w})
    assert len(win) == int(inside.sum())
    assert np.allclose(win.arrival_s, base.arrival_s[inside] - a)
    assert (win.arrival_s >= 0).all() and (win.arrival_s < w).all()
    assert (win.n_input_tokens == base.n_input_tokens[inside]).all()


@given(until=st.floats(1, 2000))
def test_repeat_covers_horizon_and_stays_sorted(src, until):
    t = build({"kind": "trace", "path": src, "repeat_until_s": until})
    assert (np.diff(t.arrival_s) >= 0).all() and t.arrival_s[-1] < until
    base = build({"kind": "trace", "path": src})
    n_full = int(until // (base.arrival_s[-1] + base.arrival_s[-1] / (len(base) - 1)))
    assert len(t) >= n_full * len(base)


SYNTH = [
    {"process": "poisson", "rate_rps": 3.0},
    {"process": "gamma", "rate_rps": 3.0, "cv": 2.5},
    {"process": "diurnal", "mean_rate_rps": 3.0, "peak_to_trough": 2.5},
    {"process": "rate_series", "rates_rps": [1.0, 0.0, 5.0], "bin_s": 60.0},
    {"process": "fitted", "trace": "azure_llm_2023_code"},
]


@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), i=st.integers(0, len(SYNTH) - 1))
def test_same_seed_same_requests(seed, i):
    wl = {
        "kind": "synthetic",
        "n_requests": 500,
        "arrivals": SYNTH[i],
        "lengths": {"kind": "fitted", "trace": "mooncake_fast25_synthetic"},
    }
    a, b, c = build(wl, seed), build(wl, seed), build(wl, seed + 1)
    assert (a.arrival_s == b.arrival_s).all() and (a.n_input_tokens == b.n_input_tokens).all()
    assert (a.n_output_tokens == b.n_output_tokens).all()
    assert not (a.arrival_s == c.arrival_s).all()


@settings(max_examples=10)
@given(rate=st.floats(0.5, 50.0))
def test_changing_the_rate_leaves_lengths_unchanged(rate):
    """Arrivals and lengths draw from separate seed streams."""
    wl = lambda r: {
        "kind": "synthetic",
        "n_requests": 300,
        "arrivals": {"process": "poisson", "rate_rps": r},  # noqa: E731
        "lengths": {"kind": "fitted", "trace": "azure_llm_2023_conv"},
    }
    a, b = build(wl(rate)), build(wl(2 * rate))
    assert (a.n_input_tokens == b.n_input_tokens).all()
    assert np.allclose(a.arrival_s, 2 * b.arrival_s)
