"""The cited acceptance table (profiles/acceptance.yaml), its selection by name, and the
speculative statistics in the results."""

import pytest
from conftest import make_experiment

from greensim.api.catalog import acceptance_table
from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.experiment.acceptance import (
    acceptance_entries,
    alpha_from_accepted_fraction,
    alpha_from_tokens_per_step,
)
from greensim.experiment.load import parse_experiment


def spec(model="Llama-3.1-8B", n=60, **sp):
    s = {"draft_model": "Llama-3.2-1B", "gamma": 4, **sp}
    return make_experiment(
        **{"model": model, "workload.n_requests": n, "cluster.instances": [{"gpu": "A100-80GB", "speculative": s}]}
    )


def test_every_entry_is_sourced_and_derived_ones_reproduce_from_what_was_reported():
    es = acceptance_entries()
    assert any(e.assumed for e in es.values()) and any(not e.assumed for e in es.values())
    for e in es.values():
        assert e.source and 0 <= e.alpha < 1
        assert not (e.assumed and e.derived)
        if e.derived:
            r = e.reported
            f = {"tokens_per_step": alpha_from_tokens_per_step, "accepted_over_drafted": alpha_from_accepted_fraction}
            assert f[r["what"]](r["value"], r["gamma"]) == pytest.approx(e.alpha, abs=5e-4)


def test_conversions_invert_the_closed_forms():
    a, g = 0.73, 5
    assert alpha_from_tokens_per_step((1 - a ** (g + 1)) / (1 - a), g) == pytest.approx(a, abs=1e-9)
    assert alpha_from_accepted_fraction(sum(a**k for k in range(1, g + 1)) / g, g) == pytest.approx(a, abs=1e-9)


def test_named_entry_sets_alpha():
    exp = parse_experiment(spec(acceptance="assumed-0.7"))
    sp = exp.cluster.instances[0].speculative
    assert sp.alpha is None and sp.alpha_value == 0.7
    assert prepare(exp).speculative()[0].alpha == 0.7


def test_exactly_one_of_alpha_alpha_by_position_acceptance():
    with pytest.raises(ConfigError, match="exactly one of alpha, alpha_by_position or acceptance"):
        parse_experiment(spec(alpha=0.7, acceptance="assumed-0.7"))
    with pytest.raises(ConfigError, match="exactly one of alpha, alpha_by_position or acceptance"):
        parse_experiment(spec())


def test_unknown_or_mismatched_entry_names_the_field_and_the_valid_names():
    with pytest.raises(ConfigError, match=r"speculative.*unknown acceptance entry 'nope'.*assumed-0\.7"):
        parse_experiment(spec(acceptance="nope"))
    # measured for Llama-3.1-8B -> Llama-3.1-70B: wrong draft at validation ...
    with pytest.raises(ConfigError, match=r"measured for Llama-3\.1-8B -> Llama-3\.1-70B.*assumed-0\.7"):
        parse_experiment(spec(acceptance="llamacpp-llama3-8b-70b-mixed"))
    # ... wrong target at assembly (the group's model is known there)
    exp = parse_experiment(spec(draft_model="Llama-3.1-8B", acceptance="llamacpp-llama3-8b-70b-mixed"))
    with pytest.raises(
        ConfigError, match=r"cluster\.instances\.0\.speculative\.acceptance: .*not Llama-3\.1-8B -> Llama-3\.1-8B"
    ):
        prepare(exp)


def test_listing_filters_by_pair():
    names = [r["name"] for r in acceptance_table("Llama-3.1-8B", "Llama-3.1-70B")]
    assert names[0] == "llamacpp-llama3-8b-70b-mixed" or "llamacpp-llama3-8b-70b-mixed" in names
    assert "llamacpp-llama3-8b-70b-mixed" not in [r["name"] for r in acceptance_table("Llama-3.2-1B", "Llama-3.1-8B")]
    assert all(
        {"name", "draft", "target", "task", "alpha", "source", "derived", "assumed"} <= set(r)
        for r in acceptance_table()
    )


@pytest.mark.parametrize("split", [False, True])
def test_measured_tokens_per_verify_step_matches_the_closed_form(split):
    """Many verify steps (single-token prompts would not speculate; long outputs do): the measured
    mean tokens per verify step and acceptance match the i.i.d. model within sampling error.
    Output lengths are a multiple that rarely caps gamma, so the cap's bias stays small."""
    a, g = 0.6, 4
    extra = {"draft_gpu": "V100-32GB", "link": {"kind": "pcie_gen3_x16", "latency_s": 1e-5}} if split else {}
    d = spec(n=200, alpha=a, **extra)
    d["workload"].update(output_tokens={"dist": "constant", "value": 2000})
    res = simulate(prepare(parse_experiment(d)))
    s, inst = res.summary, res.instances.iloc[0]
    e = (1 - a ** (g + 1)) / (1 - a)
    steps = inst.spec_verify_steps
    assert steps > 50_000
    # per step: sd of tokens <= gamma / 2; tolerance 5 sd of the mean plus the capped last steps' bias
    tol = 5 * (g / 2) / steps**0.5 + 200 * g / steps
    assert s["spec_tokens_per_verify"] == pytest.approx(e, abs=tol)
    assert s["spec_acceptance"] == pytest.approx((e - 1) / g, abs=tol)
    shares = s["spec_draft_time_share"] + s["spec_link_time_share"] + s["spec_verify_time_share"]
    assert shares == pytest.approx(1.0, rel=1e-9)
    assert (s["spec_link_time_share"] > 0) == split
    assert inst.spec_tokens_per_verify == pytest.approx(s["spec_tokens_per_verify"])


def test_measured_entries_name_catalogue_models_that_can_pair():
    """Every measured entry is selectable for a real DSD group: both names are catalogue models
    (a source's own model is mapped in ``note``) and the draft can propose the target's tokens."""
    from greensim.hardware.catalog import load_catalog, same_tokenizer

    cat = load_catalog()
    measured = [e for e in acceptance_entries().values() if not e.assumed]
    assert len(measured) >= 4
    for e in measured:
        d, t = cat.model(e.draft), cat.model(e.target)
        assert same_tokenizer(d, t), e.name
        assert d.n_params < t.n_params, e.name
        assert e.reported and e.note, e.name  # what was measured, and how it maps, is on record


def test_readme_acceptance_table_is_the_generated_one():
    """README.md quotes markdown_table() between its markers: an entry added to the YAML without
    regenerating the README (or a hand edit of the README) fails here."""
    from pathlib import Path

    from greensim.experiment.acceptance import README_BEGIN, README_END, markdown_table

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = text[text.index(README_BEGIN) + len(README_BEGIN) : text.index(README_END)]
    assert block.strip() == markdown_table()
    for name in acceptance_entries():
        assert f"`{name}`" in block
