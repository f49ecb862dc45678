"""Trace readers: named shared traces, original public formats, column mapping, options, bad input."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_experiment

from greensim.base.errors import TraceError
from greensim.experiment.load import parse_experiment
from greensim.workloads import TRACES, build_workload, load_trace
from greensim.workloads.named import find_named_trace
from greensim.workloads.traces import read_trace_frame


def wl(**kw):
    """A parsed trace workload section."""
    e = parse_experiment(make_experiment(workload={"kind": "trace", **kw}))
    return e.workload


def table(**kw):
    return build_workload(wl(**kw), np.random.SeedSequence(1))


# ------------------------------------------------------------------ shared files: rows and types (PROVENANCE.md)
SHARED = [
    ("azure_llm_2023_conv", 19366, True, ()),
    ("azure_llm_2023_code", 8819, True, ()),
    ("mooncake_fast25_conversation", 12031, True, ("hash_ids",)),
    ("mooncake_fast25_synthetic", 3993, True, ("hash_ids",)),
    ("sharegpt_lengths_llama2tok", 30731, False, ()),
    ("arxiv_summarization_lengths_llama2tok", 28257, False, ()),
]


@pytest.mark.parametrize("name,rows,timed,extras", SHARED, ids=[s[0] for s in SHARED])
def test_named_shared_trace_rows_and_types(shared_data, name, rows, timed, extras):
    """Each named loader reads its shared file with the documented row count and column types."""
    info, path = find_named_trace(name, str(shared_data / "traces"))
    assert info.rows == rows
    df = read_trace_frame(path, info.format)
    assert len(df) == rows
    assert pd.api.types.is_integer_dtype(df["input_tokens"]) and pd.api.types.is_integer_dtype(df["output_tokens"])
    assert ("arrival_time_s" in df.columns) == timed
    if timed:
        assert pd.api.types.is_float_dtype(df["arrival_time_s"]) and df["arrival_time_s"].iloc[0] == 0.0
        assert (np.diff(df["arrival_time_s"].to_numpy()) >= 0).all()
    for c in extras:
        assert df[c].map(type).eq(str).all()
    if "hash_ids" in extras:  # 512-token blocks: ceil(input / 512) ids per request (FAST'25 README)
        n_ids = df["hash_ids"].str.split().map(len).to_numpy()
        assert (n_ids == np.ceil(df["input_tokens"].to_numpy() / 512)).mean() > 0.99


def test_servegen_profile_rows_and_columns(shared_data):
    df = read_trace_frame(shared_data / "traces/servegen_rate_profile_10min.csv", "servegen")
    assert len(df) == 6336 and df.groupby("model").size().to_dict() == {
        "m-large": 2016,
        "m-mid": 2016,
        "m-small": 2016,
        "deepseek-r1": 144,
        "mm-image": 144,
    }
    assert pd.api.types.is_float_dtype(df["total_rate_rps"])


def test_named_trace_by_name_replays_the_file(shared_data):
    t = table(name="azure_llm_2023_code", data_dir=str(shared_data / "traces"), max_requests=50)
    src = pd.read_csv(shared_data / "traces/azure_llm_2023_code.csv", nrows=50)
    assert (t.n_input_tokens == src.input_tokens.to_numpy()).all()
    assert (t.arrival_s == src.arrival_time_s.to_numpy()).all()


def test_length_only_trace_needs_arrivals(shared_data):
    d = str(shared_data / "traces")
    with pytest.raises(TraceError, match=r"no arrival_time_s column .*workload\.arrivals"):
        table(name="sharegpt_lengths_llama2tok", data_dir=d)
    t = table(name="sharegpt_lengths_llama2tok", data_dir=d, arrivals={"process": "poisson", "rate_rps": 5.0})
    src = pd.read_csv(shared_data / "traces/sharegpt_lengths_llama2tok.csv")
    assert len(t) == len(src) and (t.n_output_tokens == src.output_tokens.to_numpy()).all()
    assert len(t) / t.arrival_s[-1] == pytest.approx(5.0, rel=0.03)


def test_unknown_name_lists_valid_and_missing_folder_says_where(tmp_path, monkeypatch):
    import greensim.workloads.named as named
    from greensim.base.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown named trace 'azure_conv'.*azure_llm_2023_conv"):
        table(name="azure_conv")
    monkeypatch.setattr(named, "trace_dirs", lambda data_dir=None: [tmp_path])
    with pytest.raises(TraceError, match=r"azure_llm_2023_conv.csv, not found in .*Set workload.data_dir"):
        named.find_named_trace("azure_llm_2023_conv", str(tmp_path))


# ------------------------------------------------------------------ Azure original format (2023 and 2024)
AZURE_2023 = """TIMESTAMP,ContextTokens,GeneratedTokens
2023-11-16 18:15:46.6805900,374,44
2023-11-16 18:15:50.9951690,396,109
2023-11-16 18:15:51.0000000,879,1
2023-11-16 18:16:00.1234567,91,0
"""
AZURE_2024 = """TIMESTAMP,ContextTokens,GeneratedTokens
2024-05-10 00:00:00.009930+00:00,2162,5
2024-05-10 00:00:00.017335+00:00,2399,6
2024-05-10 00:00:01+00:00,76,15
2024-05-10 00:00:01.500000+00:00,2376,1
"""


def test_azure_2023_original_format(tmp_path):
    """TIMESTAMP with 100 ns digits parsed exactly; a 0-token row fails naming file, row and column."""
    p = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    p.write_text(AZURE_2023)
    df = read_trace_frame(p, "azure_llm")
    assert df["arrival_time_s"].tolist() == pytest.approx([0.0, 4.314579, 4.319410, 13.4428667], abs=1e-9)
    assert df["input_tokens"].tolist() == [374, 396, 879, 91]
    with pytest.raises(TraceError, match=r"AzureLLMInferenceTrace_conv.csv.*'output_tokens' is 0 at row 3"):
        table(path=str(p), format="azure_llm")
    df2, notes = load_trace(wl(path=str(p), format="azure_llm", drop_invalid=True))
    assert len(df2) == 3 and any("dropped 1 row" in n and "zero tokens" in n for n in notes)


def test_azure_2024_original_format_mixed_fractions(tmp_path):
    """2024 timestamps carry +00:00 and some have no fractional seconds."""
    p = tmp_path / "AzureLLMInferenceTrace_code_1week.csv"
    p.write_text(AZURE_2024)
    t = table(path=str(p), format="azure_llm")
    assert t.arrival_s.tolist() == pytest.approx([0.0, 0.007405, 0.99007, 1.49007], abs=1e-9)
    assert t.n_output_tokens.tolist() == [5, 6, 15, 1]


def test_azure_bad_timestamp_names_row(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(AZURE_2023.replace("2023-11-16 18:15:51.0000000", "yesterday"))
    with pytest.raises(
        TraceError, match=r"a.csv: column 'TIMESTAMP' has an unparseable timestamp 'yesterday' at row 2"
    ):
        read_trace_frame(p, "azure_llm")


# ------------------------------------------------------------------ BurstGPT
BURSTGPT = """Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type
5,ChatGPT,472,18,490,Conversation log
45,ChatGPT,1087,0,1087,Conversation log
118,GPT-4,417,276,693,API log
134,ChatGPT,1360,334,1694,Conversation log
140,ChatGPT,0,20,20,Conversation log
"""


def test_burstgpt_failures_dropped_and_reported(tmp_path):
    p = tmp_path / "BurstGPT_1.csv"
    p.write_text(BURSTGPT)
    df = read_trace_frame(p, "burstgpt")
    assert len(df) == 4 and df["arrival_time_s"].tolist() == [0.0, 113.0, 129.0, 135.0]
    assert any("dropped 1 failed request" in n for n in df.attrs["notes"])
    assert df["model"].tolist() == ["ChatGPT", "GPT-4", "ChatGPT", "ChatGPT"]
    # the zero-request-token row is invalid: an error names file, row (as in the file) and column
    with pytest.raises(TraceError, match=r"BurstGPT_1.csv.*'input_tokens' is 0 at row 4"):
        table(path=str(p), format="burstgpt")
    t = table(path=str(p), format="burstgpt", drop_invalid=True, select={"model": "ChatGPT"})
    assert t.n_input_tokens.tolist() == [472, 1360]


def test_burstgpt_include_failed_keeps_prompt_only(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text(BURSTGPT)
    df, notes = load_trace(wl(path=str(p), format="burstgpt", include_failed=True, drop_invalid=True))
    assert df["output_tokens"].tolist() == [18, 1, 276, 334]
    assert any("kept 1 failed" in n for n in notes) and any("dropped 1 row" in n for n in notes)


def test_burstgpt_missing_column(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text(BURSTGPT.replace("Response tokens", "Resp"))
    with pytest.raises(TraceError, match=r"b.csv: format 'burstgpt' needs column\(s\) 'Response tokens'"):
        read_trace_frame(p, "burstgpt")


# ------------------------------------------------------------------ Mooncake original JSONL, generic mapping
def test_mooncake_original_jsonl(tmp_path):
    p = tmp_path / "conversation_trace.jsonl"
    p.write_text(
        '{"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0, 1, 2]}\n'
        '{"timestamp": 3012, "input_length": 700, "output_length": 49, "hash_ids": [0, 14]}\n'
    )
    t = read_trace_frame(p, "mooncake")
    assert t["arrival_time_s"].tolist() == [0.0, 3.012] and t["hash_ids"].tolist() == ["0 1 2", "0 14"]


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_column_mapping_and_time_unit(tmp_path, suffix):
    raw = pd.DataFrame({"ts_ms": [1000, 1500, 4000], "prompt": [10, 20, 30], "gen": [1, 2, 3], "x": [0, 0, 0]})
    p = tmp_path / f"t.{suffix}"
    {
        "csv": lambda: raw.to_csv(p, index=False),
        "parquet": lambda: raw.to_parquet(p),
        "jsonl": lambda: raw.to_json(p, orient="records", lines=True),
    }[suffix]()
    t = table(
        path=str(p),
        format="columns",
        time_unit="ms",
        columns={"arrival_time_s": "ts_ms", "input_tokens": "prompt", "output_tokens": "gen"},
    )
    assert t.arrival_s.tolist() == [1.0, 1.5, 4.0] and t.n_input_tokens.tolist() == [10, 20, 30]


def test_column_mapping_datetime_and_missing(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("when,a,b\n2024-01-01T00:00:00Z,5,6\n2024-01-01T00:00:02.5Z,7,8\n")
    t = table(
        path=str(p),
        format="columns",
        time_unit="datetime",
        columns={"arrival_time_s": "when", "input_tokens": "a", "output_tokens": "b"},
    )
    assert t.arrival_s.tolist() == [0.0, 2.5]
    with pytest.raises(TraceError, match=r"t.csv: format 'columns' needs column\(s\) 'nope'"):
        table(
            path=str(p),
            format="columns",
            columns={"arrival_time_s": "when", "input_tokens": "nope", "output_tokens": "b"},
        )


# ------------------------------------------------------------------ bad input: file, row, column; drop_invalid counts
BAD = [
    ("missing column", "arrival_time_s,input_tokens\n0,10\n", r"missing column\(s\) output_tokens"),
    (
        "non-numeric",
        "arrival_time_s,input_tokens,output_tokens\n0,10,5\n1,x7,5\n",
        r"'input_tokens' has a non-numeric value 'x7' at row 1",
    ),
    (
        "negative",
        "arrival_time_s,input_tokens,output_tokens\n0,10,5\n1,10,-5\n",
        r"'output_tokens' is negative at row 1",
    ),
    ("NaN", "arrival_time_s,input_tokens,output_tokens\n0,10,5\n,10,5\n", r"'arrival_time_s' has NaN/inf at row 1"),
    (
        "fraction",
        "arrival_time_s,input_tokens,output_tokens\n0,10.5,5\n",
        r"'input_tokens' has a non-integer value 10.5 at row 0",
    ),
    (
        "unsorted",
        "arrival_time_s,input_tokens,output_tokens\n0,1,1\n5,1,1\n2,1,1\n6,1,1\n",
        r"not sorted \(row 2 arrives before row 1\)",
    ),
]


@pytest.mark.parametrize("label,text,pattern", BAD, ids=[b[0] for b in BAD])
def test_bad_values_name_file_row_column(tmp_path, label, text, pattern):
    p = tmp_path / "bad_trace.csv"
    p.write_text(text)
    with pytest.raises(TraceError, match=r"bad_trace.csv.*" + pattern):
        table(path=str(p))


def test_drop_invalid_drops_and_counts(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(
        "arrival_time_s,input_tokens,output_tokens\n0,10,5\n1,x,5\n2,10,0\n3,5,5\n2.5,3,3\n3,-1,4\n4,7,7\n5,,1\n"
    )
    df, notes = load_trace(wl(path=str(p), drop_invalid=True))
    assert df["input_tokens"].tolist() == [10, 5, 7]
    note = next(n for n in notes if n.startswith("drop_invalid"))
    assert "dropped 5 row(s)" in note
    for part in ("non-numeric 1", "zero tokens 1", "negative 1", "NaN/inf 1", "out of order 1"):
        assert part in note


# ------------------------------------------------------------------ experiment options
def _ramp(tmp_path, n=100):
    p = tmp_path / "ramp.csv"
    pd.DataFrame(
        {
            "arrival_time_s": np.arange(n, dtype=float),
            "input_tokens": np.arange(1, n + 1),
            "output_tokens": np.arange(n, 0, -1),
        }
    ).to_csv(p, index=False)
    return str(p)


def test_window_keeps_only_its_arrivals_and_starts_at_zero(tmp_path):
    t = table(path=_ramp(tmp_path), window_start_s=10, window_end_s=20)
    assert t.arrival_s.tolist() == list(map(float, range(10))) and t.n_input_tokens.tolist() == list(range(11, 21))


def test_length_filters(tmp_path):
    t = table(
        path=_ramp(tmp_path), min_input_tokens=5, max_input_tokens=50, max_output_tokens=90, max_total_tokens=1000
    )
    assert t.n_input_tokens.min() == 11 and t.n_input_tokens.max() == 50


def test_repeat_until_tiles_with_period(tmp_path):
    t = table(path=_ramp(tmp_path, 10), repeat_until_s=25)  # period = 9 + 1 (last + mean gap)
    assert t.arrival_s.tolist() == [float(x) for x in range(25)]
    assert t.n_input_tokens.tolist() == [1 + (i % 10) for i in range(25)]
    t2 = table(path=_ramp(tmp_path, 100), window_start_s=0, window_end_s=5, rate_scale=2.0, repeat_until_s=6)
    assert t2.arrival_s.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5]


def test_max_requests_after_filters(tmp_path):
    t = table(path=_ramp(tmp_path), min_input_tokens=50, max_requests=3)
    assert t.n_input_tokens.tolist() == [50, 51, 52]


def test_time_scale_and_rate_scale_are_exclusive(tmp_path):
    from greensim.base.errors import ConfigError

    with pytest.raises(ConfigError, match="time_scale or rate_scale"):
        wl(path=_ramp(tmp_path), time_scale=2.0, rate_scale=2.0)
    with pytest.raises(ConfigError, match="exactly one of path"):
        wl(name="azure_llm_2023_conv", path="x.csv")


def test_every_named_trace_is_in_provenance(shared_data):
    text = (shared_data / "traces/PROVENANCE.md").read_text()
    for name in TRACES.names():
        assert TRACES.get(name).file in text


def test_format_specific_options_rejected_elsewhere(tmp_path):
    from greensim.base.errors import ConfigError

    with pytest.raises(ConfigError, match="apply to format 'columns' only"):
        table(path=_ramp(tmp_path), time_unit="ms")
    with pytest.raises(ConfigError, match="include_failed applies to format 'burstgpt' only"):
        table(path=_ramp(tmp_path), include_failed=True)
    t = table(
        path=_ramp(tmp_path),
        columns={"arrival_time_s": "arrival_time_s", "input_tokens": "output_tokens", "output_tokens": "input_tokens"},
    )  # auto -> columns
    assert t.n_input_tokens[0] == 100


def test_config_errors_name_the_field_path():
    from greensim.base.errors import ConfigError

    with pytest.raises(ConfigError, match=r"workload\.lengths\.trace: required field is missing"):
        parse_experiment(
            make_experiment(
                workload={
                    "kind": "synthetic",
                    "n_requests": 5,
                    "lengths": {"kind": "fitted"},
                    "arrivals": {"process": "poisson", "rate_rps": 1},
                }
            )
        )
    with pytest.raises(ConfigError, match=r"workload\.arrivals\.cv: Input should be greater than 0"):
        parse_experiment(
            make_experiment(
                workload={
                    "kind": "synthetic",
                    "n_requests": 5,
                    "lengths": {"kind": "fitted", "trace": "x"},
                    "arrivals": {"process": "gamma", "rate_rps": 1, "cv": -1},
                }
            )
        )
    with pytest.raises(ConfigError, match=r"workload: Value error, set exactly one of path"):
        parse_experiment(make_experiment(workload={"kind": "trace"}))


def test_a_trace_with_a_differently_named_arrival_column_is_told_to_map_it(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("arrival_s,input_tokens,output_tokens\n0,10,10\n")
    with pytest.raises(TraceError, match=r"column\(s\) \['arrival_s'\].*workload\.columns.*arrival_time_s: arrival_s"):
        load_trace(wl(path=str(p)))
