import numpy as np
import pandas as pd
import pytest
from conftest import make_experiment

from greensim.experiment.load import parse_experiment
from greensim.workloads import build_workload
from greensim.workloads.traces import read_trace_frame, table_from_frame


def table(**upd):
    e = parse_experiment(make_experiment(**upd))
    return build_workload(e.workload, np.random.SeedSequence(e.seed))


def test_poisson_rate_and_exponential_gaps():
    t = table(**{"workload.n_requests": 50_000, "workload.rate_rps": 7.0})
    gaps = np.diff(t.arrival_s)
    assert len(t) / t.arrival_s[-1] == pytest.approx(7.0, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)  # CV of exponential = 1


def test_lognormal_lengths_median_and_clip():
    t = table(
        **{
            "workload.n_requests": 20_000,
            "workload.input_tokens": {"dist": "lognormal", "median": 500, "sigma": 1.0, "max": 3000},
        }
    )
    assert np.median(t.n_input_tokens) == pytest.approx(500, rel=0.05)
    assert t.n_input_tokens.max() == 3000 and t.n_input_tokens.min() >= 1


def test_seed_changes_stream_and_same_seed_repeats():
    a, b, c = table(seed=1), table(seed=1), table(seed=2)
    assert (a.arrival_s == b.arrival_s).all() and not (a.arrival_s == c.arrival_s).all()


def test_empirical_lengths_come_from_the_trace(shared_data):
    path = str(shared_data / "traces/azure_llm_2023_conv.csv")
    t = table(
        **{
            "workload.n_requests": 2000,
            "workload.input_tokens": {"dist": "empirical", "path": path, "column": "input_tokens"},
        }
    )
    src = set(pd.read_csv(path).input_tokens)
    assert set(t.n_input_tokens) <= src


@pytest.mark.parametrize(
    "name,rows",
    [
        ("azure_llm_2023_conv.csv", 19366),
        ("azure_llm_2023_code.csv", 8819),
        ("mooncake_fast25_conversation.csv", 12031),
    ],
)
def test_shared_traces_load(shared_data, name, rows):
    t = table_from_frame(read_trace_frame(shared_data / "traces" / name), where=name)
    assert len(t) == rows
    assert t.n_input_tokens.dtype == np.int64 and (np.diff(t.arrival_s) >= 0).all()


def test_parquet_trace_and_time_scale(tmp_path):
    df = pd.DataFrame({"arrival_time_s": [0.0, 1.0, 2.0], "input_tokens": [5, 6, 7], "output_tokens": [1, 2, 3]})
    df.to_parquet(tmp_path / "t.parquet")
    t = table_from_frame(read_trace_frame(tmp_path / "t.parquet"), where="t", time_scale=0.5)
    assert t.arrival_s.tolist() == [0.0, 0.5, 1.0]
