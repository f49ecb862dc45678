"""Small drafts (SpecInfer's llama-68m/160m), tokenizer-aware draft checks, and drafts with a
restricted vocabulary (FR-Spec, speculative.draft_vocab_size) on hand-checkable cases."""

import copy

import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.base.errors import ConfigError
from greensim.experiment.load import parse_experiment
from greensim.hardware.catalog import load_catalog, same_tokenizer
from greensim.hardware.kernel import kernel_params_for, load_kernel_params
from greensim.hardware.roofline import load_roofline_params


def dsd(model="Llama-3.1-8B", draft="Llama-3.2-1B", performance=None, **sp):
    spec = {
        "draft_model": draft,
        "alpha": 0.7,
        "gamma": 4,
        "draft_gpu": "V100-32GB",
        "link": {"kind": "ethernet_10g", "latency_s": 1e-5},
    }
    spec.update(sp)
    upd = {"model": model, "workload.n_requests": 20, "cluster.instances": [{"gpu": "A100-80GB", "speculative": spec}]}
    if performance is not None:
        upd["performance"] = performance
    return make_experiment(**upd)


def draft_setup(d):
    return prepare(parse_experiment(d)).speculative()[0]


# ------------------------------------------------------------------ catalogue
@pytest.mark.parametrize(
    "name, cited",
    [
        ("llama-68m", 68e6),  # model card: "only 68M parameters"
        ("llama-160m", 162e6),  # model page: 162M params (safetensors)
        ("JackFram/llama-160m", 162e6),  # the Hugging Face id is an alias
    ],
)
def test_small_drafts_load_and_match_their_cited_parameter_counts(name, cited):
    m = load_catalog().model(name)
    assert "config.json" in m.source
    assert m.n_params == pytest.approx(cited, rel=0.02)
    assert m.vocab_size == 32000 and not m.tied_embeddings


def test_tokenizer_aware_check_accepts_padded_qwen_and_rejects_other_families():
    cat = load_catalog()
    q05, q7 = cat.model("Qwen2.5-0.5B"), cat.model("Qwen2.5-7B")
    assert q05.vocab_size != q7.vocab_size and same_tokenizer(q05, q7)
    assert not same_tokenizer(cat.model("Llama-3.2-1B"), cat.model("Llama-2-7B"))
    assert same_tokenizer(cat.model("llama-68m"), cat.model("Llama-2-7B"))  # no tokenizer entry: vocab 32000 = 32000
    # end to end: Qwen2.5-0.5B drafts for Qwen2.5-7B; Llama-3.2-1B cannot draft for Llama-2-7B
    sp = draft_setup(dsd(model="Qwen2.5-7B", draft="Qwen2.5-0.5B"))
    assert sp.bytes_per_draft_token == 4 + 151936 * 2  # full_vocab: the draft's (padded) rows
    with pytest.raises(ConfigError, match=r"speculative\.draft_model: 'Llama-3\.2-1B' has vocabulary 128256"):
        prepare(parse_experiment(dsd(model="Llama-2-7B")))


def test_tokenizer_mismatch_is_named_when_both_entries_have_one(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "Fake-Qwen-draft:\n  n_layers: 2\n  hidden_size: 896\n  n_heads: 14\n  n_kv_heads: 2\n  head_dim: 64\n"
        "  intermediate_size: 4864\n  vocab_size: 152064\n  tokenizer: other\n  source: test config.json\n"
    )
    d = dsd(model="Qwen2.5-7B", draft="Fake-Qwen-draft")
    d["catalog"] = {"model_dirs": [str(tmp_path)]}
    with pytest.raises(ConfigError, match=r"has tokenizer 'other' but the target 'Qwen2\.5-7B' has 'qwen2\.5'"):
        prepare(parse_experiment(d))


def test_llama_68m_drafts_for_llama_2_7b():
    sp = draft_setup(dsd(model="Llama-2-7B", draft="llama-68m"))
    assert sp.draft_name == "llama-68m@V100-32GB"


# ------------------------------------------------------------------ draft_vocab_size (FR-Spec)
V, V_SMALL = 128256, 32768  # Llama-3.2-1B's vocabulary; FR-Spec's 32k subset


