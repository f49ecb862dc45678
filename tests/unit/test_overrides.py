"""Override keys are checked against the schema before a run starts, naming the key."""

import pytest
import yaml
from conftest import make_experiment

import greensim
from greensim.base.errors import ConfigError
from greensim.experiment.load import load_experiment, parse_experiment
from greensim.experiment.overrides import check_override_key


@pytest.mark.parametrize(
    "key,pattern",
    [
        (
            "workload.rate",
            r"override 'workload\.rate': 'workload' \(kind poisson\) has no field 'rate'\. "
            r"Did you mean 'workload\.rate_rps'\?",
        ),
        (
            "cluster.instances.0.gpux",
            r"'cluster\.instances\.0' has no field 'gpux'\. Did you mean 'cluster\.instances\.0\.gpu'\?",
        ),
        ("slo.ttft", r"Did you mean 'slo\.ttft_s'\?"),
        ("workloads.rate_rps", r"the experiment has no field 'workloads'\. Did you mean 'workload'\?"),
        ("seed.x", r"'seed' is a value \(int\), not a section"),
        ("cluster.instances.first.gpu", r"'cluster\.instances' is a list; 'first' is not an index"),
        ("slo.classes.chat.ttft", r"'slo\.classes\.chat' has no field 'ttft'"),
    ],
)
def test_unknown_override_key_names_key_and_closest(key, pattern):
    """The check walks the pydantic models, so it sees typos anywhere in the path."""
    with pytest.raises(ConfigError, match=pattern):
        check_override_key(key, make_experiment())


def test_union_member_follows_the_tag_in_the_data():
    """'value' exists only for a constant length: accepted iff the data's dist is constant."""
    d = make_experiment()
    with pytest.raises(ConfigError, match=r"\(dist lognormal\) has no field 'value'"):
        check_override_key("workload.input_tokens.value", d)
    d2 = make_experiment(**{"workload.input_tokens": {"dist": "constant", "value": 5}})
    check_override_key("workload.input_tokens.value", d2)


def test_valid_keys_pass_including_free_dict_keys():
    d = make_experiment()
    for key in [
        "seed",
        "workload.rate_rps",
        "cluster.instances.0.gpu",
        "carbon.gpu_lifetime_years.T4",
        "slo.classes.chat.ttft_s",
        "carbon.intensity.gco2_per_kwh",
        "output.plots",
    ]:
        check_override_key(key, d)


def test_run_rejects_bad_override_before_simulating(monkeypatch):
    """greensim.run with a dict, an Experiment or a path fails before prepare() is called."""
    import greensim.api.run as runner

    def never(*a, **k):
        raise AssertionError("a run started")

    monkeypatch.setattr(runner, "prepare", never)
    d = make_experiment()
    for exp in (d, parse_experiment(d)):
        with pytest.raises(ConfigError, match=r"override 'workload\.rate'.*rate_rps"):
            greensim.run(exp, overrides={"workload.rate": 3}, write=False)


def test_load_experiment_rejects_bad_set(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text(yaml.safe_dump(make_experiment()))
    with pytest.raises(ConfigError, match=r"override 'cluster\.routr'.*Did you mean 'cluster\.router'"):
        load_experiment(p, ["cluster.routr=round_robin"])
