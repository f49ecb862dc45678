"""Prefix caching (greensim.core.prefix_cache) against closed forms with stub latencies."""

import numpy as np
import pytest
from conftest import SHARED_DATA, make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.core.instance import InstanceConfig
from greensim.core.interfaces import BoundPerformance
from greensim.core.prefix_cache import PrefixCache
from greensim.core.requests import RequestTable
from greensim.core.simulation import Simulation
from greensim.experiment.load import parse_experiment
from greensim.policies.routers import JoinShortestQueue


class Linear(BoundPerformance):
    """An iteration takes ``a + b * (new prompt tokens)`` [s]; every decode step ``d`` [s].
    Records the prefill chunks (new tokens, cached tokens) it was asked to price."""

    idle_power_w = 10.0
    decode_power_w = 100.0

    def __init__(self, a=0.01, b=1e-4, d=0.02):
        self.a, self.b, self.d = a, b, d
        self.chunks = []

    def iteration_time_s(self, chunks, n_decode, decode_ctx_tokens):
        self.chunks += list(chunks)
        return self.a + self.b * sum(q for q, _ in chunks) if chunks else self.d

    def power_w(self, n_prefill_tokens, n_decode):
        return 200.0 if n_prefill_tokens else self.decode_power_w

    def decode_run_time_s(self, n, ctx0, k):
        return self.d * k


def _sim(arrival, n_in, n_out, ids, H=16, kv_blocks=10_000, chunked=False, caching=True, perf=None, **kw):
    cfg = InstanceConfig("i", "A100-80GB", 1, kv_blocks, 16, 256, 8192, chunked, 0, prefix_caching=caching, **kw)
    table = RequestTable(
        np.asarray(arrival, float),
        np.asarray(n_in, np.int64),
        np.asarray(n_out, np.int64),
        prefix_ids=ids,
        prefix_block_tokens=H,
    )
    perf = perf or Linear()
    sim = Simulation(table, [(cfg, perf)], JoinShortestQueue(), 1.0)
    sim.run()
    return sim, perf


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("H", [16, 512])
def test_second_request_prefills_only_the_suffix(chunked, H):
    """Two requests sharing a 1024-token prefix (+100 own tokens), the second after the first is
    done: its prefill is the chunk (100, 1024), so TTFT_0 - TTFT_1 = b * 1024 exactly."""
    nb = 1024 // H
    ids = [tuple(range(nb)) + (10_000,), tuple(range(nb)) + (20_000,)]
    sim, perf = _sim([0.0, 10.0], [1124, 1124], [5, 5], ids, H=H, chunked=chunked)
    ttft = sim.record.first_token_s - np.array([0.0, 10.0])
    assert ttft[0] == pytest.approx(perf.a + perf.b * 1124, rel=1e-12)
    assert ttft[1] == pytest.approx(perf.a + perf.b * 100, rel=1e-12)
    assert ttft[0] - ttft[1] == pytest.approx(perf.b * 1024, rel=1e-9)
    assert (100, 1024) in perf.chunks and (1124, 0) in perf.chunks
    assert sim.cached_prompt_tokens.tolist() == [0, 1024]
    st = sim.instances[0].prefix_cache.stats()
    assert st["prefix_lookups"] == 2 and st["prefix_hits"] == 1 and st["prefix_cached_tokens"] == 1024


def test_off_prices_the_whole_prompt_and_a_full_hit_still_computes_one_token():
    """Without caching both prefills are whole; a prompt wholly cached (1024 tokens, all blocks
    known) recomputes its last block's tokens: at most (need - 1) // H blocks are hit."""
    ids = [tuple(range(64)), tuple(range(64))]
    sim, perf = _sim([0.0, 10.0], [1024, 1024], [2, 2], ids, caching=False)
    assert perf.chunks.count((1024, 0)) == 2 and "cached_prompt_tokens" not in sim.record.extra
    sim, perf = _sim([0.0, 10.0], [1024, 1024], [2, 2], ids)
    assert sim.cached_prompt_tokens.tolist() == [0, 1008] and (16, 1008) in perf.chunks


