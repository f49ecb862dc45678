"""DSD engine options against closed forms with constant latencies: pipelined drafting
(``speculative.pipeline``) and chunked prefill on the target (``chunked_prefill``)."""

import dataclasses
import math

import numpy as np
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.base.errors import ConfigError
from greensim.core.interfaces import BoundPerformance
from greensim.core.requests import RequestTable
from greensim.core.simulation import Simulation
from greensim.core.spec_instance import SpecInstance
from greensim.experiment.load import parse_experiment


class Const(BoundPerformance):
    """Every iteration (prefill, verify) takes ``t`` [s]; a run of k >= 1 decode steps takes ``run`` [s]."""

    idle_power_w = 10.0

    def __init__(self, t: float, run: float = 0.0, power: float = 100.0):
        self.t, self.run, self.decode_power_w = t, run, power

    def iteration_time_s(self, chunks, n_decode, decode_ctx_tokens):
        return self.t

    def power_w(self, n_prefill_tokens, n_decode):
        return self.decode_power_w

    def decode_run_time_s(self, n, ctx0, k):
        return self.run if k > 0 else 0.0


def _sim(arrivals, n_in, n_out, t_v, t_d, t_dp=0.0, *, pipeline=False, chunked=False, budget=8192, **setup):
    """A split DSD instance with constant latencies: target pass ``t_v``, draft run ``t_d`` (any
    number of steps), draft prefill ``t_dp``, an ideal link (no transfer time)."""
    g = {
        "gpu": "A100-80GB",
        "chunked_prefill": chunked,
        "max_batched_tokens": budget,
        "speculative": {
            "draft_model": "Llama-3.2-1B",
            "alpha": 0.5,
            "gamma": setup.pop("gamma_max", 4),
            "draft_gpu": "V100-32GB",
            "link": {"bandwidth_gbs": math.inf, "latency_s": 0.0},
        },
    }
    p = prepare(parse_experiment(make_experiment(**{"model": "Llama-3.1-8B", "cluster.instances": [g]})))
    sp = dataclasses.replace(p.speculative()[0], draft_perf=Const(t_dp, t_d), pipeline=pipeline, **setup)
    table = RequestTable.from_arrays(arrivals, n_in, n_out)
    sim = Simulation(table, [(p.instances[0][0], Const(t_v))], p.router_factory(), 1.0, speculative=[sp])
    sim.run()
    return sim, sim.instances[0]


@pytest.mark.parametrize("pipeline", [False, True])
@pytest.mark.parametrize("t_d", [0.004, 0.01])
def test_all_rejected_pipelining_saves_nothing_and_wastes_every_predraft(pipeline, t_d):
    """alpha = 0, one request of 50 tokens, gamma 4, t_draft <= t_verify: every step redrafts after
    the verify, so both variants take 48 (t_d + t_v) + t_v after the first token (the last step
    drafts nothing). Pipelined, the 43 steps with >= 3 tokens left after a full acceptance also
    pre-draft: the draft GPU works 43 t_d more, all wasted, charged to it."""
    t_v = 0.01
    sim, inst = _sim([0.0], [10], [50], t_v, t_d, 0.002, pipeline=pipeline, alpha=0.0)
    rec = sim.record
    assert rec.done_s[0] - rec.first_token_s[0] == pytest.approx(48 * (t_d + t_v) + t_v, rel=1e-12)
    pre = 43 if pipeline else 0
    assert inst.draft.ledger.busy_s == pytest.approx(0.002 + (48 + pre) * t_d, rel=1e-12)
    if pipeline:
        st = inst.spec_stats()
        assert st["spec_predrafts"] == 43 and st["spec_predraft_used_frac"] == 0.0
        assert st["spec_wasted_draft_s"] == pytest.approx(43 * t_d, rel=1e-12)
        assert st["spec_wasted_draft_j"] == pytest.approx(43 * t_d * 100.0, rel=1e-12)
        # the request carries every draft second, wasted ones included
        assert sim.dsd_draft_busy_s[0] == pytest.approx(inst.draft.ledger.busy_s, rel=1e-12)


