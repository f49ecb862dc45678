"""GPU failures on DPD and DSD instances (issue 17): exact timings from fixed failure
schedules, checked against hand computation with the bound performance models."""

import math

import numpy as np
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.experiment.load import parse_experiment

N_IN, N_OUT = 500, 60
KVB = 2 * 32 * 32 * 128 * 2  # Llama-2-7B KV bytes per token
BW, LAT = 25e9, 1e-3


class FixedFailures:
    """A FailureModel with given absolute failure times per instance and a fixed repair time."""

    def __init__(self, times, repair_s):
        self.times = {k: sorted(v) for k, v in times.items()}
        self.repair_s = repair_s

    def time_to_failure_s(self, i, now_s):
        ts = [t for t in self.times.get(i, []) if t >= now_s]
        if not ts:
            return None
        self.times[i].remove(ts[0])
        return ts[0] - now_s

    def repair_time_s(self, i, now_s):
        return self.repair_s

    def on_repaired(self, i, now_s):
        pass


def _one_request(**kw):
    upd = {
        "workload.n_requests": 1,
        "workload.input_tokens": {"dist": "constant", "value": N_IN},
        "workload.output_tokens": {"dist": "constant", "value": N_OUT},
    }
    upd.update(kw)
    return make_experiment(**upd)


def _dpd(policy="reprefill"):
    return _one_request(
        **{
            "cluster.instances": [
                {"gpu": "A100-80GB", "role": "prefill"},
                {"gpu": "V100-32GB", "role": "decode", "count": 2},
            ],
            "cluster.disaggregation": {
                "decode_router": "round_robin",
                "on_decode_failure": policy,
                "link": {"bandwidth_gbs": BW / 1e9, "latency_s": LAT},
            },
        }
    )


def _run(d, fm=None):
    p = prepare(parse_experiment(d))
    if fm is not None:
        p.failures = fm
    return p, simulate(p)


