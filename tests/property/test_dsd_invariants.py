"""Speculative decoding (DSD split and colocated): invariants and the acceptance closed form."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_experiment
from hypothesis import given, settings
from hypothesis import strategies as st

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.core.simulation import Simulation
from greensim.core.spec_instance import SpecInstance, expected_tokens_per_iteration
from greensim.experiment.load import parse_experiment


def spec_group(alpha, gamma, split=True, policy="fixed", **kw):
    sp = {"draft_model": "Llama-3.2-1B", "alpha": alpha, "gamma": gamma, "gamma_policy": policy}
    if split:
        sp.update(draft_gpu="V100-32GB", link={"kind": "pcie_gen4_x16", "latency_s": 1e-5})
    return {"gpu": "A100-80GB", "speculative": sp, **kw}


@st.composite
def dsd_experiments(draw):
    g = spec_group(
        draw(st.floats(0.0, 0.95)),
        draw(st.integers(1, 8)),  # gamma >= 1: speculation with no draft tokens is a config error
        split=draw(st.booleans()),
        policy=draw(st.sampled_from(["fixed", "goodput"])),
        count=draw(st.integers(1, 2)),
        max_batch_size=draw(st.integers(1, 16)),
        block_tokens=draw(st.sampled_from([1, 16])),
        # 0.75 leaves ~1.5-4 GB of KV on the A100: preemptions happen
        memory_reserve_frac=draw(st.sampled_from([0.1, 0.75])),
    )
    return make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "seed": draw(st.integers(0, 2**31)),
            "workload.n_requests": draw(st.integers(1, 40)),
            "workload.rate_rps": draw(st.floats(0.5, 200)),
            "workload.input_tokens": {"dist": "uniform", "low": 1, "high": draw(st.integers(1, 3000))},
            "workload.output_tokens": {"dist": "uniform", "low": 1, "high": draw(st.integers(1, 1500))},
            "cluster.router": draw(st.sampled_from(["round_robin", "join_shortest_queue"])),
            "cluster.instances": [g],
        }
    )


def _check_kv(monkeypatch):
    """Before every event: block bookkeeping is exact and the iteration's peak KV fits."""
    orig = SpecInstance._arm

    def armed(self, delay):
        n = len(self.running)
        I = self._I
        held = int(I[:n, 4].sum())
        if self._plan[0] == "prefill":  # just-admitted prompts are not in the slots yet
            held += sum(r.blocks for r, _ in self._plan[2])
        assert self._used == held
        if self._plan[0] == "spec":
            gs = self._plan[2]
            g = self._plan[8]
            peak = I[:n, 0] + I[:n, 2] + (g if gs is None else gs)
            assert int((-(-peak // self.B)).sum()) <= self.total_kv_blocks
        return orig(self, delay)

    monkeypatch.setattr(SpecInstance, "_arm", armed)


@given(d=dsd_experiments())
def test_dsd_conservation_and_attribution(d, monkeypatch_module):
    """Every request once, tokens conserved, KV freed on both GPUs, attribution sums to totals,
    and each speculative iteration's peak KV (gamma+1 positions per request) fits the cache."""
    _check_kv(monkeypatch_module)
    p = prepare(parse_experiment(d))
    t = simulate(p)  # Simulation.run checks every instance drained with no KV blocks held
    r, s = t.requests, t.summary
    assert s["n_completed"] + s["n_rejected"] == len(r)
    done = r[~r.rejected]
    assert (done.n_generated_tokens == done.n_output_tokens).all()
    assert (done.ttft_s >= done.queue_delay_s - 1e-12).all() and (done.ttft_s <= done.e2e_s + 1e-12).all()
    split = "draft_gpu" in d["cluster"]["instances"][0]["speculative"]
    assert len(t.instances) == d["cluster"]["instances"][0]["count"] * (2 if split else 1)
    if split:
        assert (done.draft_instance >= d["cluster"]["instances"][0]["count"]).all()
    assert r.energy_j.sum() == pytest.approx(t.instances.energy_j[t.instances.n_requests > 0].sum(), rel=1e-6, abs=1e-6)
    assert r.carbon_gco2.sum() + s["unattributed_gco2"] == pytest.approx(s["carbon_gco2"], rel=1e-6, abs=1e-9)
    assert t.instances.busy_s.sum() == pytest.approx(r.gpu_busy_s.sum(), rel=1e-6, abs=1e-9)
    b = simulate(p, max_run_iterations=1)  # one event per iteration already: identical
    pd.testing.assert_frame_equal(t.requests, b.requests)


@given(d=dsd_experiments(), alpha2=st.floats(0.0, 0.95))
def test_dsd_seeded_and_acceptance_draws_do_not_shift_arrivals(d, alpha2):
    a, b = simulate(prepare(parse_experiment(d))), simulate(prepare(parse_experiment(d)))
    pd.testing.assert_frame_equal(a.requests, b.requests)
    d["cluster"]["instances"][0]["speculative"]["alpha"] = alpha2
    c = simulate(prepare(parse_experiment(d)))
    pd.testing.assert_series_equal(a.requests.arrival_s, c.requests.arrival_s)
    pd.testing.assert_series_equal(a.requests.n_output_tokens, c.requests.n_output_tokens)


@settings(max_examples=15)
@given(alpha=st.floats(0.0, 0.95), gamma=st.integers(1, 8), seed=st.integers(0, 2**31))
def test_mean_tokens_per_target_iteration_matches_closed_form(alpha, gamma, seed):
    """Mean tokens per verify pass (requests drafting the full gamma) = (1-a^(g+1))/(1-a)."""
    d = make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "seed": seed,
            "workload.n_requests": 16,
            "workload.rate_rps": 100.0,
            "workload.input_tokens": {"dist": "constant", "value": 64},
            "workload.output_tokens": {"dist": "constant", "value": 1500},
            "cluster.instances": [spec_group(alpha, gamma, max_batch_size=16)],
        }
    )
    p = prepare(parse_experiment(d))
    sim = Simulation(p.table, p.instances, p.router_factory(), p.bin_s, speculative=p.speculative())
    sim.run()
    inst = sim.instances[0]
    assert isinstance(inst, SpecInstance)
    n, tokens = inst.n_full_draws, inst.n_full_tokens
    mean = expected_tokens_per_iteration(alpha, gamma)
    k = np.arange(1, gamma + 2)
    pk = np.append((1 - alpha) * alpha ** (k[:-1] - 1), alpha**gamma)  # P(X = k)
    sd = np.sqrt((pk * k**2).sum() - mean**2)
    assert pk.sum() == pytest.approx(1.0)
    assert n > 1000
    assert abs(tokens / n - mean) <= 5 * sd / np.sqrt(n) + 1e-12


def test_dsd_small_cache_preempts_and_peaks_still_fit(monkeypatch):
    """~1.5 GB of KV for 30 long requests: lookahead reservations outgrow the cache, so
    speculative iterations preempt; every peak still fits and everything completes."""
    _check_kv(monkeypatch)
    d = make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "workload.n_requests": 30,
            "workload.rate_rps": 100.0,
            "workload.input_tokens": {"dist": "constant", "value": 500},
            "workload.output_tokens": {"dist": "constant", "value": 600},
            "cluster.instances": [spec_group(0.8, 6, split=False, max_batch_size=64, memory_reserve_frac=0.75)],
        }
    )
    t = simulate(prepare(parse_experiment(d)))
    assert t.summary["n_preemptions"] > 0
    assert t.summary["n_completed"] == 30 and (t.requests.n_generated_tokens == 600).all()