def test_multi_turn_hits_the_previous_prompt_and_output():
    """Turn 2's prompt = turn 1's prompt (100) + output (60) + 40 new tokens; turn 1 left its
    whole blocks of prompt+output KV (159 tokens -> 9 blocks = 144 tokens) in the cache."""
    ids = [tuple(range(10)), tuple(range(12))]  # session stream blocks, 16 tokens each
    sim, perf = _sim([0.0, 50.0], [100, 200], [60, 5], ids)
    assert sim.cached_prompt_tokens.tolist() == [0, 144]
    assert (200 - 144, 144) in perf.chunks


def _one_out(ids, n_in, kv_blocks, gap=10.0):
    """Requests one after another (each done before the next), one output token each."""
    n = len(ids)
    return _sim([gap * i for i in range(n)], n_in, [1] * n, ids, kv_blocks=kv_blocks)


def test_lru_eviction_order_under_a_tiny_cache():
    """10 KV blocks, 16-token prefix blocks. A (49 tokens) caches keys 1,2,3; B caches 11,12,13;
    each is released last block first, so the LRU order is 3,2,1,13,12,11. C needs 9 blocks with
    4 free: 5 are evicted (3,2,1,13,12), and key 11 survives. D2 (keys 11..) then hits one
    block (16 tokens); D1 (keys 1..) misses."""
    ids = [(1, 2, 3), (11, 12, 13), tuple(range(21, 29)), (11, 12, 13), (1, 2, 3)]
    sim, _ = _one_out(ids, [49, 49, 129, 49, 49], kv_blocks=10)
    assert sim.cached_prompt_tokens.tolist() == [0, 0, 0, 16, 0]
    pc = sim.instances[0].prefix_cache
    assert pc.evicted_blocks >= 5
    pc.check()


def test_referenced_blocks_are_never_evicted():
    """The cache class alone: a request's referenced keys survive fit(0); unreferenced ones go,
    least recently used first; the overcount follows the references."""
    keys = [(1, 2, 3), (1, 2, 3), (7, 8)]
    hit = np.zeros(3, dtype=np.int64)
    pc = PrefixCache(keys, 32, 16, hit)  # 2 KV blocks per key
    assert pc.acquire(0, 0, 97, True) == 0 and pc.insert(0, 97) == 0  # A computed 3 keys
    assert pc.match(1, 97) == (3, 6)  # B hits 3 referenced keys: 6 blocks counted twice
    assert pc.acquire(1, 3, 97, True) == 6 and pc.shared_blocks == 6 and hit[1] == 96
    pc.acquire(2, 0, 70, True)
    assert pc.release(2, 70) == 0  # (7, 8) cached, unreferenced
    pc.fit(0)
    assert set(pc.ref) == {1, 2, 3} and pc.evicted_blocks == 4
    assert pc.release(0) == -6 and pc.shared_blocks == 0  # B still holds them
    pc.fit(0)
    assert set(pc.ref) == {1, 2, 3}
    pc.release(1)
    assert list(pc.lru) == [3, 2, 1]  # released last block first
    pc.fit(2)  # room for one key: the chain's tail goes first
    assert list(pc.lru) == [1] and pc.evicted_blocks == 8
    pc.check()