def test_draft_vocab_shortens_the_kernel_model_draft_step_by_the_lm_head_bytes():
    """Batch 1 decode, kernel model: the LM-head GEMM is memory-bound, so restricting it from V to
    V' rows removes (V - V') x (hidden + 1) x bytes / (eta_gemm_memory x BW) seconds (its N x K
    weights plus the N-wide logits row) and nothing else."""
    perf = {"model": "kernel"}
    full = draft_setup(dsd(performance=perf)).draft_perf
    small = draft_setup(dsd(performance=perf, draft_vocab_size=V_SMALL)).draft_perf
    cat = load_catalog()
    gpu, m = cat.gpu("V100-32GB"), cat.model("Llama-3.2-1B")
    k = kernel_params_for(load_kernel_params(), gpu)
    bm, fc = k.eta_gemm_memory * gpu.mem_bandwidth_bps, k.eta_gemm_compute * gpu.peak_flops
    h, b = m.hidden_size, m.dtype_bytes
    assert 2 * V * h / fc < (V * h + V + h) * b / bm  # memory-bound at T = 1
    expected = (V - V_SMALL) * (h + 1) * b / bm
    for ctx in (0, 1000):
        dt = full.iteration_time_s((), 1, ctx) - small.iteration_time_s((), 1, ctx)
        assert dt == pytest.approx(expected, rel=1e-9)
    # 96k of the head's 128k rows (0.39 of the draft's 2.5 GB) are 14 % of this batch-1 step (the
    # rest: the layers, the per-kernel floor and the engine's per-iteration time)
    assert 0.12 < expected / full.iteration_time_s((), 1, 1000) < 0.16


def test_draft_vocab_shortens_the_roofline_draft_step_by_the_lm_head_bytes():
    perf = {"model": "roofline"}
    full = draft_setup(dsd(performance=perf)).draft_perf
    small = draft_setup(dsd(performance=perf, draft_vocab_size=V_SMALL)).draft_perf
    cat = load_catalog()
    gpu, m = cat.gpu("V100-32GB"), cat.model("Llama-3.2-1B")
    eta = load_roofline_params()["architectures"]["Volta"]["eta_memory"]  # V100-32GB has no own entry
    expected = (V - V_SMALL) * m.hidden_size * m.dtype_bytes / (eta * gpu.mem_bandwidth_bps)
    dt = full.iteration_time_s((), 1, 1000) - small.iteration_time_s((), 1, 1000)
    assert dt == pytest.approx(expected, rel=1e-9)


def test_draft_vocab_sets_the_full_vocab_link_bytes_and_keeps_the_memory():
    full = draft_setup(dsd())
    small = draft_setup(dsd(draft_vocab_size=V_SMALL))
    assert full.bytes_per_draft_token == 4 + V * 2
    assert small.bytes_per_draft_token == 4 + V_SMALL * 2
    topk = draft_setup(dsd(draft_vocab_size=V_SMALL, probabilities="top_k", top_k=16))
    assert topk.bytes_per_draft_token == 4 + 16 * (2 + 4)  # top_k traffic does not depend on it
    assert small.draft_name == f"Llama-3.2-1B (draft vocab {V_SMALL})@V100-32GB"
    # the whole embedding stays resident (the input lookup needs every row): same KV capacity
    a, b = (prepare(parse_experiment(x)).instances[0][0].kv_blocks for x in (dsd(), dsd(draft_vocab_size=V_SMALL)))
    assert a == b


def test_draft_vocab_equal_to_the_vocabulary_changes_nothing():
    a, b = draft_setup(dsd()), draft_setup(dsd(draft_vocab_size=V))
    assert a.draft_name == b.draft_name and a.bytes_per_draft_token == b.bytes_per_draft_token
    assert a.draft_perf.iteration_time_s((), 4, 4000) == b.draft_perf.iteration_time_s((), 4, 4000)


@pytest.mark.parametrize(
    "value, match",
    [
        (0, r"speculative\.draft_vocab_size: Input should be greater than or equal to 1"),
        (
            V + 1,
            rf"speculative\.draft_vocab_size: {V + 1} tokens, but the draft 'Llama-3\.2-1B' has a vocabulary of {V}",
        ),
    ],
)
def test_bad_draft_vocab_size_names_the_field(value, match):
    with pytest.raises(ConfigError, match=match):
        prepare(parse_experiment(dsd(draft_vocab_size=value)))


def test_top_k_above_the_draft_vocab_is_an_error():
    with pytest.raises(ConfigError, match=r"speculative\.top_k: 64 entries .* from 32 tokens"):
        prepare(parse_experiment(dsd(draft_vocab_size=32, probabilities="top_k", top_k=64)))


def test_planner_draft_vocab_size_is_checked_and_reaches_the_experiment():
    from test_planner import BASE

    from greensim.experiment.overrides import apply_overrides
    from greensim.planning.search import plan
    from greensim.planning.spec import load_plan_spec

    data = copy.deepcopy(BASE)
    with pytest.raises(ConfigError, match=r"search\.draft\.draft_vocab_size: 200000 tokens"):
        load_plan_spec(apply_overrides(copy.deepcopy(data), {"search.draft.draft_vocab_size": 200000}))
    data = apply_overrides(
        data,
        {
            "search.draft.draft_vocab_size": V_SMALL,
            "search.modes": ["dsd"],
            "search.gammas": [4],
            "workload.n_requests": 40,
            "search.short_requests": 20,
        },
    )
    res = plan(data, prune=False)
    built = [c for c in res.candidates if c.experiment is not None]
    assert built and all(c.experiment.cluster.instances[0].speculative.draft_vocab_size == V_SMALL for c in built)
