import pytest
from hypothesis import given
from hypothesis import strategies as st

from greensim.hardware.catalog import load_catalog
from greensim.hardware.roofline import RooflineModel

CAT = load_catalog()


def bound(gpu="A100-80GB", model="Llama-2-7B", tp=1, **kw):
    return RooflineModel(**kw).bind(CAT.gpu(gpu), CAT.model(model), tp)


@given(
    n=st.integers(1, 512),
    ctx0=st.integers(1, 2_000_000),
    k=st.integers(0, 400),
    gpu=st.sampled_from(["A100-80GB", "H100-SXM", "T4", "V100-32GB"]),
    model=st.sampled_from(["Llama-2-7B", "Llama-3.1-8B"]),
    tp=st.sampled_from([1, 2, 4]),
)
def test_closed_form_decode_run_equals_iteration_sum(n, ctx0, k, gpu, model, tp):
    """The closed-form run time equals the sum of single iterations (compute/memory crossovers included)."""
    b = bound(gpu, model, tp)
    ref = sum(b.iteration_time_s((), n, ctx0 + n * j) for j in range(k))
    assert b.decode_run_time_s(n, ctx0, k) == pytest.approx(ref, rel=1e-9, abs=1e-12)


@given(n=st.integers(1, 64), ctx0=st.integers(1, 100000), k=st.integers(1, 300), frac=st.floats(0, 1))
def test_decode_iterations_until_finds_first_boundary(n, ctx0, k, frac):
    b = bound()
    total = b.decode_run_time_s(n, ctx0, k)
    dt = frac * total
    j = b.decode_iterations_until(n, ctx0, k, dt)
    assert 1 <= j <= k
    assert b.decode_run_time_s(n, ctx0, j) >= dt - 1e-15
    assert j == 1 or b.decode_run_time_s(n, ctx0, j - 1) < dt


def test_decode_is_memory_bound_and_prefill_compute_bound():
    """Batch-1 decode time ~ weight bytes / bandwidth; a long prefill ~ FLOPs / peak."""
    b = bound(iteration_overhead_s=0.0)
    m = CAT.model("Llama-2-7B")
    g = CAT.gpu("A100-80GB")
    t_dec = b.iteration_time_s((), 1, 100)
    assert t_dec == pytest.approx(m.weight_bytes / (g.mem_bandwidth_bps * b._bw / (g.mem_bandwidth_bps)), rel=0.01)
    t_pre = b.iteration_time_s([(4096, 0)], 0, 0)
    assert t_pre > 4096 * m.matmul_flops_per_token / b._flops * 0.999


def test_newer_gpu_is_faster_and_tp_helps():
    for phase in [([(2048, 0)], 0, 0), ((), 32, 32 * 1000)]:
        assert (
            bound("H100-SXM").iteration_time_s(*phase)
            < bound("A100-80GB").iteration_time_s(*phase)
            < bound("V100-32GB").iteration_time_s(*phase)
            < bound("T4").iteration_time_s(*phase)
        )
    assert bound(model="Llama-2-70B", tp=4).iteration_time_s((), 8, 8000) < bound(
        model="Llama-2-70B", tp=2
    ).iteration_time_s((), 8, 8000)


def test_power_phases():
    b = bound()
    g = CAT.gpu("A100-80GB")
    assert b.power_w(0, 10) == pytest.approx(250.0)
    assert b.power_w(100, 0) == pytest.approx(400.0)
    assert 250 < b.power_w(100, 100) < 400
    assert bound(tp=2).idle_power_w == 2 * g.idle_w
