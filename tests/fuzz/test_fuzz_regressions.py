"""Regression tests, one per defect the fuzzing harness found (plain tests, no hypothesis)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import make_experiment

import greensim
from greensim.base.errors import ConfigError
from greensim.experiment.load import to_experiment
from greensim.experiment.workload import LognormalLength
from greensim.workloads.synthetic import sample_lengths


def tiny(**updates):
    base = {"workload.n_requests": 6, "performance.uncertainty": "none"}
    return make_experiment(**{**base, **updates})


@pytest.mark.parametrize(
    "key", ["cluster.instances.0.max_batched_tokens", "workload.rate_rps", "slo.ttft_s", "carbon.pue"]
)
def test_yes_no_value_for_a_number_is_an_error(key):
    """pydantic read `true` as 1 (max_batched_tokens: true ran with a 1-token budget)."""
    with pytest.raises(
        ConfigError, match=key.replace(".", r"\.") + r": Input should be a valid (number|integer).*'true'"
    ):
        to_experiment(tiny(**{key: True}))


def test_yes_no_value_for_an_optional_number_is_an_error():
    with pytest.raises(ConfigError, match=r"power_cap_frac: Input should be a valid number.*'false'"):
        to_experiment(tiny(**{"cluster.instances.0.power_cap_frac": False}))


def test_yes_no_fields_still_take_yes_no():
    exp = to_experiment(tiny(**{"cluster.instances.0.chunked_prefill": True}))
    assert exp.cluster.instances[0].chunked_prefill is True


@pytest.mark.parametrize("rate", [1e-300, 5e-324])
def test_a_rate_so_low_that_arrivals_pass_32_years_is_an_error(rate):
    """rate_rps 1e-300 ran to t = 1e300 s (numpy overflow in the carbon accounting)."""
    with pytest.raises(ConfigError, match=r"workload.rate_rps: the requests arrive until t = .* beyond 1e\+09 s"):
        greensim.run(tiny(**{"workload.rate_rps": rate}), write=False)


def test_a_stretched_trace_time_scale_is_an_error(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("arrival_time_s,input_tokens,output_tokens\n0,10,5\n100,10,5\n")
    wl = {"kind": "trace", "path": str(p), "time_scale": 1e300}
    with pytest.raises(ConfigError, match=r"workload.time_scale: the requests arrive until t = 1e\+302 s"):
        greensim.run(tiny(workload=wl), write=False)


@pytest.mark.parametrize("field, value", [("sigma", 1e300), ("median", 1e300)])
def test_lognormal_with_huge_parameters_clips_without_overflow(field, value):
    """A huge sigma or median overflowed numpy's exp (inf, then clipped): now no warning, same clip."""
    d = {"dist": "lognormal", "median": 100.0, "sigma": 1.0, "min": 2, "max": 50, field: value}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        x = sample_lengths(LognormalLength(**d), 1000, np.random.default_rng(0), "w")
    assert set(np.unique(x)) <= {2, 50} if field == "sigma" else set(np.unique(x)) == {50}