@pytest.mark.parametrize("t_d", [0.004, 0.01, 0.025])
def test_all_accepted_pipelined_step_takes_max_of_verify_and_draft(t_d):
    """Every draft token accepted (a_k = 1), gamma 4, 49 tokens after the first: 9 steps of 5 and one
    of 4. Sequential: 10 (t_d + t_v). Pipelined: the first step drafts, the next 9 use the pre-draft
    made during the previous verify: t_d + t_v + 9 max(t_v, t_d)."""
    t_v = 0.01
    one = dict(arrivals=[0.0], n_in=[10], n_out=[50], t_v=t_v, t_d=t_d, alpha_by_position=(1.0,) * 4)
    seq_sim, _ = _sim(**one)
    pip_sim, inst = _sim(**one, pipeline=True)
    dec = [s.record.done_s[0] - s.record.first_token_s[0] for s in (seq_sim, pip_sim)]
    assert dec[0] == pytest.approx(10 * (t_d + t_v), rel=1e-12)
    assert dec[1] == pytest.approx(t_d + t_v + 9 * max(t_v, t_d), rel=1e-12)
    st = inst.spec_stats()
    assert st["spec_predrafts"] == 9 and st["spec_predraft_used_frac"] == 1.0
    assert st["spec_overlapped_iteration_frac"] == pytest.approx(9 / 10)
    assert st["spec_wasted_draft_s"] == 0.0
    assert inst.n_spec_iterations == 10


def test_pipelined_usable_fraction_and_step_time_match_alpha_to_the_gamma():
    """i.i.d. acceptance alpha, gamma g, one request at a time, t_d <= t_v: a pre-draft is used iff
    every token of the step it follows was accepted, P = alpha^g; a step then costs t_v, otherwise
    t_v + t_d (redraft after the verify). So the decode time is N t_v + (steps redrafted) t_d exactly,
    and the mean step time is t_v + (1 - alpha^g) t_d up to the first and last steps of each request."""
    alpha, g, t_v, t_d, n_req = 0.6, 3, 0.01, 0.006, 40
    arr = np.arange(n_req) * 100.0  # far apart: one request at a time
    sim, inst = _sim(arr, [10] * n_req, [400] * n_req, t_v, t_d, pipeline=True, alpha=alpha, gamma_max=g)
    rec = sim.record
    dec = float((rec.done_s - rec.first_token_s).sum())
    n_it = inst.n_spec_iterations
    redrafted = inst.n_pipe_iterations - inst.n_overlapped
    assert inst.n_overlapped == inst.n_predrafts_used  # one request: an iteration overlaps iff its pre-draft is used
    assert dec == pytest.approx(n_it * t_v + redrafted * t_d, rel=1e-9)
    p = alpha**g
    n = inst.n_predrafts
    assert n > 3000
    used = inst.n_predrafts_used / n
    assert abs(used - p) <= 5 * math.sqrt(p * (1 - p) / n)
    # mean step time: each request's first step and its <= g + 1 last ones follow no pre-draft
    sd = t_d * math.sqrt(p * (1 - p) / n)
    edge = (g + 2) * n_req / n_it * t_d
    assert abs(dec / n_it - (t_v + (1 - p) * t_d)) <= 5 * sd + edge


def test_pipelined_draft_prefill_waits_for_the_running_predraft():
    """A prompt arriving while a pre-draft runs: the draft GPU prefills it after that pre-draft, so
    the prefill iteration lasts max(t_prefill target, rest of the pre-draft + t_prefill draft)."""
    t_v, t_d, t_dp = 0.01, 0.03, 0.002
    # request 0 decodes alone; request 1 arrives during its first verify (at 0.01 + 0.03 + 0.005)
    sim, inst = _sim([0.0, 0.045], [10, 10], [60, 2], t_v, t_d, t_dp, pipeline=True, alpha=0.0)
    rec = sim.record
    # iteration 1: prefill of request 0, [0, max(t_v, t_dp)] = [0, 0.01]; iteration 2: draft + verify
    # [0.01, 0.05], pre-draft on the draft GPU [0.04, 0.07]; iteration 3: request 1's prefill from 0.05:
    # its draft prefill starts when the pre-draft ends, 0.07, and ends at 0.072
    assert rec.first_token_s[1] == pytest.approx(0.072, rel=1e-12)
    assert inst.n_predrafts >= 1


