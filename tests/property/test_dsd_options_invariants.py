"""DSD engine options (pipelined drafting, chunked prefill on the target): the invariants of
test_dsd_invariants.py hold with each of them on."""

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dsd_invariants import dsd_experiments

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.core.spec_instance import SpecInstance
from greensim.experiment.load import parse_experiment


def _check_kv(monkeypatch):
    """Before every event: block bookkeeping is exact (prompts in chunked prefill included) and the
    iteration's peak KV fits."""
    orig = SpecInstance._arm

    def armed(self, delay):
        n = len(self.running)
        I = self._I
        held = int(I[:n, 4].sum()) + sum(r.blocks for r in self.prefilling)
        if self._plan[0] == "prefill" and not self.cfg.chunked_prefill:
            held += sum(r.blocks for r, _ in self._plan[2])
        assert self._used == held
        if self._plan[0] == "spec":
            gs, g = self._plan[2], self._plan[8]
            peak = I[:n, 0] + I[:n, 2] + (g if gs is None else gs)
            assert int((-(-peak // self.B)).sum()) + sum(r.blocks for r in self.prefilling) <= self.total_kv_blocks
        return orig(self, delay)

    monkeypatch.setattr(SpecInstance, "_arm", armed)


@settings(max_examples=60)
@given(d=dsd_experiments(), option=st.sampled_from(["pipeline", "chunked"]), budget=st.integers(16, 4096))
def test_dsd_options_conserve_and_attribute(d, option, budget, monkeypatch_module):
    """Every request once with all its tokens, KV freed on both GPUs (Simulation.run checks it),
    requests' energy and busy time sum to the instances' (wasted pre-drafts included), same seed
    same results."""
    _check_kv(monkeypatch_module)
    g = d["cluster"]["instances"][0]
    if option == "pipeline":
        g["speculative"].update(pipeline=True, draft_gpu="V100-32GB", link={"kind": "pcie_gen4_x16", "latency_s": 1e-5})
    else:
        g.update(chunked_prefill=True, max_batched_tokens=budget)
    p = prepare(parse_experiment(d))
    t = simulate(p)
    r, s = t.requests, t.summary
    assert s["n_completed"] + s["n_rejected"] == len(r)
    done = r[~r.rejected]
    assert (done.n_generated_tokens == done.n_output_tokens).all()
    assert (done.ttft_s >= done.queue_delay_s - 1e-12).all() and (done.ttft_s <= done.e2e_s + 1e-12).all()
    assert r.energy_j.sum() == pytest.approx(t.instances.energy_j[t.instances.n_requests > 0].sum(), rel=1e-6, abs=1e-6)
    assert r.carbon_gco2.sum() + s["unattributed_gco2"] == pytest.approx(s["carbon_gco2"], rel=1e-6, abs=1e-9)
    assert t.instances.busy_s.sum() == pytest.approx(r.gpu_busy_s.sum(), rel=1e-6, abs=1e-9)
    if option == "pipeline" and len(done):
        used = t.instances.spec_predraft_used_frac.dropna()
        assert ((used >= 0) & (used <= 1)).all()
        assert (t.instances.spec_wasted_draft_s.dropna() >= -1e-12).all()
    pd.testing.assert_frame_equal(t.requests, simulate(prepare(parse_experiment(d))).requests)