def test_shared_blocks_raise_free_kv_while_two_requests_share_a_prefix():
    """Two concurrent requests share 64 blocks: the instance counts them once."""
    ids = [tuple(range(64)) + (900,), tuple(range(64)) + (901,)]
    seen = []

    class Probe(Linear):
        def decode_run_time_s(self, n, ctx0, k):
            seen.append((n, inst.free_kv_blocks, inst._shared_blocks))
            return self.d * k

    cfg = InstanceConfig("i", "A100-80GB", 1, 1000, 16, 256, 8192, False, 0, prefix_caching=True)
    table = RequestTable(
        np.array([0.0, 0.5]), np.array([1030, 1030]), np.array([200, 200]), prefix_ids=ids, prefix_block_tokens=16
    )
    sim = Simulation(table, [(cfg, Probe())], JoinShortestQueue(), 1.0)
    inst = sim.instances[0]
    sim.run()
    both = [s for s in seen if s[0] == 2]
    assert both and all(sh == 64 for _, _, sh in both)
    # at the first joint run request 1 holds 1031 tokens (65 blocks), request 0 also the 25 it
    # decoded meanwhile (1056: 66 blocks); 64 of them are the same blocks, counted once
    assert both[0][1] == 1000 - 66 - 65 + 64


def _exp(**kw):
    return make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "workload": {
                "kind": "synthetic",
                "arrivals": {"process": "poisson", "rate_rps": 0.5},
                "n_requests": 120,
                "lengths": {
                    "kind": "independent",
                    "input_tokens": {"dist": "uniform", "low": 20, "high": 300},
                    "output_tokens": {"dist": "uniform", "low": 10, "high": 200},
                },
                "prefix": {"shared_tokens": 600, "n_prefixes": 2},
                "sessions": {"turns": 4, "think_time_s": 20.0},
            },
            **kw,
        }
    )


def test_sessions_workload_prompts_grow_by_the_conversation():
    p = prepare(parse_experiment(_exp()))
    t = p.table
    assert t.prefix_block_tokens == 16 and len(t.prefix_ids) == len(t) == 120
    # request 0 is turn 0 of session 0: the system prompt's 37 whole blocks lead its keys
    first = list(t.prefix_ids[0][:37])
    assert first in (list(range(37)), list(range(37, 74)))
    assert (t.n_input_tokens >= 600 + 20).all()


def test_sessions_cut_ttft_and_carbon_and_report_hit_rates():
    off = simulate(prepare(parse_experiment(_exp())))
    on = simulate(
        prepare(parse_experiment(_exp(**{"cluster.instances": [{"gpu": "A100-80GB", "prefix_caching": True}]})))
    )
    s = on.summary
    assert "prefix_hit_tokens_frac" not in off.summary
    assert 0.5 < s["prefix_hit_tokens_frac"] < 1 and s["prefix_hit_requests_frac"] > 0.9
    assert s["ttft_s_mean"] < off.summary["ttft_s_mean"] and s["energy_kwh"] < off.summary["energy_kwh"]
    r = on.requests
    assert s["prefix_hit_tokens_frac"] == pytest.approx(r.cached_prompt_tokens.sum() / r.n_input_tokens.sum())
    assert (r.cached_prompt_tokens % 16 == 0).all() and (r.cached_prompt_tokens < r.n_input_tokens).all()
    assert on.instances.prefix_cached_tokens.iloc[0] >= r.cached_prompt_tokens.sum()


