"""`greensim trace list|stats|fit`, and experiments that use the new workload kinds end to end."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import make_experiment

from greensim.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_trace_stats_of_named_trace_with_plot(tmp_path, shared_data):
    png = tmp_path / "s.png"
    res = invoke("trace", "stats", "azure_llm_2023_conv", "--data-dir", shared_data / "traces", "--plot", png, "--json")
    assert res.exit_code == 0, res.output
    st = json.loads(res.output[: res.output.rindex("}") + 1])
    src = pd.read_csv(shared_data / "traces/azure_llm_2023_conv.csv")
    assert st["n_requests"] == len(src)
    assert st["duration_s"] == pytest.approx(src.arrival_time_s.iloc[-1])
    assert st["input_tokens_p99"] == pytest.approx(np.percentile(src.input_tokens, 99))
    gaps = np.diff(src.arrival_time_s)
    assert st["iat_cv"] == pytest.approx(gaps.std() / gaps.mean())
    assert png.stat().st_size > 10_000


def test_trace_stats_of_file_and_profile(tmp_path, shared_data):
    res = invoke(
        "trace", "stats", shared_data / "traces/sharegpt_lengths_llama2tok.csv", "--format", "lengths", "--no-plot"
    )
    assert res.exit_code == 0, res.output
    assert "30,731" in res.output and "lengths only" in res.output
    res = invoke(
        "trace",
        "stats",
        shared_data / "traces/servegen_rate_profile_10min.csv",
        "--format",
        "servegen",
        "--plot",
        tmp_path / "p.png",
    )
    assert res.exit_code == 0, res.output
    assert "m-large" in res.output and (tmp_path / "p.png").is_file()


def test_trace_stats_bad_file_exits_2(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("arrival_time_s,input_tokens,output_tokens\n0,1,1\n1,-4,1\n")
    res = invoke("trace", "stats", p, "--no-plot")
    assert res.exit_code == 2 and "x.csv" in res.output and "row 1" in res.output and "Traceback" not in res.output
    res = invoke("trace", "stats", p, "--no-plot", "--drop-invalid")
    assert res.exit_code == 0 and "dropped 1 row" in res.output


@pytest.mark.parametrize(
    "mapping,pattern",
    [
        ("garbage", r"--column .garbage.: expected OURS=THEIRS"),
        ("=a", r"--column .=a.: expected OURS=THEIRS, one pair per --column, both non-empty"),
        ("input_tokens=", r"--column .input_tokens=.: expected OURS=THEIRS"),
        ("input_tokens=a,output_tokens=b", r"expected OURS=THEIRS, one pair per --column"),
        ("input_tokens=a;input_tokens=b", r"column 'input_tokens' is already mapped to 'a'"),
    ],
)
def test_trace_stats_malformed_column_mapping_exits_2(tmp_path, mapping, pattern):
    import re

    (tmp_path / "t.csv").write_text("a,b,c\n0,10,5\n")
    cols = [x for m in mapping.split(";") for x in ("--column", m)]
    res = invoke("trace", "stats", tmp_path / "t.csv", "--format", "columns", *cols, "--no-plot")
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert re.search(pattern, res.output), res.output


def test_trace_fit_writes_loadable_model(tmp_path, shared_data):
    res = invoke("trace", "fit", shared_data / "traces/azure_llm_2023_code.csv", "--out", tmp_path, "--name", "code")
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load((tmp_path / "code.yaml").read_text())
    assert doc["provenance"]["source_rows"] == 8819 and len(doc["provenance"]["source_sha256"]) == 64
    from greensim.workloads.fitted import JointLengthModel

    m = JointLengthModel.from_dict(doc["lengths"])
    assert np.asarray(m.copula_counts).sum() == 8819


def test_trace_list_names_every_trace():
    res = invoke("trace", "list")
    assert res.exit_code == 0
    for name in ("azure_llm_2023_conv", "mooncake_fast25_conversation", "servegen_rate_profile_10min"):
        assert name in res.output


def test_run_day_long_servegen_with_fitted_lengths(tmp_path, shared_data):
    """A synthetic workload driven by the ServeGen profile runs end to end."""
    d = make_experiment(
        workload={
            "kind": "synthetic",
            "duration_s": 600.0,
            "arrivals": {
                "process": "servegen",
                "path": str(shared_data / "traces/servegen_rate_profile_10min.csv"),
                "model": "m-large",
                "mean_rate_rps": 2.0,
                "start_s": 19 * 3600.0,
            },
            "lengths": {"kind": "fitted", "trace": "azure_llm_2023_conv"},
        }
    )
    p = tmp_path / "e.yaml"
    p.write_text(yaml.safe_dump(d))
    assert invoke("validate", p).exit_code == 0
    res = invoke("run", p, "--out", tmp_path / "o", "--no-plots")
    assert res.exit_code == 0, res.output
    r = pd.read_parquet(next((tmp_path / "o" / "t").iterdir()) / "requests.parquet")
    assert r.arrival_s.max() < 600.0 and len(r) > 100


def test_shipped_example_experiments_validate(shared_data, monkeypatch):
    from greensim.base.paths import bundled

    monkeypatch.setenv("GREENSIM_DATA_DIR", str(shared_data))
    for f in bundled("experiments").iterdir():
        if f.name.endswith(".yaml"):
            res = invoke("validate", str(f))
            assert res.exit_code == 0, (f.name, res.output)


def test_trace_stats_of_an_experiment_shows_its_generated_workload(tmp_path):
    d = make_experiment(
        workload={
            "kind": "synthetic",
            "n_requests": 20_000,
            "arrivals": {"process": "gamma", "rate_rps": 8.0, "cv": 2.0},
            "lengths": {"kind": "fitted", "trace": "azure_llm_2023_conv"},
        }
    )
    p = tmp_path / "e.yaml"
    p.write_text(yaml.safe_dump(d))
    res = invoke("trace", "stats", p, "--json", "--no-plot")
    assert res.exit_code == 0, res.output
    st = json.loads(res.output)
    assert st["n_requests"] == 20_000
    assert st["mean_rate_rps"] == pytest.approx(8.0, rel=0.05) and st["iat_cv"] == pytest.approx(2.0, rel=0.1)
    from greensim.assembly.prepare import prepare
    from greensim.experiment.load import load_experiment

    t = prepare(load_experiment(p)).table  # the same requests a run would simulate
    assert st["input_tokens_max"] == t.n_input_tokens.max()
