"""CLI: run and validate, including bad inputs (clear one-paragraph errors, exit 2)."""

import json

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from conftest import make_experiment

from greensim.cli import main


def write(tmp_path, d, name="exp.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(d) if not isinstance(d, str) else d)
    return p


def invoke(*args):
    res = CliRunner().invoke(main, list(map(str, args)))
    return res


def test_run_writes_complete_results_folder(tmp_path):
    p = write(tmp_path, make_experiment(**{"output.plots": True}))
    res = invoke("run", p, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "SLO attainment" in res.output and "carbon per request" in res.output
    folders = list((tmp_path / "out" / "t").iterdir())
    assert len(folders) == 1
    f = folders[0]
    for name in [
        "experiment.yaml",
        "requests.parquet",
        "instances.parquet",
        "timeline.parquet",
        "summary.json",
        "manifest.json",
        "latency_cdf.png",
        "carbon_breakdown.png",
        "timeline.png",
    ]:
        assert (f / name).is_file(), name
    s = json.loads((f / "summary.json").read_text())
    assert s["n_requests"] == 200 == len(pd.read_parquet(f / "requests.parquet"))


def test_run_default_is_the_bundled_quickstart(tmp_path):
    res = invoke("run", "--out", tmp_path, "--no-plots", "--set", "workload.n_requests=50")
    assert res.exit_code == 0, res.output
    assert "quickstart" in res.output


def test_same_seed_same_numbers_through_cli(tmp_path):
    p = write(tmp_path, make_experiment())
    invoke("run", p, "--out", tmp_path / "a")
    invoke("run", p, "--out", tmp_path / "b")
    a = next((tmp_path / "a" / "t").iterdir())
    b = next((tmp_path / "b" / "t").iterdir())
    pd.testing.assert_frame_equal(pd.read_parquet(a / "requests.parquet"), pd.read_parquet(b / "requests.parquet"))


def test_crash_while_writing_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    import greensim.results.writer as w

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(w, "write_text", boom)
    p = write(tmp_path, make_experiment())
    with pytest.raises(RuntimeError):
        CliRunner().invoke(main, ["run", str(p), "--out", str(tmp_path / "out")], catch_exceptions=False)
    out = tmp_path / "out" / "t"
    assert not out.exists() or list(out.iterdir()) == []


def test_validate_ok(tmp_path):
    res = invoke("validate", write(tmp_path, make_experiment()))
    assert res.exit_code == 0 and "OK" in res.output


def test_schema_exports_json_schema(tmp_path):
    res = invoke("schema", "--out", tmp_path / "s.json")
    assert res.exit_code == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert "workload" in s["properties"] and "cluster" in s["properties"]


BAD = [
    ("malformed yaml", "name: t\nmodel: [unclosed\n", r"malformed YAML at line \d+"),
    ("empty file", "", "file is empty"),
    (
        "unknown gpu",
        {"cluster.instances": [{"gpu": "A100-8OGB"}]},
        r"unknown gpu 'A100-8OGB'.*known:.*Did you mean 'A100-80GB'",
    ),
    ("unknown model", {"model": "Llama-9-7B"}, r"model: unknown model 'Llama-9-7B'"),
    ("model does not fit", {"model": "Llama-2-70B"}, r"does not fit.*Raise tp"),
    ("negative rate", {"workload.rate_rps": -1}, r"workload\.rate_rps: Input should be greater than 0 \(got -1\)"),
    ("zero SLO", {"slo.ttft_s": 0}, r"slo\.ttft_s: Input should be greater than 0"),
    (
        "unknown key",
        {"cluster.instances": [{"gpu": "A100-80GB", "max_batch_sise": 8}]},
        r"cluster\.instances\.0\.max_batch_sise: unknown key\. Did you mean 'max_batch_size'\?",
    ),
    ("unknown top key", {"workloads": 1}, r"workloads: unknown key\. Did you mean 'workload'\?"),
    (
        "unknown router",
        {"cluster.router": "random"},
        r"cluster\.router: unknown router 'random' \(valid: carbon_aware, class_affinity, greenllm, join_shortest_queue, least_kv, power_of_two, prefix_affinity, round_robin\)",
    ),
    ("unknown workload kind", {"workload": {"kind": "gamma"}}, r"workload.*'poisson', 'trace'"),
    ("missing field", {"slo": {"ttft_s": 1}}, r"slo\.tpot_s: required field is missing"),
    ("infinite rate", {"workload.rate_rps": float("inf")}, r"workload\.rate_rps: Input should be a finite number"),
    ("NaN SLO", {"slo.ttft_s": float("nan")}, r"slo\.ttft_s: Input should be a finite number"),
    (
        "request count too large",
        {"workload.n_requests": 10**30},
        r"workload\.n_requests: Input should be less than or equal to 100000000",
    ),
    (
        "speculative gamma 0",
        {
            "cluster.instances": [
                {"gpu": "A100-80GB", "speculative": {"draft_model": "Llama-2-7B", "alpha": 0.5, "gamma": 0}}
            ]
        },
        r"cluster\.instances\.0\.speculative\.gamma: Input should be greater than or equal to 1",
    ),
    (
        "embodied override for unknown gpu",
        {"carbon.gpu_embodied_kgco2e": {"Z100": 100.0}},
        r"carbon\.gpu_embodied_kgco2e.*unknown gpu 'Z100'",
    ),
    (
        "invisible character in key",
        {"slo": {"ttft_s": 1, "tpot_s": 0.1, "ttft\u200b_s": 2}},
        r"slo\.ttft\\u200b_s: unknown key\. The key contains invisible character\(s\) U\+200B",
    ),
    (
        "duplicate key",
        "name: t\nmodel: Llama-2-7B\nslo:\n  ttft_s: 1\n  tpot_s: 0.1\n  ttft_s: 2\n",
        r"duplicate key 'ttft_s' at line 6 \(already set at line 4\).*Remove one",
    ),
]


@pytest.mark.parametrize("label,bad,pattern", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("cmd", ["run", "validate"])
def test_bad_experiment_clear_error_exit_2(tmp_path, cmd, label, bad, pattern):
    d = bad if isinstance(bad, str) else make_experiment(**bad)
    res = invoke(cmd, write(tmp_path, d), "--out", tmp_path / "o") if cmd == "run" else invoke(cmd, write(tmp_path, d))
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    import re

    assert re.search(pattern, res.output, re.S), res.output
    assert not (tmp_path / "o").exists()


def test_every_request_rejected_stops_with_the_reason(tmp_path):
    p = write(tmp_path, make_experiment(**{"cluster.instances": [{"gpu": "A100-80GB", "max_batched_tokens": 8}]}))
    res = invoke("run", p, "--out", tmp_path / "o")
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "nan" not in res.output
    assert "every one of the 200 requests was rejected" in res.output
    assert "max_batched_tokens 8" in res.output and "chunked_prefill" in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("where", ["below a file", "read-only"])
def test_unwritable_output_folder_exits_2_before_simulating(tmp_path, monkeypatch, where):
    import os

    import greensim.api.run as api_run

    def no_sim(*a, **k):
        raise AssertionError("simulated although the results could not be written")

    monkeypatch.setattr(api_run, "prepare", no_sim)
    p = write(tmp_path, make_experiment())
    if where == "below a file":
        (tmp_path / "f").write_text("x")
        out, pattern = tmp_path / "f" / "sub", r"f is a file, not a folder"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        if os.geteuid() == 0:  # root can write anywhere: pretend it cannot write here
            real = os.access
            monkeypatch.setattr(os, "access", lambda q, m, **k: str(q) != str(ro) and real(q, m, **k))
        out, pattern = ro / "sub", r"ro is not writable"
    res = invoke("run", p, "--out", out)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    import re

    assert re.search(pattern + r".*--out DIR", res.output, re.S), res.output


@pytest.mark.parametrize("cmd", ["run", "validate"])
def test_binary_or_folder_experiment_file_exits_2(tmp_path, cmd):
    b = tmp_path / "exp.yaml"
    b.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 10)
    for path, pattern in ((b, r"not a UTF-8 text file.*binary"), (tmp_path, r"is a (folder|directory)")):
        res = invoke(cmd, path)
        assert res.exit_code == 2, res.output
        assert "Traceback" not in res.output
        import re

        assert re.search(pattern, res.output, re.S), res.output


def _trace(tmp_path, text):
    (tmp_path / "trace.csv").write_text(text)
    return make_experiment(**{"workload": {"kind": "trace", "path": "trace.csv"}})


TRACE_BAD = [
    ("missing column", "arrival_time_s,input_tokens\n0,10\n", r"missing column\(s\) output_tokens"),
    ("negative", "arrival_time_s,input_tokens,output_tokens\n0,10,5\n1,-3,5\n", r"'input_tokens' is negative at row 1"),
    ("NaN", "arrival_time_s,input_tokens,output_tokens\n0,10,5\n1,,5\n", r"'input_tokens' has NaN/inf at row 1"),
    (
        "unsorted",
        "arrival_time_s,input_tokens,output_tokens\n0,10,5\n3,10,5\n2,10,5\n",
        r"not sorted \(row 2 arrives before row 1\)",
    ),
    ("text", "arrival_time_s,input_tokens,output_tokens\n0,ten,5\n", r"non-numeric value 'ten' at row 0"),
    ("zero output", "arrival_time_s,input_tokens,output_tokens\n0,10,0\n", r"'output_tokens' is 0 at row 0"),
    ("no file", None, r"trace file .* not found"),
    ("header only", "arrival_time_s,input_tokens,output_tokens\n", r"the trace has no rows \(a header only\?\)"),
    ("no header", "0,10,5\n1,10,5\n", r"none of the expected columns.*is the header row missing\?"),
    (
        "semicolons",
        "arrival_time_s;input_tokens;output_tokens\n0;10;5\n",
        r"none of the expected columns.*separated by ';'.*comma-separated",
    ),
    (
        "trillion-token prompt",
        "arrival_time_s,input_tokens,output_tokens\n0,10,5\n1,1000000000000,5\n",
        r"'input_tokens' is above 1e8 tokens .* at row 1",
    ),
    (
        "arrival 1e300",
        "arrival_time_s,input_tokens,output_tokens\n0,10,5\n1e300,10,5\n",
        r"'arrival_time_s' is above 1e9 s .* at row 1.*time_unit",
    ),
    ("folder", "FOLDER", r"'.*trace\.csv' is a folder, not a trace file"),
]


@pytest.mark.parametrize("label,text,pattern", TRACE_BAD, ids=[t[0] for t in TRACE_BAD])
def test_bad_trace_clear_error(tmp_path, label, text, pattern):
    if text == "FOLDER":
        (tmp_path / "trace.csv").mkdir()
    d = (
        make_experiment(**{"workload": {"kind": "trace", "path": "trace.csv"}})
        if text == "FOLDER"
        else _trace(tmp_path, text)
        if text is not None
        else make_experiment(**{"workload": {"kind": "trace", "path": "nope.csv"}})
    )
    for cmd in (["run", write(tmp_path, d), "--out", tmp_path / "o"], ["validate", write(tmp_path, d)]):
        res = invoke(*cmd)
        assert res.exit_code == 2, res.output
        import re

        assert re.search(pattern, res.output), res.output
        assert "Traceback" not in res.output


_CI_HEAD = "timestamp_utc,region,gco2_per_kwh\n"
_CI_OK = "".join(f"2024-01-01T{h:02d}:00:00Z,X,300\n" for h in range(2, 24))
SERIES_BAD = [
    (
        "text value",
        _CI_HEAD + "2024-01-01T00:00:00Z,X,300\n2024-01-01T01:00:00Z,X,abc\n" + _CI_OK,
        r"ci\.csv' line 3: column 'gco2_per_kwh' has a non-numeric value 'abc'",
    ),
    (
        "bad timestamp",
        _CI_HEAD + "2024-01-01T00:00:00Z,X,300\nnotatime,X,310\n" + _CI_OK,
        r"ci\.csv' line 3: timestamp_utc 'notatime' is not an ISO 8601 time.*2023-06-01T08:00:00Z",
    ),
    ("empty", _CI_HEAD, r"ci\.csv' has a header but no rows"),
]


@pytest.mark.parametrize("label,text,pattern", SERIES_BAD, ids=[t[0] for t in SERIES_BAD])
def test_bad_carbon_series_clear_error(tmp_path, label, text, pattern):
    (tmp_path / "ci.csv").write_text(text)
    ci = {"kind": "series", "path": "ci.csv", "region": "X", "start": "2024-01-01T00:00"}
    d = make_experiment(**{"carbon.intensity": ci})
    for cmd in (["run", write(tmp_path, d), "--out", tmp_path / "o"], ["validate", write(tmp_path, d)]):
        res = invoke(*cmd)
        assert res.exit_code == 2, res.output
        import re

        assert re.search(pattern, res.output, re.S), res.output
        assert "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_trace_replay_of_shared_azure_trace(tmp_path, shared_data):
    d = make_experiment(
        **{
            "workload": {
                "kind": "trace",
                "path": str(shared_data / "traces/azure_llm_2023_code.csv"),
                "max_requests": 300,
            }
        }
    )
    res = invoke("run", write(tmp_path, d), "--out", tmp_path / "o", "--no-plots")
    assert res.exit_code == 0, res.output
    f = next((tmp_path / "o" / "t").iterdir())
    r = pd.read_parquet(f / "requests.parquet")
    src = pd.read_csv(shared_data / "traces/azure_llm_2023_code.csv", nrows=300)
    assert (r.n_input_tokens.to_numpy() == src.input_tokens.to_numpy()).all()
    assert (r.arrival_s.to_numpy() == src.arrival_time_s.to_numpy()).all()


def test_profile_without_torch_exits_2_with_the_fix(monkeypatch):
    import sys

    from click.testing import CliRunner

    from greensim.cli import main

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    r = CliRunner().invoke(main, ["profile", "Llama-3.1-8B", "--device", "cpu"])
    assert r.exit_code == 2
    assert "pip install 'greensim[profile]'" in r.output


def test_profile_unknown_model_exits_2_naming_close_matches():
    from click.testing import CliRunner

    from greensim.cli import main

    r = CliRunner().invoke(main, ["profile", "Llama-3.1-8", "--device", "cpu"])
    assert r.exit_code == 2 and "Did you mean 'Llama-3.1-8B'" in r.output


def test_workload_notes_reach_the_manifest(tmp_path, shared_data):
    """Rows a trace option drops are reported in manifest.json, not only in the log."""
    d = make_experiment(
        **{
            "workload": {
                "kind": "trace",
                "path": str(shared_data / "traces/azure_llm_2023_code.csv"),
                "max_requests": 50,
            }
        }
    )
    res = invoke("run", write(tmp_path, d), "--out", tmp_path / "o", "--no-plots")
    assert res.exit_code == 0, res.output
    f = next((tmp_path / "o" / "t").iterdir())
    notes = json.loads((f / "manifest.json").read_text())["workload_notes"]
    assert any("max_requests: kept the first 50" in n for n in notes), notes


def test_run_prints_uncertainty_bands(tmp_path):
    """greensim run shows [low, high] after the headline numbers, and says what they are."""
    p = write(tmp_path, make_experiment(**{"workload.n_requests": 60}))
    res = invoke("run", p, "--out", tmp_path / "out", "--no-plots")
    assert res.exit_code == 0, res.output
    ttft = next(line for line in res.output.splitlines() if "TTFT p50 / p90 / p99" in line)
    assert ttft.count("[") == 3 and ttft.endswith(" s")
    assert "[low, high]: min and max over the nominal run" in res.output and "A100-80GB latency +/-" in res.output
    off = invoke("run", p, "--out", tmp_path / "out", "--no-plots", "--set", "performance.uncertainty=none")
    assert off.exit_code == 0, off.output
    assert "[" not in next(line for line in off.output.splitlines() if "TTFT p50 / p90 / p99" in line)
    assert "no uncertainty bands: performance.uncertainty: none" in off.output


@pytest.mark.parametrize("cmd", ["sweep", "plan", "replan"])
def test_sweep_plan_replan_check_the_output_folder_before_running(tmp_path, monkeypatch, cmd):
    """As greensim run: an output folder below a regular file is reported before any simulation."""
    from pathlib import Path

    import greensim.api.sweep as api_sweep
    import greensim.planning.search as search

    def no_work(*a, **k):
        raise AssertionError("ran although the results could not be written")

    monkeypatch.setattr(api_sweep, "sweep", no_work)
    monkeypatch.setattr(search, "_plan", no_work)
    import sys

    import greensim.assembly.prepare  # noqa: F401 - the module (the package exports a same-named function)

    monkeypatch.setattr(sys.modules["greensim.assembly.prepare"], "prepare", no_work)  # replan's first step
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" / "sub"
    root = Path(__file__).resolve().parents[2] / "experiments"
    if cmd == "sweep":
        grid = tmp_path / "grid.yaml"
        grid.write_text(yaml.safe_dump({"grid": {"workload.rate_rps": [2.0, 8.0]}}))
        args = ["sweep", write(tmp_path, make_experiment()), "--grid", grid]
    elif cmd == "plan":
        args = ["plan", root / "plans" / "chat_a100_v100.yaml"]
    else:
        args = ["replan", root / "online_replan.yaml"]
    res = invoke(*args, "--out", out)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "f is a file, not a folder" in res.output and "--out DIR" in res.output, res.output


def test_run_prints_failures_and_their_cost_when_gpus_fail(tmp_path):
    """The console summary gains the failure rows only when the run had failures."""
    from pathlib import Path

    ex = Path(__file__).resolve().parents[2] / "experiments" / "aging_failures_dpd.yaml"
    args = ["run", str(ex), "--out", str(tmp_path), "--no-plots", "--set", "workload.n_requests=300"]
    args += ["--set", "performance.uncertainty=none"]
    out = CliRunner().invoke(main, args).output
    assert "GPU failures (down time)" in out and "restarted requests, lost work" in out
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert f"{summary['n_failures']} (" in out and summary["n_failures"] > 0
    out = CliRunner().invoke(main, args + ["--set", "cluster.instances.1.aging=null"]).output
    assert "GPU failures" not in out and "results:" in out


def test_run_prints_the_prefix_cache_hit_rate_only_with_a_cache(tmp_path):
    from pathlib import Path

    ex = Path(__file__).resolve().parents[2] / "experiments" / "prefix_chat.yaml"
    args = ["run", str(ex), "--out", str(tmp_path), "--no-plots", "--set", "performance.uncertainty=none"]
    out = CliRunner().invoke(main, args + ["--set", "workload.n_requests=200"]).output
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert f"prefix cache hits (tokens / requests)  {summary['prefix_hit_tokens_frac']:.1%}" in out
    out = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "q"), "--no-plots"]).output
    assert "prefix cache" not in out and "results:" in out
