"""greensim.api.traces, greensim.api.forecast and greensim.api.theory: what the trace,
forecast and theory commands call, usable from a notebook without the CLI."""

import numpy as np
import pytest
from conftest import make_experiment

from greensim.base.errors import ConfigError, TraceError


def test_load_trace_named_and_file_agree(shared_data):
    from greensim.api.traces import load_source, load_trace

    named = load_trace("azure_llm_2023_code", data_dir=str(shared_data / "traces"))
    path = load_source(shared_data / "traces" / "azure_llm_2023_code.csv")
    assert named.name == "azure_llm_2023_code" and named.info is not None and path.info is None
    assert len(named.frame) == len(path.frame) == 8819 and not named.is_profile


def test_column_mapping_strings_must_have_an_equals_sign(shared_data):
    from greensim.api.traces import load_trace

    with pytest.raises(TraceError, match="expected OURS=THEIRS"):
        load_trace(shared_data / "traces" / "azure_llm_2023_code.csv", columns=["input_tokens"])


def test_experiment_requests_are_the_generated_workload(tmp_path):
    from greensim.api.traces import experiment_requests, stats

    d = experiment_requests(make_experiment(**{"workload.n_requests": 50}))
    assert d.name == "t" and len(d.frame) == 50
    assert stats(d)["n_requests"] == 50


def test_fit_of_a_rate_profile_is_refused_and_a_fit_is_written(tmp_path, shared_data):
    from greensim.api.traces import fit, load_trace, write_fit

    prof = load_trace(shared_data / "traces" / "servegen_rate_profile_10min.csv", fmt="servegen")
    assert prof.is_profile
    with pytest.raises(TraceError, match="rate profile has no request lengths"):
        fit(prof)
    doc = fit(load_trace(shared_data / "traces" / "azure_llm_2023_code.csv"), name="code", command="test")
    assert write_fit(doc, tmp_path) == tmp_path / "code.yaml" and doc["provenance"]["fitted_by"] == "test"


def test_named_traces_list_fitted_models():
    from greensim.api.traces import named_traces

    rows = {r["name"]: r for r in named_traces()}
    assert rows["azure_llm_2023_conv"]["fitted"] and not rows["servegen_rate_profile_10min"]["fitted"]


def test_backtest_region_and_heatmap(tmp_path, shared_data):
    from greensim.api.forecast import backtest_region, write_backtest

    bt = backtest_region("ZA", "persistence", horizon=24, days=2)
    assert bt.n_origins == 2 and list(bt.mape.columns) == ["persistence"]
    csv, png = write_backtest(bt, tmp_path)
    assert csv.is_file() and png.is_file()
    from greensim.api.theory import savings_heatmap

    with pytest.raises(ConfigError, match="draft model"):
        savings_heatmap(mode="DSD", out_dir=tmp_path)
    hm = savings_heatmap(out_dir=tmp_path)
    assert hm.path.is_file() and hm.base.name == "colocated" and np.isfinite(hm.pue)
