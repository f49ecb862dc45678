"""The kernel performance model (greensim/hardware/kernel.py): closed forms against iteration
sums, the engine overhead as an explicit additive term, what a real engine counts (LM head,
GQA KV bytes), power that rises with batch, and the shipped calibration's provenance."""

import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from greensim.base.errors import ProfileError
from greensim.base.paths import bundled
from greensim.hardware.catalog import ModelSpec, load_catalog
from greensim.hardware.kernel import (
    ENGINE_FIELDS,
    BoundKernel,
    EnginePreset,
    KernelModel,
    engine_preset,
    kernel_params_for,
    load_engines,
    load_kernel_params,
)

CAT = load_catalog()
H100, V100 = CAT.gpu("H100-SXM"), CAT.gpu("V100-32GB")
L8 = CAT.model("Llama-3.1-8B")
EAGER = EnginePreset(
    "eager", per_iteration_s=2e-4, per_sequence_s=1e-5, decode_cuda_graphs=False, launch_per_layer_s=2e-4
)


def bound(gpu=H100, model=L8, tp=1, engine="none"):
    return KernelModel(engine=engine).bind(gpu, model, tp)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 256),
    c0=st.integers(0, 300_000),
    k=st.integers(1, 300),
    gpu=st.sampled_from(["H100-SXM", "V100-32GB", "A100-80GB"]),
    eng=st.sampled_from(["none", "vllm-0.5", "eager"]),
)
def test_closed_form_decode_run_equals_the_iteration_sums(n, c0, k, gpu, eng):
    g = CAT.gpu(gpu)
    b = BoundKernel(
        g, L8, 1, kernel_params_for(load_kernel_params(), g), EAGER if eng == "eager" else engine_preset(eng)
    )
    ts = [b.iteration_time_s((), n, c0 + n * j) for j in range(k)]
    assert b.decode_run_time_s(n, c0, k) == pytest.approx(sum(ts), rel=1e-9)
    e = sum(b.iteration_power_w((), n, c0 + n * j, t) * t for j, t in enumerate(ts))
    assert b.decode_run_energy_j(n, c0, k) == pytest.approx(e, rel=1e-9)


def test_engine_overhead_is_additive_and_none_is_kernel_only():
    e = engine_preset("vllm-0.5")
    eng = bound(engine="vllm-0.5")
    # the same kernels (count included) without the engine's CPU time
    kern = BoundKernel(H100, L8, 1, kernel_params_for(load_kernel_params(), H100), EnginePreset(), e.kernels_per_layer)
    for n, ctx in ((1, 512), (32, 32 * 2048), (128, 128 * 1024)):
        dt = eng.iteration_time_s((), n, ctx) - kern.iteration_time_s((), n, ctx)
        assert dt == pytest.approx(e.per_iteration_s + e.per_sequence_s * n, rel=1e-9)
    # an eager prefill cannot beat the CPU's launches: 32 layers x launch_per_layer_s
    t = eng.iteration_time_s([(8, 0)], 0, 0) - e.per_iteration_s - e.per_sequence_s - e.per_prefill_s
    assert t == pytest.approx(max(kern.iteration_time_s([(8, 0)], 0, 0), L8.n_layers * e.launch_per_layer_s))


def test_lm_head_only_for_tokens_that_need_logits():
    b = bound()
    # one sequence verifying 9 tokens over a 1000-token cache = a 9-token prefill chunk over the
    # same cache plus 8 more rows of the LM head (vocab x hidden per token, memory-bound here)
    ver = b.verify_uniform_time_s(1, 9, 1000)
    pre = b.iteration_time_s([(9, 1000)], 0, 0)
    assert ver > pre
    assert ver - pre < 0.05 * pre  # the LM head weights are streamed once either way
    # prefill: a 4096-token prompt pays logits for one position, not 4096
    _, _, f = b._iteration([(4096, 0)], 0, 0)
    attn = 4.0 * L8.n_layers * L8.n_heads * L8.head_dim * 4096 * 4097 / 2
    assert f == pytest.approx(b._gemm(4096, 1)[2] + attn, rel=1e-12)
    assert b._gemm(4096, 4096)[2] - b._gemm(4096, 1)[2] == pytest.approx(2.0 * 4095 * L8.vocab_size * L8.hidden_size)


def test_gqa_kv_reads_are_the_resident_heads():
    mha = ModelSpec(**{**L8.__dict__, "name": "L8-MHA", "n_kv_heads": L8.n_heads})
    g, m = bound(), bound(model=mha)
    # long-context decode is KV-read bound: 4x the KV heads, ~4x the attention time
    ta = g.iteration_time_s((), 64, 64 * 8192) - g.iteration_time_s((), 64, 64)
    tm = m.iteration_time_s((), 64, 64 * 8192) - m.iteration_time_s((), 64, 64)
    assert tm / ta == pytest.approx(4.0, rel=0.02)