@settings(max_examples=10)
@given(alphas=st.lists(st.floats(0.0, 0.95), min_size=1, max_size=6), seed=st.integers(0, 2**31))
def test_per_position_acceptance_matches_its_closed_form(alphas, seed):
    """Per-position model: mean tokens per full iteration = 1 + sum_k prod_{j<=k} a_j."""
    gamma = len(alphas)
    g = spec_group(0.5, gamma, max_batch_size=16)
    del g["speculative"]["alpha"]
    g["speculative"]["alpha_by_position"] = alphas
    d = make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "seed": seed,
            "workload.n_requests": 16,
            "workload.rate_rps": 100.0,
            "workload.input_tokens": {"dist": "constant", "value": 64},
            "workload.output_tokens": {"dist": "constant", "value": 1500},
            "cluster.instances": [g],
        }
    )
    p = prepare(parse_experiment(d))
    sim = Simulation(p.table, p.instances, p.router_factory(), p.bin_s, speculative=p.speculative())
    sim.run()
    inst = sim.instances[0]
    surv = np.cumprod(alphas)  # P(X > k), k = 1..gamma
    k = np.arange(1, gamma + 2)
    pk = np.append(np.append(1.0, surv[:-1]) * (1 - np.array(alphas)), surv[-1])  # P(X = k)
    mean = 1 + surv.sum()
    sd = np.sqrt((pk * k**2).sum() - mean**2)
    assert (pk * k).sum() == pytest.approx(mean)
    n = inst.n_full_draws
    assert n > 1000
    assert abs(inst.n_full_tokens / n - mean) <= 5 * sd / np.sqrt(n) + 1e-12


@settings(max_examples=25)
@given(
    d=dsd_experiments(),
    mode=st.sampled_from(["fallback", "stall"]),
    scale=st.sampled_from([1e-7, 5e-7, 3e-6]),
    repair=st.sampled_from([0.5, 3.0]),
)
def test_dsd_failures_lose_nothing_and_carbon_sums_hold(d, mode, scale, repair, monkeypatch_module):
    """Targets and draft GPUs failing (memoryless hazard): every request ends completed or
    rejected with a reason, KV bookkeeping stays exact, and attribution sums to the totals."""
    _check_kv(monkeypatch_module)
    g = d["cluster"]["instances"][0]
    fail = {"failures": {"shape_k": 1.0, "scale_years": scale, "repair_s": repair}}
    g["aging"] = fail
    if "draft_gpu" in g["speculative"]:
        g["speculative"].update(draft_aging=fail, on_draft_failure=mode)
    t = simulate(prepare(parse_experiment(d)))
    r, s, inst = t.requests, t.summary, t.instances
    assert s["n_completed"] + s["n_rejected"] == len(r)
    assert (r.reject_reason[r.rejected] != "").all()
    done = r[~r.rejected]
    assert (done.n_generated_tokens == done.n_output_tokens).all()
    assert s["n_failures"] == int(inst.n_failures.sum()) and s["n_requeues"] == int(r.n_requeues.sum())
    assert (inst["busy_s"] + inst["down_s"] <= s["duration_s"] + 1e-6).all()
    assert r.energy_j.sum() == pytest.approx(inst.energy_j[inst.n_requests > 0].sum(), rel=1e-6, abs=1e-6)
    assert r.carbon_gco2.sum() + s["unattributed_gco2"] == pytest.approx(s["carbon_gco2"], rel=1e-6, abs=1e-9)
    assert inst.busy_s.sum() == pytest.approx(r.gpu_busy_s.sum(), rel=1e-6, abs=1e-9)
