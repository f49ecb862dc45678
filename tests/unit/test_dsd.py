"""Speculative decoding (DSD) on hand-checkable cases and bad input."""

import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.experiment.load import parse_experiment


def dsd(split=True, **sp):
    spec = {"draft_model": "Llama-3.2-1B", "alpha": 0.7, "gamma": 4}
    if split:
        spec.update(draft_gpu="V100-32GB", link={"kind": "pcie_gen3_x16", "latency_s": 1e-5})
    spec.update(sp)
    return make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "workload.n_requests": 60,
            "cluster.instances": [{"gpu": "A100-80GB", "speculative": spec}],
        }
    )


def test_single_request_first_token_is_the_slower_prefill_of_the_two_gpus():
    """Split: target and draft prefill the prompt in parallel; TTFT = the slower of the two."""
    d = dsd()
    d["workload"].update(
        n_requests=1, input_tokens={"dist": "constant", "value": 800}, output_tokens={"dist": "constant", "value": 2}
    )
    p = prepare(parse_experiment(d))
    t = simulate(p).requests.iloc[0]
    sp = p.speculative()[0]
    t_t = p.instances[0][1].iteration_time_s([(800, 0)], 0, 0)
    t_d = sp.draft_perf.iteration_time_s([(800, 0)], 0, 0)
    assert t.ttft_s == pytest.approx(max(t_t, t_d), rel=1e-12)
    # one more token: a verify pass of 1 position (gamma capped at remaining - 1 = 0), no draft, no link
    assert t.e2e_s - t.ttft_s == pytest.approx(p.instances[0][1].iteration_time_s([(1, 800)], 0, 0), rel=1e-12)


def test_full_vocab_probabilities_cost_more_link_time_than_top_k():
    slow = dsd(link={"bandwidth_gbs": 1.0, "latency_s": 0.0})
    fast = dsd(link={"bandwidth_gbs": 1.0, "latency_s": 0.0}, probabilities="top_k", top_k=8)
    a, b = (simulate(prepare(parse_experiment(x))).summary for x in (slow, fast))
    assert a["tpot_s_mean"] > b["tpot_s_mean"] * 1.2


def test_higher_acceptance_needs_fewer_target_iterations():
    lo, hi = (simulate(prepare(parse_experiment(dsd(alpha=a)))).instances for a in (0.2, 0.9))
    assert hi.n_iterations[0] < 0.7 * lo.n_iterations[0]


def test_colocated_speculation_charges_one_gpu():
    t = simulate(prepare(parse_experiment(dsd(split=False))))
    assert len(t.instances) == 1 and "draft_instance" not in t.requests


@pytest.mark.parametrize(
    "change, match",
    [
        ({"alpha": 1.0}, r"speculative\.alpha: Input should be less than 1"),
        ({"alpha": -0.1}, r"speculative\.alpha"),
        ({"link": {"bandwidth_gbs": 0.0, "latency_s": 0.0}}, r"speculative\.link\.bandwidth_gbs"),
        ({"draft_gpu": None}, "set draft_gpu and link together"),
        ({"probabilities": "top_k"}, "top_k is required"),
    ],
)
def test_bad_speculative_config_names_the_field(change, match):
    with pytest.raises(ConfigError, match=match):
        parse_experiment(dsd(**change))


def test_draft_vocabulary_must_match_target():
    d = dsd()
    d["model"] = "Llama-2-7B"
    with pytest.raises(ConfigError, match=r"speculative\.draft_model: 'Llama-3\.2-1B' has vocabulary 128256 .* 32000"):
        prepare(parse_experiment(d))


def test_draft_that_does_not_fit_its_gpu_names_the_field():
    d = dsd(draft_model="Llama-3.1-8B", draft_gpu="T4")
    with pytest.raises(ConfigError, match=r"speculative\.draft_gpu .*does not fit"):
        prepare(parse_experiment(d))


def test_unknown_gamma_policy_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"gamma_policy: unknown gamma policy 'smart' \(valid: fixed, goodput\)"):
        prepare(parse_experiment(dsd(gamma_policy="smart")))


def test_roofline_verify_forms_equal_the_chunked_iteration():
    """verify_time_s / verify_uniform_time_s = iteration_time_s over the same chunks."""
    import numpy as np

    from greensim.hardware.catalog import load_catalog
    from greensim.hardware.roofline import RooflineModel

    c = load_catalog()
    b = RooflineModel().bind(c.gpu("A100-80GB"), c.model("Llama-3.1-8B"), 2)
    q, ctx = np.array([5, 5, 3, 1]), np.array([100, 2000, 50, 7])
    ref = b.iteration_time_s(list(zip(q.tolist(), ctx.tolist())), 0, 0)
    assert b.verify_time_s(q, ctx) == pytest.approx(ref, rel=1e-12)
    ref5 = b.iteration_time_s([(5, 100), (5, 2000), (5, 7)], 0, 0)
    assert b.verify_uniform_time_s(3, 5, 2107) == pytest.approx(ref5, rel=1e-12)


def test_alpha_or_alpha_by_position_exactly_one():
    with pytest.raises(ConfigError, match="exactly one of alpha, alpha_by_position or acceptance"):
        parse_experiment(dsd(alpha_by_position=[0.8, 0.7, 0.6, 0.5]))
    with pytest.raises(ConfigError, match="alpha_by_position has 2 entries; it needs gamma = 4"):
        parse_experiment(dsd(alpha=None, alpha_by_position=[0.8, 0.7]))
    with pytest.raises(ConfigError, match=r"alpha_by_position\.1"):
        parse_experiment(dsd(alpha=None, alpha_by_position=[0.8, 1.2, 0.6, 0.5]))


@pytest.mark.parametrize("model", ["roofline", "kernel"])
def test_verify_is_charged_at_verify_power_not_prefill_power(model):
    """One request, two tokens: the target's energy is its prefill plus one verify pass priced at
    the model's verify power (memory-bound like decode: decode power for the roofline's constant
    model, the kernel model's power of that pass), not at the prefill's (full-board) power."""
    d = dsd()
    d["performance"] = {"model": model, "uncertainty": "none"}
    d["workload"].update(
        n_requests=1, input_tokens={"dist": "constant", "value": 800}, output_tokens={"dist": "constant", "value": 2}
    )
    p = prepare(parse_experiment(d))
    perf = p.instances[0][1]
    inst = simulate(p).instances.iloc[0]
    t_pre = perf.iteration_time_s([(800, 0)], 0, 0)
    t_v = perf.iteration_time_s([(1, 800)], 0, 0)
    p_v = perf.verify_power_w(1, 800, 1, t_v)
    assert inst.busy_energy_j == pytest.approx(t_pre * perf.power_w(800, 0) + t_v * p_v, rel=1e-9)
    assert p_v < 0.8 * perf.power_w(800, 0)
    if model == "roofline":
        assert p_v == perf.decode_power_w
