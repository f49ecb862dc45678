"""Prefill/decode disaggregation (DPD): invariants over random small clusters (hypothesis)."""

import math

import numpy as np
import pytest
from conftest import make_experiment
from hypothesis import given, settings
from hypothesis import strategies as st

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.core.instance import Instance
from greensim.experiment.load import parse_experiment


@st.composite
def dpd_experiments(draw):
    def group(role):
        g = {
            "gpu": draw(st.sampled_from(["A100-80GB", "V100-32GB"])),
            "role": role,
            "count": draw(st.integers(1, 2)),
            "max_batch_size": draw(st.integers(1, 16)),
            "max_batched_tokens": draw(st.integers(512, 4096)),
            "chunked_prefill": draw(st.booleans()),
            "block_tokens": draw(st.sampled_from([1, 16])),
            # small KV caches (V100 0.5 -> ~2.5 GB, A100 0.8 -> ~2.6 GB) force backpressure/preemption
            "memory_reserve_frac": draw(st.sampled_from([0.1, 0.5])),
        }
        if g["gpu"] == "A100-80GB" and g["memory_reserve_frac"] == 0.5:
            g["memory_reserve_frac"] = 0.8
        return g

    bw = draw(st.sampled_from([math.inf, 0.5, 3.125, 25.0]))
    return make_experiment(
        **{
            "seed": draw(st.integers(0, 2**31)),
            "workload.n_requests": draw(st.integers(1, 40)),
            "workload.rate_rps": draw(st.floats(0.5, 200)),
            "workload.input_tokens": {"dist": "uniform", "low": 1, "high": draw(st.integers(1, 3000))},
            "workload.output_tokens": {"dist": "uniform", "low": 1, "high": draw(st.integers(1, 1500))},
            "cluster.router": draw(st.sampled_from(["round_robin", "join_shortest_queue"])),
            "cluster.instances": [group("prefill"), group("decode")],
            "cluster.disaggregation": {
                "decode_router": draw(st.sampled_from(["round_robin", "least_loaded", "kv_capacity_aware"])),
                "layerwise": draw(st.booleans()),
                "link": {
                    "bandwidth_gbs": float(bw),
                    "latency_s": draw(st.sampled_from([0.0, 1e-3])),
                    "scope": draw(st.sampled_from(["shared", "per_prefill", "per_decode", "per_pair"])),
                },
            },
        }
    )


