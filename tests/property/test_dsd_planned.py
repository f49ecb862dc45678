"""Speculative decoding: the planned-run path (constant gamma, roofline) against the slot path,
and the law of the tokens it emits per iteration."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_experiment
from hypothesis import given, settings
from scipy import stats
from test_dsd_invariants import dsd_experiments, spec_group

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.core.simulation import Simulation
from greensim.core.spec_instance import SpecInstance
from greensim.experiment.load import parse_experiment


def _both(d, monkeypatch):
    p = prepare(parse_experiment(d))
    a = simulate(p)
    with monkeypatch.context() as m:
        m.setattr(SpecInstance, "plan_runs", False)
        b = simulate(prepare(parse_experiment(d)))
    return a, b


@settings(max_examples=60)
@given(d=dsd_experiments())
def test_planned_runs_equal_the_slot_path(d, monkeypatch_module):
    """Same draws, same iterations: identical times and tokens, shares equal to rounding."""
    d["cluster"]["instances"][0]["speculative"]["gamma_policy"] = "fixed"
    a, b = _both(d, monkeypatch_module)
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=False, rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(a.instances, b.instances, check_exact=False, rtol=1e-9, atol=1e-9)
    for k in ("ttft_s_p50", "e2e_s_mean", "n_preemptions", "carbon_gco2"):
        assert a.summary[k] == pytest.approx(b.summary[k], rel=1e-9)


def test_planned_runs_equal_the_slot_path_under_preemption(monkeypatch):
    d = make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "workload.n_requests": 30,
            "workload.rate_rps": 100.0,
            "workload.input_tokens": {"dist": "constant", "value": 500},
            "workload.output_tokens": {"dist": "uniform", "low": 400, "high": 800},
            "cluster.instances": [spec_group(0.8, 6, split=False, max_batch_size=64, memory_reserve_frac=0.75)],
        }
    )
    a, b = _both(d, monkeypatch)
    assert a.summary["n_preemptions"] > 0
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=False, rtol=1e-9, atol=1e-12)


def _tokens_per_full_iteration(g, seed, monkeypatch):
    """Tokens emitted in each full-gamma iteration, one request per batch."""
    seen = []
    orig = SpecInstance._finish_planned

    def finish(self):
        n0, t0 = self.n_full_draws, self.n_full_tokens
        orig(self)
        if self.n_full_draws == n0 + 1:
            seen.append(self.n_full_tokens - t0)

    monkeypatch.setattr(SpecInstance, "_finish_planned", finish)
    d = make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "seed": seed,
            "workload.n_requests": 40,
            "workload.rate_rps": 100.0,
            "workload.input_tokens": {"dist": "constant", "value": 64},
            "workload.output_tokens": {"dist": "constant", "value": 1500},
            "cluster.instances": [g],
        }
    )
    p = prepare(parse_experiment(d))
    sim = Simulation(p.table, p.instances, p.router_factory(), p.bin_s, speculative=p.speculative())
    sim.run()
    assert sim.instances[0]._planned
    return np.array(seen)


@pytest.mark.parametrize("alphas", [[0.7] * 4, [0.9, 0.8, 0.5, 0.3, 0.6]])
def test_tokens_per_iteration_follow_the_acceptance_law(alphas, monkeypatch):
    """Chi-square of the tokens-per-iteration histogram against P(X = k) of the
    (per-position) acceptance model, k = 1..gamma+1."""
    gamma = len(alphas)
    g = spec_group(0.5, gamma, max_batch_size=1)
    if len(set(alphas)) == 1:
        g["speculative"]["alpha"] = alphas[0]
    else:
        del g["speculative"]["alpha"]
        g["speculative"]["alpha_by_position"] = alphas
    x = _tokens_per_full_iteration(g, 3, monkeypatch)
    surv = np.cumprod(alphas)
    pk = np.append(np.append(1.0, surv[:-1]) * (1 - np.array(alphas)), surv[-1])
    obs = np.bincount(x, minlength=gamma + 2)[1:]
    assert obs.sum() == len(x) > 10000 and len(obs) == gamma + 1
    assert stats.chisquare(obs, pk * len(x)).pvalue > 1e-4
    # and it can fail: the law of one position less is rejected
    pk2 = np.append(pk[:-2], pk[-2:].sum())
    obs2 = np.append(obs[:-2], obs[-2:].sum())
    assert stats.chisquare(obs2, np.roll(pk2, 1) * len(x)).pvalue < 1e-6
