import pytest
from conftest import make_experiment

from greensim.base.errors import ConfigError
from greensim.experiment.load import load_experiment, parse_experiment
from greensim.experiment.overrides import apply_overrides
from greensim.experiment.schema import json_schema


def test_defaults_are_filled_and_frozen():
    e = parse_experiment(make_experiment())
    assert e.carbon.pue == 1.1 and e.carbon.lifetime_years == 5.0
    assert e.cluster.instances[0].block_tokens == 16
    with pytest.raises(Exception):
        e.seed = 3


def test_overrides_by_dotted_path_and_list_index():
    d = apply_overrides(
        make_experiment(),
        ["cluster.instances.0.count=5", "workload.rate_rps=2.5", "cluster.router=join_shortest_queue"],
    )
    e = parse_experiment(d)
    assert e.cluster.instances[0].count == 5 and e.workload.rate_rps == 2.5
    assert e.cluster.router == "join_shortest_queue"


@pytest.mark.parametrize(
    "ov,msg",
    [
        (["cluster.instances.3.count=1"], "not a valid index"),
        (["noequals"], "expected KEY=VALUE"),
        (["seed.x=1"], "is a value, not a section"),
    ],
)
def test_bad_overrides(ov, msg):
    with pytest.raises(ConfigError, match=msg):
        apply_overrides(make_experiment(), ov)


def test_errors_list_every_problem_with_paths():
    d = make_experiment(**{"workload.rate_rps": 0, "slo.tpot_s": -1, "seed": -3})
    with pytest.raises(ConfigError) as ei:
        parse_experiment(d)
    text = str(ei.value)
    assert "3 problems" in text
    for path in ["workload.rate_rps", "slo.tpot_s", "seed"]:
        assert path in text


def test_uniform_bounds_checked():
    d = make_experiment(**{"workload.input_tokens": {"dist": "uniform", "low": 10, "high": 5}})
    with pytest.raises(ConfigError, match=r"high \(5\) must be >= low \(10\)"):
        parse_experiment(d)


def test_relative_trace_path_resolves_against_experiment_file(tmp_path):
    import yaml

    (tmp_path / "sub").mkdir()
    d = make_experiment(**{"workload": {"kind": "trace", "path": "t.csv"}})
    (tmp_path / "sub" / "e.yaml").write_text(yaml.safe_dump(d))
    e = load_experiment(tmp_path / "sub" / "e.yaml")
    assert e.workload.path == str((tmp_path / "sub" / "t.csv").resolve())


def test_committed_schema_is_current():
    """experiments/experiment.schema.json is regenerated with `greensim schema --out ...`."""
    import json
    from pathlib import Path

    committed = json.loads((Path(__file__).resolve().parents[2] / "experiments/experiment.schema.json").read_text())
    assert committed == json_schema()


@pytest.mark.parametrize(
    "key, value, want",
    [
        (
            "carbon.intensity",
            {"series": "x.csv"},
            r"carbon\.intensity: says neither which form it is \(got keys: series\)\. Add 'kind': one of constant, series, diurnal",
        ),
        (
            "workload.input_tokens",
            {"value": 3},
            r"workload\.input_tokens: .*Add 'dist': one of constant, uniform, lognormal, empirical",
        ),
    ],
)
def test_a_tagged_section_without_its_tag_names_the_tag_and_its_values(key, value, want):
    from greensim.experiment.load import to_experiment

    with pytest.raises(ConfigError, match=want):
        to_experiment(make_experiment(**{key: value}))
