"""``format: auto`` recognises the Azure LLM inference and BurstGPT traces as published (by their
CSV headers), and otherwise its error names the format field / option and the formats (issue 18)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import make_experiment

from greensim.base.errors import TraceError
from greensim.experiment.load import parse_experiment
from greensim.workloads import build_workload, load_trace
from greensim.workloads.registry import TRACE_READERS
from greensim.workloads.traces import read_trace_frame

BURSTGPT = """Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,Conversation log
45,ChatGPT,1087,0,1087,Conversation log
118,GPT-4,417,276,693,API log
134,ChatGPT,1360,334,1694,Conversation log
"""


def _wl(**kw):
    return parse_experiment(make_experiment(workload={"kind": "trace", **kw})).workload


def _azure_original(shared_data, tmp_path, n=300):
    """The first ``n`` rows of the shared Azure conv trace back in the published form (PROVENANCE.md:
    TIMESTAMP from 2023-11-16 18:15:46.68 with 100 ns digits, ContextTokens, GeneratedTokens)."""
    conv = pd.read_csv(shared_data / "traces" / "azure_llm_2023_conv.csv").iloc[:n]
    t0 = pd.Timestamp("2023-11-16 18:15:46.6800000")
    ts = t0 + pd.to_timedelta(np.round(conv["arrival_time_s"].to_numpy() * 1e6).astype(np.int64), unit="us")
    raw = pd.DataFrame(
        {
            "TIMESTAMP": [x.strftime("%Y-%m-%d %H:%M:%S.%f") + "0" for x in ts],
            "ContextTokens": conv["input_tokens"],
            "GeneratedTokens": conv["output_tokens"],
        }
    )
    p = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    raw.to_csv(p, index=False)
    return p, conv


def test_auto_reads_the_published_azure_form(shared_data, tmp_path):
    p, conv = _azure_original(shared_data, tmp_path)
    df = read_trace_frame(p)  # format auto
    assert df["arrival_time_s"].to_numpy() == pytest.approx(conv["arrival_time_s"].to_numpy(), abs=1e-6)
    assert df["input_tokens"].tolist() == conv["input_tokens"].tolist()
    assert df["output_tokens"].tolist() == conv["output_tokens"].tolist()
    assert "recognised the Azure LLM inference header" in df.attrs["notes"][0]
    t = build_workload(_wl(path=str(p)), np.random.SeedSequence(1))  # the experiment's default format
    assert t.n_input_tokens.tolist() == conv["input_tokens"].tolist()


def test_auto_reads_the_published_burstgpt_form(tmp_path):
    p = tmp_path / "BurstGPT_1.csv"
    p.write_text(BURSTGPT)
    auto, named = read_trace_frame(p), read_trace_frame(p, "burstgpt")
    pd.testing.assert_frame_equal(auto, named)
    assert auto["arrival_time_s"].tolist() == [0.0, 113.0, 129.0]  # the failed request dropped, noted
    assert any("recognised the BurstGPT header" in n for n in auto.attrs["notes"])
    df, notes = load_trace(_wl(path=str(p), include_failed=True))  # a burstgpt option with format auto
    assert df["output_tokens"].tolist() == [18, 1, 276, 334] and any("kept 1 failed" in n for n in notes)


def test_auto_on_other_columns_names_the_format_field_option_and_formats(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("ts,prompt,gen\n0,10,5\n1,20,6\n")
    with pytest.raises(TraceError) as e:
        build_workload(_wl(path=str(p)), np.random.SeedSequence(1))
    msg = str(e.value)
    assert "mine.csv" in msg and "workload.format" in msg and "--format" in msg
    assert all(f in msg for f in TRACE_READERS.names())
    assert "TIMESTAMP, ContextTokens, GeneratedTokens" in msg and "Timestamp, Request tokens, Response tokens" in msg
    from greensim.cli import main

    res = CliRunner().invoke(main, ["trace", "stats", str(p), "--no-plot"])
    assert res.exit_code == 2 and "--format" in res.output and "Traceback" not in res.output


def test_a_csv_read_for_one_column_is_not_recognised(shared_data, tmp_path):
    """An empirical length distribution samples a column of any table, the published Azure form included."""
    p, conv = _azure_original(shared_data, tmp_path, n=50)
    exp = make_experiment(**{"workload.input_tokens": {"dist": "empirical", "path": str(p), "column": "ContextTokens"}})
    t = build_workload(parse_experiment(exp).workload, np.random.SeedSequence(1))
    assert set(t.n_input_tokens.tolist()) <= set(conv["input_tokens"].tolist())


def test_cli_trace_stats_auto_on_burstgpt(tmp_path):
    from greensim.cli import main

    p = tmp_path / "BurstGPT_1.csv"
    p.write_text(BURSTGPT)
    res = CliRunner().invoke(main, ["trace", "stats", str(p), "--no-plot", "--json"])
    assert res.exit_code == 0, res.output
    assert "recognised the BurstGPT header" in res.output