def _trace(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_repeat_until_far_future_is_an_error_not_a_memory_error(tmp_path):
    """repeat_until_s 1e12 with a 0.2 s window tried to allocate 36 TiB (MemoryError)."""
    p = _trace(tmp_path, "arrival_time_s,input_tokens,output_tokens\n0,1,1\n")
    wl = {"kind": "trace", "path": str(p), "window_end_s": 0.2, "repeat_until_s": 1e12}
    with pytest.raises(ConfigError, match=r"workload.repeat_until_s: 1e\+12 s tiles the trace .* Lower it"):
        greensim.run(tiny(workload=wl), write=False)


def _stats(*args):
    from click.testing import CliRunner

    from greensim.cli import main

    return CliRunner().invoke(main, ["trace", "stats", *map(str, args), "--no-plot", "--json"])


def test_trace_stats_every_row_dropped_is_a_clear_error(tmp_path):
    """--drop-invalid on a trace whose rows are all invalid ended in an IndexError."""
    p = _trace(tmp_path, "arrival_time_s,input_tokens,output_tokens\n,1,1\n-3,2,2\n")
    res = _stats(p, "--drop-invalid")
    assert res.exit_code == 2, res.output
    assert "no requests to summarise: every row was invalid and dropped" in res.stderr
    assert "t.csv" in res.stderr


def test_trace_stats_header_only_is_a_clear_error(tmp_path):
    res = _stats(_trace(tmp_path, "arrival_time_s,input_tokens,output_tokens\n"))
    assert res.exit_code == 2 and "no rows" in res.stderr, res.output


def test_trace_stats_json_writes_undefined_values_as_null(tmp_path):
    """One request has no correlation: --json printed NaN, which is not JSON."""
    import json

    res = _stats(_trace(tmp_path, "arrival_time_s,input_tokens,output_tokens\n0,5,7\n"))
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert s["spearman_input_output"] is None and s["input_tokens_max"] == 5.0


def test_trace_stats_json_of_a_rate_profile(tmp_path):
    """--json on a ServeGen rate profile passed a DataFrame to json.dumps (TypeError)."""
    import json

    text = "model,window_start_s,total_rate_rps,window_len_s\nm-x,0,2.0,600\nm-x,600,4.0,600\n"
    res = _stats(_trace(tmp_path, text, "profile.csv"), "--format", "servegen")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert rows[0]["model"] == "m-x" and rows[0]["mean_rps"] == pytest.approx(3.0)


def _series_exp(path, **intensity):
    return tiny(
        **{
            "carbon.intensity": {
                "kind": "series",
                "region": "ZZ",
                "path": str(path),
                "start": "2023-01-01T00:00",
                **intensity,
            },
            "model": "Llama-3.1-8B",
        }
    )


def _series(path, values):
    rows = [f"2023-01-01T{h:02d}:00:00Z,ZZ,{v}" for h, v in enumerate(values)]
    path.write_text("timestamp_utc,region,gco2_per_kwh\n" + "\n".join(rows) + "\n")
    return path


def test_series_intensity_above_physical_range_is_an_error(tmp_path):
    """A 1e300 gCO2e/kWh hour ran and reported 1e295 gCO2e."""
    p = _series(tmp_path / "s.csv", [200, 1e300, 220])
    with pytest.raises(ConfigError, match=r"intensity of 1e\+300 gCO2e/kWh at 2023-01-01T01:00:00\+00:00, above 5000"):
        greensim.run(_series_exp(p), write=False)


@pytest.mark.parametrize(
    "intensity",
    [
        {"kind": "constant", "gco2_per_kwh": 1e300},
        {"kind": "diurnal", "mean_gco2_per_kwh": 4000, "amplitude_frac": 0.5, "peak_hour": 12},
    ],
)
def test_constant_or_diurnal_intensity_above_physical_range_is_an_error(intensity):
    with pytest.raises(ConfigError, match="carbon.intensity.*gco2_per_kwh: Input should be less than or equal"):
        to_experiment(tiny(**{"carbon.intensity": intensity}))


def test_an_edited_series_file_is_read_again(tmp_path):
    """The series cache was keyed by path only: a file edited between runs kept its old values."""
    p = _series(tmp_path / "s.csv", [100, 100, 100])
    a = greensim.run(_series_exp(p), write=False).summary["intensity_mean_gco2_per_kwh"]
    import os

    _series(p, [300, 300, 300, 300])
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later modification time, whatever the clock
    b = greensim.run(_series_exp(p), write=False).summary["intensity_mean_gco2_per_kwh"]
    assert (a, b) == (pytest.approx(100.0), pytest.approx(300.0))


# ---------------------------------------------------------------- the model's context length
def test_catalogue_knows_each_models_context_from_config_json():
    from greensim.hardware.catalog import load_catalog

    cat = load_catalog()
    assert cat.model("Llama-2-7B").max_context_tokens == 4096
    assert cat.model("Llama-3.1-8B").max_context_tokens == 131072
    assert cat.model("OPT-125M").max_context_tokens == 2048
    assert all(m.max_context_tokens > 0 for m in cat.models.values())
    assert all("max_position_embeddings" in cat.raw["model"][n]["max_context_tokens_source"] for n in cat.models)


def _ctx_trace(tmp_path, drop):
    p = _trace(tmp_path, "arrival_time_s,input_tokens,output_tokens\n0,100,10\n0.1,4000,200\n0.2,50,5\n")
    return tiny(workload={"kind": "trace", "path": str(p), "drop_invalid": drop})


def test_trace_requests_beyond_the_context_are_dropped_with_drop_invalid(tmp_path):
    """A 4000 + 200 token request ran on Llama-2-7B (4096 tokens of context) without a note."""
    res = greensim.run(_ctx_trace(tmp_path, True), write=False)
    assert res.summary["n_requests"] == 2
    assert list(res.requests["n_input_tokens"]) == [100, 50]


def test_trace_requests_beyond_the_context_are_kept_with_a_warning(tmp_path, caplog):
    from greensim.assembly.prepare import prepare

    with caplog.at_level("WARNING", logger="greensim.assembly.prepare"):
        p = prepare(to_experiment(_ctx_trace(tmp_path, False)))
    assert len(p.table) == 3
    msg = "1 of 3 request(s) need more than Llama-2-7B's context of 4096 tokens"
    assert any(msg in n for n in p.table.notes) and msg in caplog.text
    assert "request 1: 4000 input + 200 output tokens" in caplog.text and "drop_invalid: true" in caplog.text


def test_every_request_beyond_the_context_is_an_error():
    exp = tiny(
        **{
            "workload.input_tokens": {"dist": "constant", "value": 4000},
            "workload.output_tokens": {"dist": "constant", "value": 200},
        }
    )
    with pytest.raises(greensim.GreensimError, match="every request is longer than the model's context"):
        greensim.run(exp, write=False)


def test_a_billion_instances_is_an_error_not_a_hang():
    """cluster.instances[*].count had no upper bound: a scaled count of 1e9 built instances until
    memory ran out (a GREENSIM_FUZZ_EXAMPLES=150 hang)."""
    exp = make_experiment()
    exp["cluster"]["instances"][0]["count"] = 10**9
    with pytest.raises(ConfigError, match=r"cluster\.instances\.0\.count"):
        to_experiment(exp)
