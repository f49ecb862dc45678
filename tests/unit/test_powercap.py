"""The power cap (greensim/hardware/powercap.py): one capped iteration in closed form, decode
runs equal to their iteration sums under a binding cap, no change where the cap never binds,
and the errors that name the field and the fix."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greensim.base.errors import ConfigError
from greensim.hardware.catalog import load_catalog
from greensim.hardware.kernel import EnginePreset, KernelModel, kernel_params_for, load_kernel_params
from greensim.hardware.powercap import CappedKernel, bind_capped, cap_watts
from greensim.hardware.roofline import RooflineModel

CAT = load_catalog()
A100, V100, H100 = CAT.gpu("A100-80GB"), CAT.gpu("V100-32GB"), CAT.gpu("H100-SXM")
L8 = CAT.model("Llama-3.1-8B")
EAGER = EnginePreset(
    "eager", per_iteration_s=2e-4, per_sequence_s=1e-5, decode_cuda_graphs=False, launch_per_layer_s=2e-4
)


def pair(gpu=A100, frac=0.7, model=L8, tp=1, engine=None):
    perf = KernelModel()
    if engine is not None:
        perf.engine = engine
    return perf.bind(gpu, model, tp), bind_capped(perf, gpu, model, tp, frac, "x")


def test_capped_prefill_closed_form():
    """A compute-bound prefill under a 70 % cap runs at the clock f where idle + P_mem + P_sm f^k
    equals the cap; its compute-bound kernel time grows by 1/f, the rest is unchanged, and it
    draws exactly the cap."""
    base, cap = pair()
    ch = [(4096, 0)]
    t0, t1 = base.iteration_time_s(ch, 0, 0), cap.iteration_time_s(ch, 0, 0)
    t, m, f, tc, kernel, *_ = cap._split(ch, 0, 0)
    assert t == t0
    p_ref = base.iteration_power_w(ch, 0, 0, t0)
    assert p_ref == pytest.approx(A100.tdp_w)  # prefill runs at TDP uncapped
    # the split of the curve (clipped at TDP), solved by hand
    idle, span = A100.idle_w, A100.tdp_w - A100.idle_w
    a, b, c = kernel_params_for(load_kernel_params(), A100).power_abc
    u_m, u_c = m / (t * A100.mem_bandwidth_bps), f / (t * A100.peak_flops)
    scale = 1.0 / (a + b * u_m + c * u_c)
    p_mem, p_sm = span * b * u_m * scale, span * (a + c * u_c) * scale
    clk = ((0.7 * A100.tdp_w - idle - p_mem) / p_sm) ** (1 / cap.exponent)
    assert 0.5 < clk < 1
    assert t1 == pytest.approx(t0 + tc * (1 / clk - 1), rel=1e-12)
    assert tc > 0.8 * kernel  # compute-bound: most of it stretches
    assert cap.iteration_power_w(ch, 0, 0, t1) == pytest.approx(0.7 * A100.tdp_w, rel=1e-12)
    # energy falls (as under the caps of Samsi et al. 2023), latency rises
    assert cap.iteration_power_w(ch, 0, 0, t1) * t1 < p_ref * t0


def test_memory_bound_decode_keeps_its_time():
    """Small-batch decode is memory-bound: under a cap it loses (almost) no time (Splitwise's
    token phase x 1.00 at a 70 % cap) while drawing no more than the cap."""
    base, cap = pair(V100, 0.6)
    for n in (1, 8, 64):
        t0, t1 = base.iteration_time_s((), n, 1024 * n), cap.iteration_time_s((), n, 1024 * n)
        assert t1 == pytest.approx(t0, rel=1e-3)
        assert cap.iteration_power_w((), n, 1024 * n, t1) <= 0.6 * V100.tdp_w * (1 + 1e-12)


def test_uncapped_at_tdp_is_identical():
    """A cap at TDP never binds: every method returns the uncapped model's value exactly."""
    base, cap = pair(H100, 1.0)
    for ch, n, c in (([(2048, 0)], 0, 0), ([(512, 128)], 4, 4000), ((), 16, 16000)):
        t = base.iteration_time_s(ch, n, c)
        assert cap.iteration_time_s(ch, n, c) == t
        assert cap.iteration_power_w(ch, n, c, t) == base.iteration_power_w(ch, n, c, t)
    assert cap.decode_run_time_s(8, 1000, 50) == base.decode_run_time_s(8, 1000, 50)
    assert cap.decode_run_energy_j(8, 1000, 50) == base.decode_run_energy_j(8, 1000, 50)
    assert cap.verify_uniform_time_s(4, 5, 4000) == base.verify_uniform_time_s(4, 5, 4000)
    assert cap.verify_power_w(20, 4000, 4, 0.01) == base.verify_power_w(20, 4000, 4, 0.01)
    assert cap.decode_power_w == base.decode_power_w


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 256),
    ctx0=st.integers(0, 20000),
    k=st.integers(1, 60),
    frac=st.sampled_from([0.35, 0.5, 0.7, 0.9]),
    gpu=st.sampled_from(["V100-32GB", "A100-80GB", "H100-SXM"]),
    eager=st.booleans(),
)
def test_decode_run_equals_iteration_sum_under_cap(n, ctx0, k, frac, gpu, eager):
    """decode_run_time_s, decode_run_energy_j and decode_iterations_until agree with summing
    iteration_time_s and iteration_power_w x time, whether the cap binds nowhere, everywhere or
    from some step on."""
    g = CAT.gpu(gpu)
    if frac * g.tdp_w <= g.idle_w:
        return
    _, cap = pair(g, frac, engine=EAGER if eager else None)
    ts = [cap.iteration_time_s((), n, ctx0 + n * j) for j in range(k)]
    es = [cap.iteration_power_w((), n, ctx0 + n * j, t) * t for j, t in enumerate(ts)]
    assert cap.decode_run_time_s(n, ctx0, k) == pytest.approx(math.fsum(ts), rel=1e-9)
    assert cap.decode_run_energy_j(n, ctx0, k) == pytest.approx(math.fsum(es), rel=1e-9)
    dt = math.fsum(ts[: max(1, k // 2)])
    kk = cap.decode_iterations_until(n, ctx0, k, dt)
    assert cap.decode_run_time_s(n, ctx0, kk) >= dt * (1 - 1e-12)
    assert kk == 1 or cap.decode_run_time_s(n, ctx0, kk - 1) < dt


def test_large_batch_decode_binds_and_energy_is_u_shaped():
    """Large-batch decode on a V100 (compute-bound GEMMs at batch 256) reaches TDP, so caps bind:
    the run slows and never draws more than the cap; its energy falls under a mild cap and rises
    again under a deep one (idle and memory power over a longer run), the U-shape of energy
    against clock that DVFS studies report."""
    n, ctx0, k = 256, 256 * 200, 30
    e = {}
    for frac in (1.0, 0.7, 0.4):
        base, cap = pair(V100, frac)
        e[frac] = cap.decode_run_energy_j(n, ctx0, k)
        if frac < 1:
            assert cap._run_binds(n, ctx0, k)
            assert cap.decode_run_time_s(n, ctx0, k) > base.decode_run_time_s(n, ctx0, k)
            for j in (0, k - 1):
                c = ctx0 + n * j
                t = cap.iteration_time_s((), n, c)
                assert cap.iteration_power_w((), n, c, t) <= frac * V100.tdp_w * (1 + 1e-12)
    assert e[0.7] < e[1.0] < e[0.4]


def test_verify_respects_the_cap():
    """A large verify pass (compute-bound) under the cap is slower and draws the cap."""
    base, cap = pair(A100, 0.6)
    t0, t1 = base.verify_uniform_time_s(64, 16, 64 * 2000), cap.verify_uniform_time_s(64, 16, 64 * 2000)
    assert t1 > t0
    assert cap.verify_power_w(64 * 16, 64 * 2000, 64, t1) == pytest.approx(0.6 * A100.tdp_w)
    assert cap.power_w(4096, 0) == pytest.approx(0.6 * A100.tdp_w)


def test_clock_floor():
    """A cap the GPU cannot meet even at its lowest clock runs at that floor, above the cap."""
    perf = KernelModel()
    k = kernel_params_for(perf.params, A100)
    cap = CappedKernel(A100, L8, 1, k, perf.engine, 0.2, clock_floor_frac=0.9)
    ch = [(4096, 0)]
    t = cap.iteration_time_s(ch, 0, 0)
    assert cap.iteration_power_w(ch, 0, 0, t) > 0.2 * A100.tdp_w
    assert cap._clock(*cap._split(ch, 0, 0)[:3])[0] == 0.9


def test_errors_name_the_field():
    """A cap at or below idle power, or on a model other than kernel, is a ConfigError naming
    power_cap_frac and the fix."""
    with pytest.raises(ConfigError, match=r"cluster.instances.1.power_cap_frac: .*idle power"):
        cap_watts(V100, 0.1, "cluster.instances.1")
    with pytest.raises(ConfigError, match=r"power_cap_frac: a power cap needs performance.model kernel"):
        bind_capped(RooflineModel(), V100, L8, 1, 0.6, "cluster.instances.0")


def _exp(**group):
    from greensim.experiment.load import parse_experiment

    return parse_experiment(
        {
            "name": "cap",
            "model": "Llama-3.1-8B",
            "workload": {
                "kind": "poisson",
                "rate_rps": 2,
                "n_requests": 20,
                "input_tokens": {"dist": "constant", "value": 2000},
                "output_tokens": {"dist": "constant", "value": 50},
            },
            "cluster": {"instances": [{"gpu": "A100-80GB", **group}]},
            "slo": {"ttft_s": 1.0, "tpot_s": 0.1},
        }
    )


def test_experiment_cap_reaches_the_instances_table():
    """power_cap_frac in the experiment caps the group's instances; the instances table gives the
    per-GPU cap in watts (NaN where uncapped), and the capped run draws less busy power."""
    from greensim.assembly.prepare import prepare
    from greensim.assembly.simulate import simulate

    r0 = simulate(prepare(_exp()))
    r1 = simulate(prepare(_exp(power_cap_frac=0.7)))
    i0, i1 = r0.instances, r1.instances
    assert math.isnan(i0["power_cap_w"].iloc[0])
    assert i1["power_cap_w"].iloc[0] == pytest.approx(280.0)
    assert i1["busy_s"].iloc[0] > i0["busy_s"].iloc[0]
    assert i1["busy_energy_j"].iloc[0] / i1["busy_s"].iloc[0] <= 280.0 * (1 + 1e-9)


def test_experiment_cap_errors():
    """A cap with speculative decoding or with aging degradation is refused, naming the fix."""
    from greensim.assembly.prepare import prepare

    with pytest.raises(ConfigError, match="power_cap_frac is not supported with speculative"):
        _exp(power_cap_frac=0.7, speculative={"draft_model": "Llama-3.2-1B", "gamma": 3, "alpha": 0.7})
    with pytest.raises(ConfigError, match=r"cluster.instances.0.power_cap_frac: not supported together with aging"):
        prepare(_exp(power_cap_frac=0.7, age_years=2, aging={"power_increase_frac_per_year": 0.01}))
    with pytest.raises(ConfigError, match=r"cluster.instances.0.power_cap_frac: .*idle power"):
        prepare(_exp(power_cap_frac=0.1))