def test_mooncake_trace_uses_its_hash_ids():
    """The Mooncake synthetic trace, slowed so one instance keeps up: hits cover whole 512-token
    blocks, and the hit rate is at most that of an infinite cache with every earlier prompt in it."""
    trace = SHARED_DATA / "traces" / "mooncake_fast25_synthetic.csv"
    assert trace.is_file(), f"expected the shared Mooncake trace at {trace} (../shared/data beside the repo)"
    wl = {"kind": "trace", "name": "mooncake_fast25_synthetic", "max_requests": 300, "rate_scale": 0.25}
    d = make_experiment(
        **{"model": "Llama-3.1-8B", "workload": wl, "cluster.instances": [{"gpu": "H100-SXM", "prefix_caching": True}]}
    )
    p = prepare(parse_experiment(d))
    t = simulate(p)
    r = t.requests
    assert (r.cached_prompt_tokens % 512 == 0).all()
    seen, ideal = set(), 0
    for i, k in enumerate(p.table.prefix_ids):
        n = int(p.table.n_input_tokens[i])
        m = 0
        for x in k[: (n - 1) // 512]:
            if x not in seen:
                break
            m += 1
        ideal += 512 * m
        seen.update(k[: n // 512])
    got = int(r.cached_prompt_tokens.sum())
    assert 0 < got <= ideal
    assert t.summary["prefix_hit_tokens_frac"] > 0.1


@pytest.mark.parametrize(
    "group,match",
    [
        ({"gpu": "A100-80GB", "prefix_caching": True, "block_tokens": 48}, "block_tokens"),
        (
            {
                "gpu": "A100-80GB",
                "prefix_caching": True,
                "speculative": {"draft_model": "Llama-3.2-1B", "alpha": 0.7, "gamma": 4},
            },
            "speculative",
        ),
    ],
)
def test_config_errors(group, match):
    with pytest.raises(ConfigError, match=match):
        prepare(parse_experiment(_exp(**{"cluster.instances": [group]})))


def test_prefix_caching_needs_prefix_identity_and_not_on_decode():
    with pytest.raises(ConfigError, match="prefix identity"):
        prepare(
            parse_experiment(make_experiment(**{"cluster.instances": [{"gpu": "A100-80GB", "prefix_caching": True}]}))
        )
    dpd = {
        "cluster.instances": [
            {"gpu": "A100-80GB", "role": "prefill"},
            {"gpu": "A100-80GB", "role": "decode", "prefix_caching": True},
        ],
        "cluster.disaggregation": {"link": {"bandwidth_gbs": 25.0, "latency_s": 0.0}},
    }
    with pytest.raises(ConfigError, match="prefill"):
        prepare(parse_experiment(_exp(**dpd)))


def test_dpd_cache_on_prefill_saves_compute_not_transfer():
    """DPD with the cache on the prefill instance: hits cut prefill busy time; the full prompt KV
    is still sent (same bytes as without the cache)."""

    def run(pc):
        d = _exp(
            **{
                "cluster.instances": [
                    {"gpu": "A100-80GB", "role": "prefill", "prefix_caching": pc},
                    {"gpu": "A100-80GB", "role": "decode"},
                ],
                "cluster.disaggregation": {"link": {"bandwidth_gbs": 25.0, "latency_s": 0.0}},
            }
        )
        return simulate(prepare(parse_experiment(d)))

    off, on = run(False), run(True)
    assert on.summary["prefix_hit_tokens_frac"] > 0.5
    assert on.summary["kv_transfer_bytes"] == off.summary["kv_transfer_bytes"]
    assert on.instances.busy_s.iloc[0] < off.instances.busy_s.iloc[0]
    assert on.summary["n_completed"] == off.summary["n_completed"] == 120


def test_prefix_affinity_router_follows_the_cached_prefix():
    """Two idle instances: request 2 shares request 1's prefix, cached on instance 1 only;
    prefix_affinity sends it there, join-shortest-queue to the lowest index (a tie)."""
    from greensim.policies.routers import PrefixAffinity

    P, Q = tuple(range(40)), tuple(range(100, 140))
    ids = [P + (900,), Q + (901,), Q + (902,)]

    def route(router):
        cfg = InstanceConfig("i", "A100-80GB", 1, 1000, 16, 256, 8192, False, 0, prefix_caching=True)
        table = RequestTable(
            np.array([0.0, 0.001, 20.0]),
            np.array([700, 700, 700]),
            np.array([5, 5, 5]),
            prefix_ids=ids,
            prefix_block_tokens=16,
        )
        sim = Simulation(table, [(cfg, Linear())] * 2, router, 1.0)
        sim.run()
        return sim.record.instance.tolist(), sim.cached_prompt_tokens.tolist()

    assert route(PrefixAffinity()) == ([0, 1, 1], [0, 0, 640])
    assert route(JoinShortestQueue()) == ([0, 1, 0], [0, 0, 0])
