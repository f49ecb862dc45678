"""Prefix caching: KV block accounting stays exact and every request completes (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from greensim.core.instance import Instance, InstanceConfig
from greensim.core.interfaces import BoundPerformance
from greensim.core.requests import RequestTable
from greensim.core.simulation import Simulation
from greensim.policies.routers import JoinShortestQueue, PrefixAffinity, RoundRobin


class Linear(BoundPerformance):
    """Time linear in new prompt tokens and decode context (so runs and their cuts are priced)."""

    idle_power_w = 10.0
    decode_power_w = 100.0

    def iteration_time_s(self, chunks, n_decode, decode_ctx_tokens):
        return 0.005 + 2e-5 * sum(q + 0.01 * c for q, c in chunks) + 1e-3 * n_decode + 1e-7 * decode_ctx_tokens

    def power_w(self, n_prefill_tokens, n_decode):
        return 150.0


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 30))
    H = draw(st.sampled_from([16, 32]))
    gaps = draw(st.lists(st.floats(0.0, 2.0), min_size=n, max_size=n))
    n_in = draw(st.lists(st.integers(1, 400), min_size=n, max_size=n))
    n_out = draw(st.lists(st.integers(1, 150), min_size=n, max_size=n))
    ids, fresh = [], 10_000
    for i in range(n):
        nb = (n_in[i] + n_out[i]) // H + 1
        parent = draw(st.integers(-1, i - 1))
        keep = draw(st.integers(0, nb)) if parent >= 0 else 0
        own = tuple(ids[parent][:keep]) if parent >= 0 else ()
        own += tuple(range(fresh, fresh + nb - len(own)))
        fresh += nb
        ids.append(own)
    need = max(-(-(a + b) // 16) for a, b in zip(n_in, n_out))
    return dict(
        arrival=np.cumsum(gaps),
        n_in=np.array(n_in),
        n_out=np.array(n_out),
        ids=ids,
        H=H,
        kv_blocks=need + draw(st.integers(0, 60)),
        chunked=draw(st.booleans()),
        batch=draw(st.integers(1, 8)),
        budget=draw(st.sampled_from([600, 2048])),
        n_inst=draw(st.integers(1, 2)),
        router=draw(st.sampled_from([RoundRobin, JoinShortestQueue, PrefixAffinity])),
    )


def _run(w, max_run_iterations=None):
    cfg = InstanceConfig(
        "i", "A100-80GB", 1, w["kv_blocks"], 16, w["batch"], w["budget"], w["chunked"], 0, prefix_caching=True
    )
    table = RequestTable(w["arrival"], w["n_in"], w["n_out"], prefix_ids=w["ids"], prefix_block_tokens=w["H"])
    router = w["router"]()
    sim = Simulation(table, [(cfg, Linear())] * w["n_inst"], router, 1.0, max_run_iterations=max_run_iterations)
    sim.run()  # check_drained: no block held, no reference left, the cache's own invariants
    return sim


@pytest.fixture(scope="module")
def checked(monkeypatch_module):
    """Before every instance event: the cache's invariants hold and its unreferenced blocks fit
    in the free ones (physical use never exceeds the capacity)."""
    orig = Instance._arm

    def armed(self, delay):
        pc = self.prefix_cache
        pc.check()
        assert self.free_kv_blocks - pc.bpk * len(pc.lru) >= 0
        assert self._prefill_blocks + self._dec_blocks - self._shared_blocks <= self.total_kv_blocks
        return orig(self, delay)

    monkeypatch_module.setattr(Instance, "_arm", armed)


@given(w=workloads())
def test_accounting_exact_every_request_completes(w, checked):
    sim = _run(w)
    n = len(w["n_in"])
    assert sim.n_done + sim.n_rejected == n
    rec = sim.record
    ok = ~rec.rejected
    assert (rec.n_generated[ok] == w["n_out"][ok]).all()
    hit = sim.cached_prompt_tokens
    assert (hit % w["H"] == 0).all() and (hit[ok] < w["n_in"][ok]).all()


@given(w=workloads())
def test_closed_form_runs_match_one_iteration_per_event(w, checked):
    a, b = _run(w), _run(w, max_run_iterations=1)
    assert a.cached_prompt_tokens.tolist() == b.cached_prompt_tokens.tolist()
    np.testing.assert_allclose(a.record.first_token_s, b.record.first_token_s, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.record.done_s, b.record.done_s, rtol=1e-9, atol=1e-12)
    assert [i.prefix_cache.evicted_blocks for i in a.instances] == [i.prefix_cache.evicted_blocks for i in b.instances]
