"""Engine behaviour on hand-checkable cases."""

import numpy as np
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.experiment.load import parse_experiment


def run_tables(d, **kw):
    return simulate(prepare(parse_experiment(d)), **kw)


def test_single_request_timing_is_prefill_plus_decode_run():
    """One request alone: TTFT = one prefill iteration; E2E - TTFT = n_out-1 decode iterations."""
    d = make_experiment(
        **{
            "workload.n_requests": 1,
            "workload.input_tokens": {"dist": "constant", "value": 1000},
            "workload.output_tokens": {"dist": "constant", "value": 50},
            "cluster.instances": [{"gpu": "A100-80GB"}],
        }
    )
    p = prepare(parse_experiment(d))
    perf = p.instances[0][1]
    t = simulate(p).requests.iloc[0]
    assert t.ttft_s == pytest.approx(perf.iteration_time_s([(1000, 0)], 0, 0), rel=1e-12)
    dec = sum(perf.iteration_time_s((), 1, 1000 + 1 + j) for j in range(49))
    assert t.e2e_s - t.ttft_s == pytest.approx(dec, rel=1e-9)
    assert t.tpot_s == pytest.approx(dec / 49, rel=1e-9)
    assert t.queue_delay_s == 0.0


def test_output_of_one_token_finishes_at_prefill():
    d = make_experiment(**{"workload.n_requests": 5, "workload.output_tokens": {"dist": "constant", "value": 1}})
    r = run_tables(d).requests
    assert np.allclose(r.ttft_s, r.e2e_s) and r.tpot_s.isna().all() and r.slo_met.any()


def test_small_kv_cache_forces_preemption_and_everything_still_finishes():
    """With ~2.5 GB of KV (reserve 0.8), long outputs run out of blocks: recompute preemption."""
    d = make_experiment(
        **{
            "workload.rate_rps": 50,
            "workload.n_requests": 150,
            "workload.input_tokens": {"dist": "constant", "value": 500},
            "workload.output_tokens": {"dist": "constant", "value": 600},
            "cluster.instances": [{"gpu": "A100-80GB", "memory_reserve_frac": 0.8}],
        }
    )
    t = run_tables(d)
    assert t.summary["n_preemptions"] > 0
    assert t.summary["n_completed"] == 150
    assert (t.requests.n_generated_tokens == 600).all()


def test_request_too_large_for_the_cache_is_rejected_with_reason():
    # a long-context model (Llama-2-7B's 4,096 tokens would stop the run before the KV check)
    d = make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "workload.n_requests": 3,
            "workload.input_tokens": {"dist": "constant", "value": 30000},
            "workload.output_tokens": {"dist": "constant", "value": 10},
            "cluster.instances": [{"gpu": "A100-80GB", "memory_reserve_frac": 0.78}],
        }
    )
    r = run_tables(d).requests
    assert r.rejected.all()
    assert r.reject_reason.str.contains("KV blocks").all()


def test_prompt_over_token_budget_rejected_without_chunked_prefill_and_served_with_it():
    base = {
        "workload.n_requests": 4,
        "workload.input_tokens": {"dist": "constant", "value": 3000},
        "workload.output_tokens": {"dist": "constant", "value": 20},
    }
    off = run_tables(
        make_experiment(**base, **{"cluster.instances": [{"gpu": "A100-80GB", "max_batched_tokens": 2048}]})
    )
    assert off.summary["n_rejected"] == 4 and "chunked_prefill" in off.requests.reject_reason[0]
    on = run_tables(
        make_experiment(
            **base, **{"cluster.instances": [{"gpu": "A100-80GB", "max_batched_tokens": 2048, "chunked_prefill": True}]}
        )
    )
    assert on.summary["n_completed"] == 4


def test_batch_size_cap_queues_requests():
    """max_batch_size 1 serialises requests: each waits for the previous one to finish."""
    d = make_experiment(
        **{
            "workload.rate_rps": 100,
            "workload.n_requests": 20,
            "cluster.instances": [{"gpu": "A100-80GB", "max_batch_size": 1}],
        }
    )
    r = run_tables(d).requests.sort_values("arrival_s")
    start = r.arrival_s + r.queue_delay_s
    assert (start.to_numpy()[1:] >= r.arrival_s.to_numpy()[:-1] + r.e2e_s.to_numpy()[:-1] - 1e-9).all()


def test_join_shortest_queue_beats_round_robin_on_mixed_lengths():
    """Outputs of 10-1000 tokens with queues forming: JSQ cuts the TTFT tail and mean E2E vs round robin."""
    upd = {
        "workload.n_requests": 600,
        "workload.rate_rps": 11,
        "workload.output_tokens": {"dist": "uniform", "low": 10, "high": 1000},
    }
    rr = run_tables(make_experiment(**upd)).summary
    jsq = run_tables(make_experiment(**upd, **{"cluster.router": "join_shortest_queue"})).summary
    assert jsq["e2e_s_mean"] < rr["e2e_s_mean"]
    assert jsq["ttft_s_p99"] < 0.9 * rr["ttft_s_p99"]


def test_router_counts_requests_per_instance():
    t = run_tables(make_experiment(**{"cluster.instances": [{"gpu": "A100-80GB", "count": 3}]}))
    counts = t.instances.n_requests.tolist()
    assert sum(counts) == 200 and max(counts) - min(counts) <= 1  # round robin


def test_slo_classes_from_a_trace_column(tmp_path):
    """Requests of class 'batch' get the loose SLO pair; unnamed ones the default; unknown names fail."""
    (tmp_path / "t.csv").write_text(
        "arrival_time_s,input_tokens,output_tokens,slo_class\n0,100,20,chat\n0.5,100,20,batch\n1.0,100,20,\n"
    )
    d = make_experiment(
        **{
            "workload": {"kind": "trace", "path": str(tmp_path / "t.csv")},
            "slo": {
                "ttft_s": 1,
                "tpot_s": 0.1,
                "classes": {"chat": {"ttft_s": 0.5, "tpot_s": 0.05}, "batch": {"ttft_s": 60, "tpot_s": 1}},
            },
        }
    )
    r = run_tables(d).requests
    assert r.ttft_slo_s.tolist() == [0.5, 60, 1] and r.slo_class.tolist() == ["chat", "batch", ""]
    from greensim.base.errors import ConfigError

    d["slo"]["classes"].pop("batch")
    with pytest.raises(ConfigError, match="SLO class 'batch'.*Add slo.classes.batch"):
        run_tables(d)


def test_result_save_plots_writes_the_run_pngs(tmp_path):
    """A notebook user gets the same PNGs as a results folder from a run that wrote nothing."""
    import greensim

    res = greensim.run(make_experiment(), write=False)
    assert res.folder is None
    paths = res.save_plots(tmp_path / "plots")
    names = {p.name for p in paths}
    assert {"latency_cdf.png", "carbon_breakdown.png", "timeline.png"} <= names
    assert all(p.stat().st_size > 10_000 for p in paths)
