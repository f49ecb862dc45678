"""Quantised weights / KV cache and mixture-of-experts models (issue 20, parts 2 and 4), each
checked against its closed form: bytes held and streamed, GEMM rate per GPU generation, expert
coverage E (1 - (1 - k/E)^B), and the planner choosing an int4 model for an old GPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from greensim.api.run import run
from greensim.base.errors import ConfigError, GreensimError
from greensim.experiment.load import parse_experiment
from greensim.hardware.catalog import expected_experts, load_catalog
from greensim.hardware.kernel import KernelModel

CAT = load_catalog()
L13 = CAT.model("Llama-2-13B")
MIX = CAT.model("Mixtral-8x7B")


def _linear(m):
    return m.n_layers * (m.n_params_per_layer - 2 * m.hidden_size)


def test_quantised_weight_and_kv_bytes_closed_form():
    """int4 in groups of 128 with one fp16 scale each: 0.5 + 2/128 bytes per layer weight;
    embeddings, LM head and norms stay fp16; fp8 KV is 1 byte per element."""
    q = L13.quantized(weights="int4", kv="fp8")
    lin = _linear(L13)
    assert q.weight_bytes == pytest.approx(lin * (0.5 + 2 / 128) + (L13.n_params - lin) * 2, rel=1e-12)
    assert q.kv_bytes_per_token == 2 * 40 * 40 * 128 * 1
    assert L13.kv_bytes_per_token == 2 * q.kv_bytes_per_token
    w8 = L13.quantized(weights="int8", group_size=64, scale_bytes=4)
    assert w8.weight_bytes == pytest.approx(lin * (1 + 4 / 64) + (L13.n_params - lin) * 2, rel=1e-12)
    assert L13.quantized() is L13  # all fp16: the model itself (recorded numbers unchanged)


def test_quantised_model_fits_an_old_gpu_that_fp16_does_not():
    """Llama-2-13B (24 GiB in fp16) fits neither a V100-16GB nor a T4; int8 and int4 do, int4
    with more KV blocks."""
    from greensim.core.memory import kv_capacity_blocks

    for gpu in ("V100-16GB", "T4"):
        g = CAT.gpu(gpu)
        with pytest.raises(ConfigError, match="does not fit"):
            kv_capacity_blocks(g.memory_bytes, 1, L13.weight_bytes, L13.kv_bytes_per_token, 16, 0.1)
        b8, b4 = (
            kv_capacity_blocks(g.memory_bytes, 1, m.weight_bytes, m.kv_bytes_per_token, 16, 0.1)
            for m in (L13.quantized(weights="int8"), L13.quantized(weights="int4"))
        )
        assert 1 <= b8 < b4


def _bound(gpu, model, tp=1):
    return KernelModel().bind(CAT.gpu(gpu), model, tp)


def test_weight_bytes_streamed_per_decode_step():
    """A batch-1 decode step reads each layer weight once at its stored size (scales included):
    bytes = L * sum(N K wb + T (N + K) 2) + the fp16 LM head."""
    q = L13.quantized(weights="int4")
    b16, b4 = _bound("V100-16GB", L13), _bound("V100-16GB", q)
    _, m16, f16 = b16._gemm(1, 0)
    _, m4, f4 = b4._gemm(1, 0)
    nk = sum(n * k for n, k in b16._shapes) * L13.n_layers
    assert nk == _linear(L13)  # the four GEMMs hold every layer weight
    assert m16 - m4 == pytest.approx(nk * (2 - (0.5 + 2 / 128)), rel=1e-12)
    assert f16 == f4  # weight-only: same FLOPs


def test_gemm_rate_follows_the_gpu_generation():
    """Compute-bound layer GEMMs: W8A8 on a T4 runs at its int8 peak (130 vs 65 TOPS), H100 fp8 at
    1979 vs 989; weight-only int4 computes in fp16 (no gain), slower by 1 + dequant_overhead_frac."""
    T = 16384
    t16 = _bound("T4", L13)._gemm(T, 0)[0]
    t8 = _bound("T4", L13.quantized(weights="int8", activations="int8"))._gemm(T, 0)[0]
    assert t8 / t16 == pytest.approx(65 / 130, rel=1e-9)
    h16 = _bound("H100-SXM", L13)._gemm(T, 0)[0]
    h8 = _bound("H100-SXM", L13.quantized(weights="fp8", activations="fp8"))._gemm(T, 0)[0]
    assert h8 / h16 == pytest.approx(989 / 1979, rel=1e-9)
    w4 = _bound("T4", L13.quantized(weights="int4"))._gemm(T, 0)[0]
    assert w4 == pytest.approx(t16, rel=1e-9)
    slow = _bound("T4", L13.quantized(weights="int4", dequant_overhead_frac=0.25))._gemm(T, 0)[0]
    assert slow / t16 == pytest.approx(1.25, rel=1e-9)


def test_tensor_core_dtypes_a_gpu_lacks_are_errors():
    """V100 has no int8 tensor cores, A100 no fp8: such GEMMs are refused with the field named."""
    with pytest.raises(GreensimError, match="int8 tensor cores"):
        _bound("V100-16GB", L13.quantized(weights="int8", activations="int8"))
    with pytest.raises(GreensimError, match="fp8 tensor cores"):
        _bound("A100-80GB", L13.quantized(weights="fp8", activations="fp8"))
    with pytest.raises(ValueError, match="activations: int8 GEMMs need weights in int8"):
        L13.quantized(weights="int4", activations="int8")
    with pytest.raises(GreensimError, match="activations int8 needs weights int8"):
        parse_experiment({**_exp("V100-16GB"), "quantization": {"weights": "int4", "activations": "int8"}})


def _exp(gpu, model="Llama-2-13B", n=40, **group):
    return {
        "name": "q",
        "seed": 1,
        "model": model,
        "workload": {
            "kind": "poisson",
            "rate_rps": 0.5,
            "n_requests": n,
            "input_tokens": {"dist": "lognormal", "median": 300, "sigma": 0.5, "max": 1500},
            "output_tokens": {"dist": "lognormal", "median": 60, "sigma": 0.5, "max": 300},
        },
        "cluster": {"instances": [{"gpu": gpu, "count": 1, **group}]},
        "slo": {"ttft_s": 2.0, "tpot_s": 0.2},
        "performance": {"uncertainty": "none"},
    }


def test_experiment_file_override_and_group_quantization():
    """Top-level quantization (also as an override), a group's own replacing it; W8A8 on a V100
    is a ConfigError naming the field; the summary says quality effects are out of scope."""
    with pytest.raises(ConfigError, match="does not fit"):
        run(_exp("V100-16GB"), write=False, progress=False)
    r4 = run(_exp("V100-16GB"), overrides={"quantization.weights": "int4"}, write=False, progress=False)
    assert "out of scope" in r4.summary["quantization_note"]
    r8 = run(_exp("V100-16GB", quantization={"weights": "int8"}), write=False, progress=False)
    assert r4.summary["tpot_s_p50"] < r8.summary["tpot_s_p50"]  # fewer weight bytes per step
    with pytest.raises(ConfigError, match=r"quantization.activations: int8 GEMMs need int8 tensor cores"):
        run(
            _exp("V100-16GB", quantization={"weights": "int8", "activations": "int8"}),
            write=False,
            progress=False,
        )
    plain = run(_exp("A100-80GB"), write=False, progress=False)
    assert "quantization_note" not in plain.summary


def test_expected_experts_closed_form():
    """E (1 - (1 - k/E)^B): one token touches k experts, a large batch all E."""
    assert expected_experts(8, 2, 1) == pytest.approx(2.0)
    assert expected_experts(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert expected_experts(60, 4, 10_000) == pytest.approx(60.0)
    assert expected_experts(8, 2, 0) == 0.0


def test_moe_parameters_and_flops_use_active_experts():
    """Mixtral-8x7B: 46.7B parameters held, 12.9B active (Jiang et al. 2024); FLOPs per token
    follow the active ones; memory holds every expert."""
    assert MIX.n_params / 1e9 == pytest.approx(46.7, abs=0.05)
    assert MIX.n_active_params / 1e9 == pytest.approx(12.9, abs=0.05)
    assert MIX.weight_bytes == MIX.n_params * 2
    qw = CAT.model("Qwen1.5-MoE-A2.7B")
    assert qw.n_params / 1e9 == pytest.approx(14.3, abs=0.05) and qw.n_active_params / 1e9 == pytest.approx(
        2.7, abs=0.05
    )
    assert MIX.matmul_flops_per_token == pytest.approx(
        2
        * (
            MIX.n_active_params
            - MIX.n_layers * 2 * MIX.hidden_size
            - MIX.vocab_size * MIX.hidden_size
            - MIX.hidden_size
        ),
        rel=1e-12,
    )


@pytest.mark.parametrize("tp,ep", [(2, False), (2, True)])
def test_moe_bytes_streamed_follow_expert_coverage(tp, ep):
    """Per layer and GPU the routed experts stream E_touched(B) x expert bytes (+ activations):
    batch 1 reads k experts, a large batch all E; EP holds E/tp whole experts per GPU."""
    m = MIX.with_expert_parallel(ep)
    b = _bound("A100-80GB", m, tp)
    E, k, h, inter = 8, 2, 4096, 14336
    expert = 3 * h * inter / (1 if ep else tp)  # one expert's weights on one GPU (gate, up, down)
    for B in (1, 3, 64, 4096):
        share = 1 / tp if ep else 1.0
        touched = E * (1 - (1 - k / E) ** B) * share
        acts = B * k * share * (3 * inter / (1 if ep else tp) + 2 * h) * 2  # (N + K) per routed token
        t, by, fl = b._moe(B)
        assert by == pytest.approx(touched * expert * 2 + acts, rel=1e-12)
        assert fl == pytest.approx(2 * B * k * share * expert, rel=1e-12)
    assert b._moe(1)[1] < b._moe(4096)[1]


def test_expert_parallel_swaps_the_mlp_all_reduce_for_two_all_to_alls():
    lat, bw = KernelModel().bind(CAT.gpu("A100-80GB"), MIX, 2).k.allreduce[2]
    tp_b = _bound("A100-80GB", MIX, 2)
    ep_b = _bound("A100-80GB", MIX.with_expert_parallel(), 2)
    L, h = 32, 4096
    assert tp_b._ar_a == pytest.approx(2 * L * lat) and ep_b._ar_a == pytest.approx(3 * L * lat)
    assert ep_b._ar_b == pytest.approx(L * (h * 2 + 2 * 2 * h * 2 * 0.5) / bw, rel=1e-12)
    with pytest.raises(ValueError, match="dense"):
        L13.with_expert_parallel()


def test_mixtral_runs_with_and_without_expert_parallelism():
    """Mixtral-8x7B (87 GiB) on 2 A100-80GB, experts split (TP) or spread (EP); a dense model
    with expert_parallel is a ConfigError naming the field."""
    a = run(_exp("A100-80GB", "Mixtral-8x7B", n=20, tp=2), write=False, progress=False).summary
    b = run(_exp("A100-80GB", "Mixtral-8x7B", n=20, tp=2, expert_parallel=True), write=False, progress=False).summary
    assert a["n_completed"] == b["n_completed"] == 20
    assert a["tpot_s_p50"] != b["tpot_s_p50"]
    with pytest.raises(ConfigError, match=r"cluster.instances.0.expert_parallel: 'Llama-2-13B' is a dense model"):
        run(_exp("A100-80GB", expert_parallel=True), write=False, progress=False)


def test_planner_picks_an_int4_model_on_old_gpus():
    """Llama-2-13B does not fit a V100-16GB in fp16; with search.quantizations [none, w4] the
    planner's winner decodes on two V100-16GB in int4 (DPD), where one A100 alone misses the SLO."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_planner import problem

    from greensim.planning import plan

    q = {
        "model": "Llama-2-13B",
        "workload.input_tokens.max": 3000,
        "workload.output_tokens.max": 1000,
        "workload.rate_rps": 2.0,
        "workload.n_requests": 200,
        "slo.tpot_s": 0.045,
        "slo.ttft_s": 1.5,
        "search.modes": ["colocated", "dpd"],
        "search.quantizations": ["none", "w4"],
        "search.short_requests": 80,
        "inventory": [
            {"gpu": "A100-80GB", "count": 1, "role": "new"},
            {"gpu": "V100-16GB", "count": 2, "role": "old", "age_years": 6},
        ],
        "carbon.embodied_schemes": {"V100-16GB": {"scheme": "sunk"}},
    }
    r = plan(problem(**q), prune=True)
    assert r.feasible and r.best.name == "dpd_A100-80GBx1_V100-16GBx2_qw4_b256"
    assert r.best.quantization == "w4"
    decode = r.best.experiment.cluster.instances[1]
    assert decode.gpu == "V100-16GB" and decode.quantization.weights == "int4"
    rows = r.frontier.set_index("candidate")
    assert "does not fit" in rows.loc["dpd_A100-80GBx1_V100-16GBx2_b256", "reason"]
    assert not rows.loc["colocated_A100-80GBx1_b256", "feasible"]
    assert rows.loc["dpd_A100-80GBx1_V100-16GBx2_qw4_b256", "quantization"] == "w4"


def test_validate_uses_the_groups_quantization(tmp_path):
    """`greensim validate` checks the fit of the model as the group serves it (int4 fits a V100-16GB)."""
    import yaml

    from greensim.api.validate import validate_experiment

    f = tmp_path / "q.yaml"
    f.write_text(yaml.safe_dump({**_exp("V100-16GB"), "quantization": {"weights": "int4"}}))
    assert "OK" in validate_experiment(f)
    f.write_text(yaml.safe_dump(_exp("V100-16GB")))
    with pytest.raises(ConfigError, match="does not fit"):
        validate_experiment(f)