def test_chunked_prefill_long_prompt_rides_along_the_verify_passes():
    """4 requests decode (alpha 0: one token per step, gamma 3 -> 16 verify positions); budget 32
    leaves 16 tokens per pass for a 160-token prompt arriving mid-iteration: its first token comes
    10 passes after the next iteration starts, each pass t_d + t_v (the draft prefills its chunk during
    the target pass, t_dp <= t_v); the others keep one token per pass, never stalled (the long one
    still drafts in their last pass, so every pass costs t_d + t_v)."""
    t_v, t_d, t_dp = 0.01, 0.004, 0.003
    it = t_d + t_v
    t_a = t_v + 2.5 * it
    arr, n_in, n_out = [0.0] * 4 + [t_a], [8] * 4 + [160], [200] * 4 + [300]
    sim, inst = _sim(arr, n_in, n_out, t_v, t_d, t_dp, chunked=True, budget=32, alpha=0.0, gamma_max=3)
    rec = sim.record
    assert rec.first_token_s[4] - t_a == pytest.approx(t_v + 13 * it - t_a, rel=1e-12)
    # request 0 starts alone (the others arrive just after); 1-3's prompts ride along its first verify
    assert rec.first_token_s[:4] == pytest.approx([t_v] + [t_v + it] * 3, rel=1e-12)
    assert rec.done_s[:4] == pytest.approx([t_v + 199 * it] + [t_v + 200 * it] * 3, rel=1e-12)
    # without chunking each prompt is a prefill-only iteration (t_v) that stalls the decoding ones:
    # request 0 waits for 1-3's and for the long one's
    sim2, _ = _sim(arr, n_in, n_out, t_v, t_d, t_dp, budget=8192, alpha=0.0, gamma_max=3)
    r2 = sim2.record
    assert r2.first_token_s[4] == pytest.approx(3 * t_v + 2 * it, rel=1e-12)
    assert r2.done_s[0] == pytest.approx(3 * t_v + 199 * it, rel=1e-12)


def test_chunked_prefill_colocated_draft_prefill_follows_the_target_pass():
    """Colocated (draft on the target GPU), one prompt of 100 tokens, budget 40: three prompt-only
    chunks, each the target pass then the draft's prefill, t_v + t_dp."""
    t_v, t_dp = 0.01, 0.003
    d = make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "cluster.instances": [
                {
                    "gpu": "A100-80GB",
                    "chunked_prefill": True,
                    "max_batched_tokens": 40,
                    "speculative": {"draft_model": "Llama-3.2-1B", "alpha": 0.5, "gamma": 4},
                }
            ],
        }
    )
    p = prepare(parse_experiment(d))
    sp = dataclasses.replace(p.speculative()[0], draft_perf=Const(t_dp, 0.002))
    table = RequestTable.from_arrays([0.0], [100], [1])
    sim = Simulation(table, [(p.instances[0][0], Const(t_v))], p.router_factory(), 1.0, speculative=[sp])
    sim.run()
    assert sim.record.first_token_s[0] == pytest.approx(3 * (t_v + t_dp), rel=1e-12)
    assert isinstance(sim.instances[0], SpecInstance) and sim.instances[0].ledger.busy_s == pytest.approx(
        3 * (t_v + t_dp), rel=1e-12
    )


def test_pipeline_needs_a_draft_gpu_and_no_chunked_prefill():
    base = {"draft_model": "Llama-3.2-1B", "alpha": 0.5, "gamma": 4, "pipeline": True}
    d = make_experiment(**{"cluster.instances": [{"gpu": "A100-80GB", "speculative": base}]})
    with pytest.raises(ConfigError, match="pipeline needs draft_gpu"):
        parse_experiment(d)
    split = dict(base, draft_gpu="V100-32GB", link={"kind": "pcie_gen4_x16", "latency_s": 1e-5})
    d = make_experiment(**{"cluster.instances": [{"gpu": "A100-80GB", "chunked_prefill": True, "speculative": split}]})
    with pytest.raises(ConfigError, match="pipeline with chunked_prefill"):
        parse_experiment(d)
