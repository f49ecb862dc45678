"""Pipeline parallelism (greensim/hardware/pipeline.py): the bubble formula on a constant-time
stage, KV capacity of a two-stage instance by hand, closed-form decode runs equal to the
iteration sums, tp x pp GPUs in carbon and idle power, and pp = 1 untouched."""

import math

import numpy as np
import pytest
from conftest import make_experiment
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.base.units import G_PER_KG, S_PER_YEAR
from greensim.core.interfaces import BoundPerformance
from greensim.core.link import LINK_TYPES
from greensim.core.memory import kv_capacity_blocks
from greensim.experiment.load import parse_experiment
from greensim.hardware.catalog import load_catalog
from greensim.hardware.kernel import EnginePreset, KernelModel
from greensim.hardware.pipeline import (
    PipelineBound,
    bind_pipeline,
    default_stage_link,
    pipeline_kv_blocks,
    stage_layers,
    stage_weight_bytes,
)
from greensim.hardware.roofline import RooflineModel

CAT = load_catalog()
L7 = CAT.model("Llama-2-7B")  # 32 layers, hidden 4096, vocab 32000, untied


class PerLayer(BoundPerformance):
    """A stage whose iteration takes ``tau`` per layer (x tokens when ``per_token``), drawing ``busy_w``."""

    def __init__(self, model, tau=1e-3, per_token=False, busy_w=300.0, idle_w=50.0):
        self.model, self.tau, self.per_token = model, tau, per_token
        self.busy_w, self.idle_power_w, self.decode_power_w = busy_w, idle_w, busy_w

    def iteration_time_s(self, chunks, n_decode, decode_ctx_tokens):
        tok = sum(q for q, _ in chunks) + n_decode
        return 0.0 if tok == 0 else self.model.n_layers * self.tau * (tok if self.per_token else 1)

    def power_w(self, n_prefill_tokens, n_decode):
        return self.busy_w


def test_stages_split_layers_as_vllm():
    # vLLM get_pp_indices: L // pp each, the remainder one each to the stages before the last
    assert stage_layers(32, 2) == [16, 16]
    assert stage_layers(40, 3) == [13, 14, 13]
    assert stage_layers(10, 4) == [2, 3, 3, 2]
    assert stage_layers(7, 7) == [1] * 7
    with pytest.raises(ValueError):
        stage_layers(4, 5)


