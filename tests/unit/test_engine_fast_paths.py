"""The kernel model's engine fast paths give bit-identical results to the plain paths they
replace: the cut-run bisection over the run's affine terms against the base class's bisection over
``decode_run_time_s``, and the decode-run energy's time term against ``decode_run_time_s``."""

import numpy as np
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import make_router, prepare
from greensim.core.interfaces import BoundPerformance
from greensim.core.simulation import Simulation
from greensim.experiment.load import parse_experiment
from greensim.hardware.catalog import load_catalog
from greensim.hardware.kernel import BoundKernel, EnginePreset, engine_preset, kernel_params_for, load_kernel_params

CAT = load_catalog()
# CUDA-graph decode (the default preset) and an eager engine whose CPU launch floor binds
ENGINES = [
    None,
    EnginePreset("eager", per_iteration_s=2e-4, per_sequence_s=1e-5, decode_cuda_graphs=False, launch_per_layer_s=2e-4),
]


def _bound(engine=None) -> BoundKernel:
    g = CAT.gpu("A100-80GB")
    e = engine_preset("vllm-0.5") if engine is None else engine
    return BoundKernel(g, CAT.model("Llama-3.1-8B"), 1, kernel_params_for(load_kernel_params(), g), e)


def _assert_cut_matches_bisection(b: BoundPerformance, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n, ctx0, kmax = int(rng.integers(1, 256)), int(rng.integers(0, 400_000)), int(rng.integers(1, 600))
        j = int(rng.integers(1, kmax + 1))
        # inside the run, and exactly at an iteration boundary (where >= and > differ)
        for dt in (float(rng.uniform(0.0, 1.2)) * b.decode_run_time_s(n, ctx0, kmax), b.decode_run_time_s(n, ctx0, j)):
            assert b.decode_iterations_until(n, ctx0, kmax, dt) == BoundPerformance.decode_iterations_until(
                b, n, ctx0, kmax, dt
            )


@pytest.mark.parametrize("engine", ENGINES)
def test_bisection_matches_base_class(engine) -> None:
    _assert_cut_matches_bisection(_bound(engine), 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_run_time_helper_is_decode_run_time(engine) -> None:
    rng = np.random.default_rng(4)
    for _ in range(300):
        b = _bound(engine)  # fresh: no memoised run time
        n, ctx0, k = int(rng.integers(1, 256)), int(rng.integers(0, 400_000)), int(rng.integers(1, 600))
        t0, t1, *_ = b._decode_affine(n, ctx0)
        assert b._run_time(n, k, t0, t1) == b.decode_run_time_s(n, ctx0, k)


def _records(n: int) -> dict:
    exp = make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "performance": {"model": "kernel"},
            "workload.rate_rps": 30.0,
            "workload.n_requests": n,
            "cluster.router": "join_shortest_queue",
        }
    )
    p = prepare(parse_experiment(exp))
    out = Simulation(p.table, p.instances, make_router(p.router_factory, p.policy_seeds), p.bin_s).run()
    rec = {k: np.asarray(v) for k, v in vars(out.record).items() if isinstance(v, np.ndarray)}
    rec["ledger_j"] = np.array([i.ledger.busy_j for i in out.instances])
    rec["iterations"] = np.array([i.n_iterations for i in out.instances])
    return rec


def test_simulation_identical_to_plain_bisection(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _records(400)
    monkeypatch.setattr(BoundKernel, "decode_iterations_until", BoundPerformance.decode_iterations_until)
    plain = _records(400)
    assert fast.keys() == plain.keys()
    for k in fast:
        assert np.array_equal(fast[k], plain[k], equal_nan=fast[k].dtype.kind == "f"), k
    assert fast["iterations"].sum() > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_memoised_run_energy_and_iteration_power_equal_fresh_ones(engine) -> None:
    """The run kept from decode_run_time_s prices the energy as a fresh model does (also with other
    runs asked for in between, as instances sharing the model do), and an iteration's power after its
    time equals the power asked for alone."""
    rng = np.random.default_rng(5)
    shared = _bound(engine)
    for _ in range(200):
        runs = [(int(rng.integers(1, 256)), int(rng.integers(0, 400_000)), int(rng.integers(1, 600))) for _ in range(3)]
        for r in runs:
            shared.decode_run_time_s(*r)
        for r in reversed(runs):
            assert shared.decode_run_energy_j(*r) == _bound(engine).decode_run_energy_j(*r)
        chunks = [(int(rng.integers(1, 4000)), int(rng.integers(0, 2000))) for _ in range(int(rng.integers(1, 4)))]
        nd, ctx = int(rng.integers(0, 64)), int(rng.integers(0, 100_000))
        t = shared.iteration_time_s(chunks, nd, ctx)
        fresh = _bound(engine)
        assert t == fresh.iteration_time_s(list(chunks), nd, ctx)
        assert shared.iteration_power_w(chunks, nd, ctx, t) == _bound(engine).iteration_power_w(chunks, nd, ctx, t)


@pytest.mark.parametrize("engine", ENGINES)
def test_verify_power_after_its_time_equals_a_fresh_models(engine) -> None:
    """verify_power_w reuses the bytes and FLOPs of the verify step just timed (uniform steps: the
    same attention pairs) and computes them otherwise; either way as a fresh model does."""
    rng = np.random.default_rng(6)
    shared = _bound(engine)
    for _ in range(300):
        n, q, ctx = int(rng.integers(1, 64)), int(rng.integers(1, 8)), int(rng.integers(0, 200_000))
        uniform = bool(rng.integers(0, 2))
        s_qc, s_qq = q * ctx, n * q * (q + 1)
        p_tok = n * q if uniform else n * q - 1  # a short sequence: pairs differ from the mean's
        t = shared.verify_sums_time_s(p_tok, ctx, s_qc, s_qq, n)
        assert t == _bound(engine).verify_sums_time_s(p_tok, ctx, s_qc, s_qq, n)
        assert shared.verify_power_w(p_tok, ctx, n, t) == _bound(engine).verify_power_w(p_tok, ctx, n, t)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kt", [0.72, 1.28])
def test_banded_cut_matches_the_base_class_bisection(engine, kt) -> None:
    """A band corner's cut run (inner model's answer, then stepped to the scaled crossing) is the
    base class's bisection over the scaled run times."""
    from greensim.hardware.bands import BandedBound

    _assert_cut_matches_bisection(BandedBound(_bound(engine), kt, 1.1), 7)