def _check_kv(monkeypatch):
    """Before every instance event: KV use now and at the end of a decode run fits the cache."""
    orig = Instance._arm

    def armed(self, delay):
        assert self.free_kv_blocks >= 0
        if self._run is not None:
            _, n, _, k = self._run
            end_blocks = sum(-(-(r.kv_base + self.steps + k) // self.B) for r in self.decoding.values())
            assert end_blocks + self._prefill_blocks <= self.total_kv_blocks
        return orig(self, delay)

    monkeypatch.setattr(Instance, "_arm", armed)


@given(d=dpd_experiments())
def test_dpd_conservation_transfer_and_attribution(d, monkeypatch_module):
    """Every request once, tokens conserved, KV freed (check_drained), transfer >= bytes/bw,
    bytes = formula, energy and carbon attribution sum to the totals."""
    _check_kv(monkeypatch_module)
    p = prepare(parse_experiment(d))
    t = simulate(p)
    r, s = t.requests, t.summary
    assert s["n_completed"] + s["n_rejected"] == len(r)
    assert (r.reject_reason[r.rejected] != "").all()
    done = r[~r.rejected]
    assert (done.n_generated_tokens == done.n_output_tokens).all()
    assert (done.ttft_s >= done.queue_delay_s - 1e-12).all() and (done.ttft_s <= done.e2e_s + 1e-12).all()
    # requests with more than one output token went through a decode instance, others did not
    moved = done.n_output_tokens > 1
    assert (done.decode_instance[moved] >= 0).all() and (done.decode_instance[~moved] == -1).all()
    roles = [g["role"] for g in d["cluster"]["instances"] for _ in range(g["count"])]
    assert all(roles[i] == "prefill" for i in done.instance)
    assert all(roles[i] == "decode" for i in done.decode_instance[moved])
    # KV bytes = 2 x layers x kv_heads x head_dim x bytes x prompt tokens (Llama-2-7B: 32, 32, 128, 2)
    kv_per_token = 2 * 32 * 32 * 128 * 2
    np.testing.assert_array_equal(done.kv_transfer_bytes[moved], kv_per_token * done.n_input_tokens[moved])
    assert s.get("kv_transfer_bytes", 0.0) == pytest.approx(float(r.kv_transfer_bytes.sum()))
    link = d["cluster"]["disaggregation"]["link"]
    floor = done.kv_transfer_bytes[moved] / (link["bandwidth_gbs"] * 1e9) + link["latency_s"]
    assert (done.kv_transfer_s[moved] >= floor * (1 - 1e-9) - 1e-12).all()
    assert (done.decode_wait_s[moved] >= 0).all()
    # the decode part starts after the transfer (layer-wise: the transfer starts with the prefill)
    if not d["cluster"]["disaggregation"]["layerwise"]:
        assert (done.e2e_s[moved] >= (done.ttft_s + done.decode_wait_s + done.kv_transfer_s)[moved] - 1e-9).all()
    assert (done.e2e_s[moved] >= (done.queue_delay_s + done.decode_wait_s + done.kv_transfer_s)[moved] - 1e-9).all()
    assert r.energy_j.sum() == pytest.approx(t.instances.energy_j[t.instances.n_requests > 0].sum(), rel=1e-6, abs=1e-6)
    assert r.carbon_gco2.sum() + s["unattributed_gco2"] == pytest.approx(s["carbon_gco2"], rel=1e-6, abs=1e-9)
    assert t.instances.busy_s.sum() == pytest.approx(r.gpu_busy_s.sum(), rel=1e-6, abs=1e-9)


@given(d=dpd_experiments())
def test_dpd_closed_form_runs_match_one_event_per_iteration(d):
    """Closed-form decode runs (cut when a transfer arrives) match one event per iteration."""
    p = prepare(parse_experiment(d))
    a = simulate(p).requests
    b = simulate(p, max_run_iterations=1).requests
    for c in ["ttft_s", "e2e_s", "queue_delay_s", "energy_j", "gpu_busy_s", "decode_wait_s", "kv_transfer_s"]:
        np.testing.assert_allclose(a[c], b[c], rtol=1e-8, atol=1e-9, err_msg=c)
    assert (a.decode_instance == b.decode_instance).all()
    assert (a.n_preemptions == b.n_preemptions).all()


@given(d=dpd_experiments())
def test_dpd_same_seed_identical(d):
    import pandas as pd

    a, b = simulate(prepare(parse_experiment(d))), simulate(prepare(parse_experiment(d)))
    pd.testing.assert_frame_equal(a.requests, b.requests)


def _with_failures(d, draw_pol, scale_years, repair_s):
    """Weibull failures (shape 1: memoryless) on every prefill and decode group."""
    for g in d["cluster"]["instances"]:
        g["aging"] = {"failures": {"shape_k": 1.0, "scale_years": scale_years, "repair_s": repair_s}}
    d["cluster"]["disaggregation"]["on_decode_failure"] = draw_pol
    return d


@settings(max_examples=25)
@given(
    d=dpd_experiments(),
    pol=st.sampled_from(["reprefill", "resend"]),
    scale=st.sampled_from([1e-7, 5e-7, 3e-6]),
    repair=st.sampled_from([0.5, 3.0]),
)
def test_dpd_failures_lose_nothing_and_carbon_sums_hold(d, pol, scale, repair):
    """With prefill and decode instances failing: every request ends completed (all its
    tokens) or rejected with a reason, lost-work columns are consistent, and energy,
    busy time and carbon attributed to requests still sum to the instances' totals."""
    t = simulate(prepare(parse_experiment(_with_failures(d, pol, scale, repair))))
    r, s, inst = t.requests, t.summary, t.instances
    assert s["n_completed"] + s["n_rejected"] == len(r)
    assert (r.reject_reason[r.rejected] != "").all()
    done = r[~r.rejected]
    assert (done.n_generated_tokens == done.n_output_tokens).all()
    assert s["n_requeues"] == int(r.n_requeues.sum()) and s["failure_lost_tokens"] == int(r.failure_lost_tokens.sum())
    assert (r.failure_lost_busy_s >= 0).all() and (r.failure_lost_busy_s <= r.gpu_busy_s + 1e-9).all()
    assert (inst["busy_s"] + inst["down_s"] <= s["duration_s"] + 1e-6).all()
    assert r.energy_j.sum() == pytest.approx(inst.energy_j[inst.n_requests > 0].sum(), rel=1e-6, abs=1e-6)
    assert r.carbon_gco2.sum() + s["unattributed_gco2"] == pytest.approx(s["carbon_gco2"], rel=1e-6, abs=1e-9)
    assert inst.busy_s.sum() == pytest.approx(r.gpu_busy_s.sum(), rel=1e-6, abs=1e-9)
    assert s["failure_lost_gco2"] <= s["carbon_gco2"] + 1e-12