@pytest.mark.parametrize("m", [None, 1, 3, 8])
def test_constant_stage_time_gives_the_bubble_formula(m):
    """pp = 2, a stage time independent of the batch: T = (m + pp - 1) t + (pp - 1) x exactly."""
    pp, tau, bw, lat = 2, 1e-3, 50e9, 7e-6
    b = bind_pipeline(lambda mdl: PerLayer(mdl, tau), L7, pp, m, bw, lat)
    mm = m or pp  # default: one micro-batch per stage
    n = 64
    t_stage = (L7.n_layers // pp) * tau
    hi = math.ceil(n / mm)
    x = lat + hi * 2 * 4096 * 2 / bw  # hidden + residual, fp16, of the largest micro-batch
    t = b.iteration_time_s((), n, 64 * 500)
    assert t == pytest.approx((mm + pp - 1) * t_stage + (pp - 1) * x, rel=1e-12)
    # the bubble: (pp - 1) / (m + pp - 1) of the compute, once the link is free
    b0 = bind_pipeline(lambda mdl: PerLayer(mdl, tau), L7, pp, m, math.inf)
    t0 = b0.iteration_time_s((), n, 64 * 500)
    assert (t0 - mm * t_stage) / t0 == pytest.approx((pp - 1) / (mm + pp - 1), rel=1e-12)


def test_micro_batches_of_a_mixed_batch_and_the_slowest_one_paces():
    """Per-token stage time: decodes spread evenly, chunks longest first to the lightest micro-batch."""
    tau, pp = 1e-6, 4
    b = bind_pipeline(lambda mdl: PerLayer(mdl, tau, per_token=True), L7, pp, 2, math.inf)
    # 6 decodes -> 3 + 3; chunks 100 -> mb0 (103), 40 -> mb1 (43), 10 -> mb1 (53)
    t = b.iteration_time_s([(10, 0), (100, 5), (40, 0)], 6, 600)
    per = (L7.n_layers // pp) * tau
    assert t == pytest.approx((103 + 53) * per + (pp - 1) * 103 * per, rel=1e-12)
    # fewer sequences than micro-batches: one micro-batch per sequence
    assert b.iteration_time_s([(50, 0)], 0, 0) == pytest.approx(pp * 50 * per, rel=1e-12)


def test_bubble_draws_idle_power_and_all_stages_count():
    """Energy = every stage's busy time at its power, the rest of the iteration at idle."""
    pp, m, tau = 4, 2, 1e-3
    b = bind_pipeline(lambda mdl: PerLayer(mdl, tau, busy_w=300.0, idle_w=50.0), L7, pp, m, math.inf)
    assert b.idle_power_w == pp * 50.0
    t = b.iteration_time_s((), 8, 8000)
    busy = m * 8 * tau  # each stage: 8 layers, m micro-batches
    assert b.iteration_power_w((), 8, 8000, t) * t == pytest.approx(pp * (50.0 * t + 250.0 * busy), rel=1e-12)


def test_kv_capacity_of_two_stages_by_hand():
    """Llama-2-7B, pp = 2 on A100-40GB (40e9 bytes), reserve 0.1, blocks of 16 tokens."""
    layer = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096  # attention, gated MLP, two norms [params]
    w0 = 2 * (16 * layer + 32000 * 4096)  # 16 layers + input embedding [bytes]
    w1 = 2 * (16 * layer + 32000 * 4096 + 4096)  # 16 layers + LM head + final norm
    assert stage_weight_bytes(L7, 2) == [w0, w1]
    assert w0 + w1 == L7.weight_bytes  # untied: nothing duplicated
    block = 16 * 2 * 16 * 32 * 128 * 2  # 16 tokens of K and V, 16 layers, 32 heads x 128, fp16
    usable = 40e9 * 0.9
    hand = min(int((usable - w0) // block), int((usable - w1) // block))
    assert hand == 6976
    gpu = CAT.gpu("A100-40GB")
    assert pipeline_kv_blocks(gpu.memory_bytes, 1, 2, L7, 16, 0.1) == hand
    # pp = 1 is the one-GPU formula itself
    assert pipeline_kv_blocks(gpu.memory_bytes, 1, 1, L7, 16, 0.1) == kv_capacity_blocks(
        gpu.memory_bytes, 1, L7.weight_bytes, L7.kv_bytes_per_token, 16, 0.1
    )


def test_tied_embeddings_keep_a_copy_on_the_last_stage():
    m = CAT.model("Llama-3.2-1B")
    assert m.tied_embeddings
    w = stage_weight_bytes(m, 2)
    assert sum(w) == pytest.approx(m.weight_bytes + m.vocab_size * m.hidden_size * m.dtype_bytes, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 200),
    c0=st.integers(0, 200_000),
    k=st.integers(1, 120),
    pp=st.sampled_from([2, 3, 4]),
    m=st.sampled_from([None, 1, 3, 8]),
    eng=st.sampled_from(["none", "vllm-0.5", "eager"]),
    tp=st.sampled_from([1, 2]),
)
def test_kernel_pipeline_closed_form_decode_run_equals_the_iteration_sums(n, c0, k, pp, m, eng, tp):
    km = KernelModel(engine=None if eng == "eager" else eng)
    if eng == "eager":
        km.engine = EnginePreset(
            "eager", per_iteration_s=2e-4, per_sequence_s=1e-5, decode_cuda_graphs=False, launch_per_layer_s=2e-4
        )
    gpu = CAT.gpu("H100-SXM")
    b = bind_pipeline(lambda mdl: km.bind(gpu, mdl, tp), CAT.model("Llama-3.1-8B"), pp, m, 450e9, 5e-6)
    assert isinstance(b, PipelineBound)
    ts = [b.iteration_time_s((), n, c0 + n * j) for j in range(k)]
    assert b.decode_run_time_s(n, c0, k) == pytest.approx(sum(ts), rel=1e-9)
    e = sum(b.iteration_power_w((), n, c0 + n * j, t) * t for j, t in enumerate(ts))
    assert b.decode_run_energy_j(n, c0, k) == pytest.approx(e, rel=1e-9)
    half = (k + 1) // 2
    assert b.decode_iterations_until(n, c0, k, sum(ts[:half]) * (1 - 1e-9)) == half


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), c0=st.integers(0, 500_000), k=st.integers(1, 100), pp=st.sampled_from([2, 5]))
def test_roofline_pipeline_closed_form_decode_run_equals_the_iteration_sums(n, c0, k, pp):
    rm = RooflineModel(decode_power="utilization")
    gpu = CAT.gpu("A100-80GB")
    b = bind_pipeline(lambda mdl: rm.bind(gpu, mdl, 1), CAT.model("Llama-2-13B"), pp, None, 300e9)
    ts = [b.iteration_time_s((), n, c0 + n * j) for j in range(k)]
    assert b.decode_run_time_s(n, c0, k) == pytest.approx(sum(ts), rel=1e-9)
    e = sum(b.iteration_power_w((), n, c0 + n * j, t) * t for j, t in enumerate(ts))
    assert b.decode_run_energy_j(n, c0, k) == pytest.approx(e, rel=1e-9)


def test_pipeline_of_one_stage_is_the_plain_model():
    km = KernelModel()
    gpu = CAT.gpu("H100-SXM")
    seen = []
    b = bind_pipeline(lambda mdl: seen.append(mdl) or km.bind(gpu, mdl, 1), L7, 1, None, 1e9)
    assert seen == [L7] and not isinstance(b, PipelineBound)


def test_kernel_stage_without_lm_head_skips_it():
    """The LM head (vocab x hidden GEMM) runs on the last stage only."""
    km = KernelModel(engine="none")
    gpu = CAT.gpu("H100-SXM")
    from greensim.hardware.pipeline import stage_timing_models

    pace, kinds = stage_timing_models(L7, 2)
    (c_in, inner), (c_last, last) = sorted(kinds, key=lambda cm: cm[1].vocab_size)
    assert (c_in, c_last) == (1, 1) and last == pace and inner.vocab_size == 0
    t_in, t_last = (km.bind(gpu, x, 1).iteration_time_s((), 1, 1000) for x in (inner, last))
    head = 32000 * 4096 * 2 / (km.bind(gpu, L7, 1).k.eta_gemm_memory * gpu.mem_bandwidth_bps)  # bytes-bound at batch 1
    assert t_last - t_in == pytest.approx(head, rel=0.01)


def test_default_stage_link_is_the_catalogue_interconnect():
    for gpu, kind in (
        ("A100-80GB", "nvlink_a100"),
        ("H100-SXM", "nvlink_h100"),
        ("V100-32GB", "nvlink_v100"),
        ("T4", "pcie_gen3_x16"),
        ("L4", "pcie_gen4_x16"),
        ("H100-PCIe", "pcie_gen5_x16"),
    ):
        assert default_stage_link(CAT.gpu(gpu), "x") == (kind, LINK_TYPES[kind][0])


def _pp_exp(**kw):
    inst = {"gpu": "A100-80GB", "count": 1, "pp": 2, **kw}
    return make_experiment(**{"cluster.instances": [inst], "workload.n_requests": 60})


def test_carbon_and_idle_power_count_tp_x_pp_gpus():
    p = prepare(parse_experiment(_pp_exp(tp=2)))
    (cfg, perf) = p.instances[0]
    gpu = CAT.gpu("A100-80GB")
    assert perf.idle_power_w == pytest.approx(4 * gpu.idle_w, rel=1e-12)
    assert p.specs[0].n_gpus == 4 and cfg.name == "A100-80GBx2-pp2"
    r = simulate(p).instances.iloc[0]
    assert (r["tp"], r["pp"]) == (2, 2)
    horizon = r["busy_s"] + r["idle_s"]
    e_kg = r["embodied_kgco2e_per_gpu"] + r["host_kgco2e_per_gpu"]
    lifetime = p.specs[0].lifetime_years
    assert r["embodied_gco2"] == pytest.approx(e_kg * G_PER_KG * 4 * horizon / (lifetime * S_PER_YEAR), rel=1e-9)


def test_closed_form_runs_match_per_iteration_simulation_with_pp():
    p = prepare(
        parse_experiment(_pp_exp(pp=3, pp_microbatches=2, pp_link={"kind": "pcie_gen4_x16", "latency_s": 1e-5}))
    )
    a = simulate(p).requests
    b = simulate(p, max_run_iterations=1).requests
    for c in ["ttft_s", "e2e_s", "energy_j", "gpu_busy_s"]:
        np.testing.assert_allclose(a[c], b[c], rtol=1e-8, atol=1e-9, err_msg=c)


def test_bad_pipeline_settings_name_the_field():
    with pytest.raises(ConfigError, match=r"cluster\.instances\.0\.pp: 40 pipeline stages"):
        prepare(parse_experiment(_pp_exp(pp=40)))
    with pytest.raises((ConfigError, ValidationError), match="pp_link"):
        parse_experiment(_pp_exp(pp_link={"kind": "nvlink_h10"}))
    with pytest.raises((ConfigError, ValidationError), match="speculative"):
        parse_experiment(_pp_exp(speculative={"draft_model": "Llama-3.2-1B", "gamma": 4, "alpha": 0.7}, gpu="H100-SXM"))


def test_sweep_and_api_reach_pp(tmp_path):
    """The dotted override a sweep uses (cluster.instances.0.pp) and the Python API's run."""
    import greensim

    base = make_experiment(**{"workload.n_requests": 40, "cluster.instances.0.count": 1})
    df = greensim.sweep(base, {"cluster.instances.0.pp": [1, 2]}, workers=1, cache=False, progress=False)
    assert len(df) == 2 and df["carbon_gco2"].nunique() == 2
    exp = make_experiment(**{"workload.n_requests": 20, "cluster.instances.0.pp": 4, "output.dir": str(tmp_path)})
    r = greensim.run(parse_experiment(exp))
    assert set(r.instances["pp"]) == {4}