def test_decode_power_rises_with_batch_and_stays_within_the_board():
    b = bound()
    p = {}
    for n in (1, 8, 64, 128):
        t = b.iteration_time_s((), n, n * 1024)
        p[n] = b.iteration_power_w((), n, n * 1024, t)
    assert p[1] < p[8] < p[64] < p[128] <= H100.tdp_w
    assert p[64] > 1.2 * p[1]
    assert p[1] > H100.idle_w


def test_engine_presets_are_cited_and_unknown_names_are_refused():
    data = load_engines()
    assert data["default"] in data["engines"]
    assert "none" in data["engines"]
    for name, e in data["engines"].items():
        for f in ENGINE_FIELDS:
            assert f in e, (name, f)
            assert str(e.get(f"{f}_source", e.get("source", ""))).strip(), (name, f)
        if name == "none":
            assert all(not e[f] for f in ENGINE_FIELDS if f.endswith("_s"))
    with pytest.raises(ProfileError, match="performance.engine"):
        engine_preset("vllm-9")


def test_shipped_calibration_names_its_sources_and_covers_the_catalogue():
    params = yaml.safe_load((bundled("profiles") / "kernel.yaml").read_text())
    for sec in ("gpus", "architectures"):
        for name, e in params[sec].items():
            assert "source" in e and e["source"].strip(), name
            assert 0 < e["eta_gemm_compute"] <= 1 and 0 < e["eta_attn_memory"] <= 1, name
    for name in ("H100-SXM", "H200", "A100-80GB", "V100-32GB", "T4", "L4", "A10G", "H100-PCIe"):
        kernel_params_for(params, CAT.gpu(name))  # every catalogue GPU resolves
    for sec in params["power"].values():
        for e in sec.values() if "a" not in sec else [sec]:
            assert min(e["a"], e["b"], e["c"]) >= 0 and e["source"]


def test_tensor_parallel_adds_measured_all_reduce_and_unknown_degrees_are_named():
    one, two = bound(), bound(tp=2)
    # TP2 halves the weight stream but adds 2 x layers all-reduces per iteration
    assert two.iteration_time_s((), 1, 1024) < one.iteration_time_s((), 1, 1024)
    assert two._ar_a > 0
    with pytest.raises(ProfileError, match="TP3"):
        bound(tp=3)


def test_bands_come_from_the_kernel_section():
    nom = bound()
    lo = KernelModel(engine="none", band="optimistic").bind(H100, L8, 1)
    hi = KernelModel(engine="none", band="pessimistic").bind(H100, L8, 1)
    t = nom.iteration_time_s((), 8, 8000)
    unc = yaml.safe_load((bundled("profiles") / "uncertainty.yaml").read_text())["kernel"]["gpus"]["H100-SXM"]
    assert hi.iteration_time_s((), 8, 8000) == pytest.approx(t * (1 + unc["latency_frac"]))
    assert lo.iteration_time_s((), 8, 8000) == pytest.approx(t * (1 - unc["latency_frac"]))
    assert math.isfinite(unc["power_frac"])


def test_band_coverage_of_the_shipped_bands_on_measured_rows():
    """The kernel section's Hopper bands contain at least 80% of the leave-one-GPU-out errors of
    every fitted phase on both GPUs (VALIDATION.md shows the same numbers)."""
    from conftest import SHARED_DATA

    from greensim.tools import kernel_validation as kv

    res = kv.validate_kernel(SHARED_DATA)
    for g, b in res["bands"].items():
        for ph in ("prefill", "decode", "verify"):
            lat, pw = b["coverage"][ph]
            if lat == lat:  # phase measured on this GPU
                assert lat >= 0.8, (g, ph, lat)
            if pw == pw:
                assert pw >= 0.8, (g, ph, pw)
    unc = yaml.safe_load((bundled("profiles") / "uncertainty.yaml").read_text())["kernel"]
    for g, b in res["bands"].items():
        assert unc["gpus"][g]["latency_frac"] == pytest.approx(b["latency_frac"], abs=1e-3)
    # old GPUs rest on less evidence: their bands are wider than Hopper's and say why
    hop = unc["architectures"]["Hopper"]
    for arch in ("Ampere", "Volta", "Turing"):
        e = unc["architectures"][arch]
        assert e["latency_frac"] > hop["latency_frac"] and "derived" in e["source"]