def _balanced(t):
    r, s, i = t.requests, t.summary, t.instances
    assert s["n_completed"] + s["n_rejected"] == len(r)
    done = r[~r.rejected]
    assert (done.n_generated_tokens == done.n_output_tokens).all()
    assert r.carbon_gco2.sum() + s["unattributed_gco2"] == pytest.approx(s["carbon_gco2"], rel=1e-9, abs=1e-12)
    assert i.busy_s.sum() == pytest.approx(r.gpu_busy_s.sum(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("policy", ["reprefill", "resend"])
def test_decode_failure_mid_decode_costs_one_prefill_and_one_transfer(policy):
    """Decode instance 1 fails after j whole decode steps: the request is prefilled again
    (resend: only the tokens generated since its transfer, the prompt's KV cached), sent
    to decode instance 2 and finishes its remaining steps there."""
    p, base = _run(_dpd(policy))
    pre, dec = p.instances[0][1], p.instances[1][1]
    r0 = base.requests.iloc[0]
    t2 = r0.arrival_s + r0.ttft_s + r0.kv_transfer_s  # decode starts (decode instance idle)
    j = 20
    t_f = t2 + dec.decode_run_time_s(1, N_IN + 1, j) + 1e-4  # inside step j + 1
    p, t = _run(_dpd(policy), FixedFailures({1: [t_f]}, repair_s=1e3))
    r = t.requests.iloc[0]
    kv = N_IN + j  # KV tokens at the failure: prompt + j decoded (the first token's KV comes with step 1)
    if policy == "reprefill":
        t_pre = pre.iteration_time_s([(kv + 1, 0)], 0, 0)
    else:  # the prompt's KV (sent once) is cached on the prefill side
        t_pre = pre.iteration_time_s([(kv + 1 - N_IN, N_IN)], 0, 0)
    x2 = (kv + 1) * KVB / BW + LAT
    rest = dec.decode_run_time_s(1, kv + 2, N_OUT - j - 2)
    assert (r.arrival_s + r.e2e_s) == pytest.approx(t_f + t_pre + x2 + rest, rel=1e-12)
    assert r.n_requeues == 1 and r.failure_lost_tokens == kv and r.decode_instance == 2
    assert r.kv_transfer_bytes == (kv + 1) * KVB
    # lost work: the interrupted step (1e-4 s) and the re-prefill
    assert r.failure_lost_busy_s == pytest.approx(1e-4 + t_pre, rel=1e-9)
    assert t.summary["failure_lost_tokens"] == kv and t.summary["n_failures"] == 1
    assert t.instances.set_index("instance").loc[1, "down_s"] == pytest.approx((r.arrival_s + r.e2e_s) - t_f, rel=1e-12)
    _balanced(t)


def test_transfer_to_failed_decode_instance_is_cancelled_and_resent():
    """A KV transfer in flight to a decode instance that fails starts again, from the
    failure, to the other decode instance; nothing is recomputed."""
    p, base = _run(_dpd())
    dec = p.instances[1][1]
    r0 = base.requests.iloc[0]
    t1 = r0.arrival_s + r0.ttft_s
    x = N_IN * KVB / BW + LAT
    t_f = t1 + x / 2
    p, t = _run(_dpd(), FixedFailures({1: [t_f]}, repair_s=1e3))
    r = t.requests.iloc[0]
    assert (r.arrival_s + r.e2e_s) == pytest.approx(t_f + x + dec.decode_run_time_s(1, N_IN + 1, N_OUT - 1), rel=1e-12)
    assert r.decode_instance == 2 and r.n_requeues == 0 and r.failure_lost_tokens == 0
    # the transfer that delivered took x; the wait for a decode instance counts from the prefill's end
    assert r.kv_transfer_s == pytest.approx(x, rel=1e-9) and r.decode_wait_s == pytest.approx(t_f - t1, rel=1e-9)
    _balanced(t)


def test_prefill_failure_reroutes_and_pending_kv_is_lost():
    """A prefill instance failing mid-prefill: the request waits for the repair (the only
    prefill instance) and is prefilled from scratch; the interrupted part is lost work."""
    p, base = _run(_dpd())
    pre = p.instances[0][1]
    r0 = base.requests.iloc[0]
    t_p = pre.iteration_time_s([(N_IN, 0)], 0, 0)
    t_f = r0.arrival_s + t_p / 2
    p, t = _run(_dpd(), FixedFailures({0: [t_f]}, repair_s=5.0))
    r = t.requests.iloc[0]
    assert r.ttft_s == pytest.approx(t_f + 5.0 + t_p - r0.arrival_s, rel=1e-12)
    assert r.e2e_s == pytest.approx(r0.e2e_s + t_f + 5.0 - r0.arrival_s, rel=1e-9)
    assert r.n_requeues == 1 and r.failure_lost_tokens == 0
    assert r.failure_lost_busy_s == pytest.approx(t_p / 2, rel=1e-9)
    _balanced(t)


def _dsd(mode, alpha=0.0, gamma=3):
    sp = {
        "draft_model": "Llama-3.2-1B",
        "alpha": alpha,
        "gamma": gamma,
        "draft_gpu": "V100-32GB",
        "link": {"kind": "pcie_gen4_x16", "latency_s": 1e-5},
        "on_draft_failure": mode,
    }
    return _one_request(**{"model": "Llama-3.1-8B", "cluster.instances": [{"gpu": "A100-80GB", "speculative": sp}]})


def test_draft_failure_fallback_decodes_plainly_on_the_target():
    """alpha = 0: one token per pass. The draft GPU fails during the first speculative
    iteration's draft phase and stays down: the target then verifies one position per
    pass (plain decoding) to the end."""
    p, base = _run(_dsd("fallback"))
    tgt = p.instances[0][1]
    r0 = base.requests.iloc[0]
    t_f = r0.arrival_s + r0.ttft_s + 1e-6
    p, t = _run(_dsd("fallback"), FixedFailures({1: [t_f]}, repair_s=1e3))
    r = t.requests.iloc[0]
    expect = t_f + sum(tgt.verify_uniform_time_s(1, 1, N_IN + g - 1) for g in range(1, N_OUT))
    assert (r.arrival_s + r.e2e_s) == pytest.approx(expect, rel=1e-12)
    inst = t.instances.set_index("instance")
    assert inst.loc[0, "n_fallback_iterations"] == N_OUT - 1 and inst.loc[1, "n_failures"] == 1
    assert r.failure_lost_busy_s == pytest.approx(1e-6, rel=1e-6)  # the abandoned draft work
    _balanced(t)


def test_draft_failure_stall_waits_for_repair_then_rebuilds_draft_kv():
    p, base = _run(_dsd("stall"))
    drf = p.speculative()[0].draft_perf
    r0 = base.requests.iloc[0]
    t_f = r0.arrival_s + r0.ttft_s + 1e-6
    p, t = _run(_dsd("stall"), FixedFailures({1: [t_f]}, repair_s=7.0))
    r = t.requests.iloc[0]
    catchup = drf.iteration_time_s([(N_IN, 0)], 0, 0)  # the draft KV of prompt + first token
    # after the repair and the catch-up prefill, the run is the baseline's from its first iteration
    assert (r.arrival_s + r.e2e_s) == pytest.approx(
        (r0.arrival_s + r0.e2e_s) + (t_f + 7.0 - (r0.arrival_s + r0.ttft_s)) + catchup, rel=1e-9
    )
    assert r.failure_lost_busy_s == pytest.approx(1e-6 + catchup, rel=1e-6)
    _balanced(t)


def test_dsd_target_failure_restarts_request():
    p, base = _run(_dsd("fallback", alpha=0.6))
    r0 = base.requests.iloc[0]
    t_f = r0.arrival_s + r0.ttft_s + 0.5 * (r0.e2e_s - r0.ttft_s)
    p, t = _run(_dsd("fallback", alpha=0.6), FixedFailures({0: [t_f]}, repair_s=3.0))
    r = t.requests.iloc[0]
    assert r.n_requeues == 1 and r.failure_lost_tokens > N_IN and (r.arrival_s + r.e2e_s) > t_f + 3.0
    assert r.n_generated_tokens == N_OUT
    _balanced(t)


def test_config_choices_and_draft_aging():
    d = _dsd("stall")
    d["cluster"]["instances"][0]["speculative"].update(
        draft_gpu_age_years=4.0, draft_aging={"throughput_loss_frac_per_year": 0.05}
    )
    p = prepare(parse_experiment(d))
    fresh = prepare(parse_experiment(_dsd("stall")))
    a, b = p.speculative()[0].draft_perf, fresh.speculative()[0].draft_perf
    assert a.decode_run_time_s(1, 100, 5) == pytest.approx(b.decode_run_time_s(1, 100, 5) / (1 - 0.2), rel=1e-12)
    bad = _dsd("stall")
    sp = bad["cluster"]["instances"][0]["speculative"]
    del sp["draft_gpu"], sp["link"]
    sp["draft_aging"] = {"throughput_loss_frac_per_year": 0.05}
    with pytest.raises(Exception, match="draft_aging needs draft_gpu"):
        parse_experiment(bad)
    with pytest.raises(Exception, match="on_decode_failure"):
        parse_experiment(_dpd("bogus"))


def test_no_failures_no_new_columns():
    _, t = _run(_dpd())
    assert "failure_lost_tokens" not in t.requests and "failure_lost_gco2" not in t.summary
    assert math.isfinite(t.summary["carbon_gco2"]) and np.all(t.requests.n_requeues == 0)


def test_failures_table_lists_every_failure_and_sums_to_the_down_time(tmp_path):
    """failures.parquet: one row per failure; its down time per instance equals the instances
    table's down_s and the summary's failure_down_s; runs without failures write none."""
    from pathlib import Path

    import pandas as pd

    import greensim

    ex = Path(__file__).resolve().parents[2] / "experiments" / "aging_failures_dpd.yaml"
    ov = {"workload.n_requests": 300, "performance.uncertainty": "none", "output.plots": False}
    res = greensim.run(ex, overrides=ov, out_dir=tmp_path)
    f = pd.read_parquet(next(tmp_path.rglob("failures.parquet")))
    s, inst = res.summary, res.instances
    assert len(f) == s["n_failures"] > 0
    assert f["down_for_s"].sum() == pytest.approx(s["failure_down_s"], rel=1e-12)
    per = f.groupby("instance")["down_for_s"].sum()
    for k, d in per.items():
        assert d == pytest.approx(inst.loc[inst["instance"] == k, "down_s"].iloc[0], rel=1e-12)
    assert (f["up_s"].isna() | (f["up_s"] > f["down_s"])).all()
    greensim.run(ex, overrides={**ov, "cluster.instances.1.aging": None}, out_dir=tmp_path / "none")
    assert not list((tmp_path / "none").rglob("failures.parquet"))
