"""Fuzzing: mutated request traces (CSV) through greensim.run, validate and `greensim trace stats`.

A valid trace of a few sorted rows is damaged: a column dropped, renamed or added, the header
removed, another delimiter, cells replaced by text, empty, NaN, inf, negative, fractional or
huge numbers, rows shuffled or duplicated, the file emptied or replaced by binary bytes. The
experiment replaying it may set drop_invalid, a window, length filters, scaling or tiling.
See fuzzlib for the contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import yaml
from fuzzlib import FUZZ, api_outcome, check_summary, cli_outcome
from hypothesis import given
from hypothesis import strategies as st

import greensim
from greensim.api.validate import validate_experiment

COLUMNS = ["arrival_time_s", "input_tokens", "output_tokens"]
CELLS = [
    "",
    "text",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "-1",
    "0",
    "0.5",
    "1e300",
    "1e9",
    "99999999999",
    "1e-300",
    " 7 ",
    '"5"',
]
DELIMS = [",", ";", "\t", "|", " "]


@st.composite
def trace_rows(draw) -> List[List[str]]:
    n = draw(st.integers(1, 8))
    t = 0.0
    rows = []
    for _ in range(n):
        t += draw(st.sampled_from([0.0, 0.01, 0.1, 0.5]))
        rows.append([f"{t:g}", str(draw(st.integers(1, 3000))), str(draw(st.integers(1, 300)))])
    return rows


@st.composite
def mutated_trace(draw) -> Tuple[bytes, List[str]]:
    """(file bytes, locators the error may name)."""
    header = list(COLUMNS)
    rows = draw(trace_rows())
    delim = ","
    has_header = True
    locs = ["row", "line", "column", "arrival_time_s", "input_tokens", "output_tokens"]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "cell",
                    "cell",
                    "cell",
                    "drop_col",
                    "rename_col",
                    "extra_col",
                    "no_header",
                    "delim",
                    "shuffle",
                    "dup_row",
                ]
            )
        )
        if kind == "cell" and rows:
            i, j = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(header) - 1))
            rows[i][j] = draw(st.sampled_from(CELLS))
        elif kind == "drop_col" and len(header) > 1:
            j = draw(st.integers(0, len(header) - 1))
            del header[j]
            rows = [r[:j] + r[j + 1 :] for r in rows]
        elif kind == "rename_col":
            j = draw(st.integers(0, len(header) - 1))
            header[j] = draw(st.sampled_from(["ts", "Input_Tokens", "prompt_len", "", "arrival_time_s "]))
        elif kind == "extra_col":
            header.append(draw(st.sampled_from(["model", "slo_class", "arrival_time_s", "x"])))
            rows = [r + [draw(st.sampled_from(["a", "1", ""]))] for r in rows]
        elif kind == "no_header":
            has_header = False
        elif kind == "delim":
            delim = draw(st.sampled_from(DELIMS))
        elif kind == "shuffle":
            rows = draw(st.permutations(rows))
        elif kind == "dup_row" and rows:
            rows = rows + [list(rows[0])]
    lines = ([delim.join(header)] if has_header else []) + [delim.join(r) for r in rows]
    text = "\n".join(lines) + "\n"
    whole = draw(st.sampled_from(["keep"] * 12 + ["empty", "header_only", "binary", "bom", "crlf", "latin1"]))
    if whole == "empty":
        data = b""
    elif whole == "header_only":
        data = (delim.join(header) + "\n").encode()
    elif whole == "binary":
        data = draw(st.binary(min_size=1, max_size=64)) + b"\xff\xfe\x00\x81"
    elif whole == "bom":
        data = b"\xef\xbb\xbf" + text.encode()
    elif whole == "crlf":
        data = text.replace("\n", "\r\n").encode()
    elif whole == "latin1":
        data = text.replace("text", "caf\xe9").encode("latin-1") + b"caf\xe9\n"
    else:
        data = text.encode()
    return data, locs


@st.composite
def trace_options(draw) -> Dict:
    """Experiment options of a trace workload (most examples use none)."""
    opts: Dict = {}
    for key, values in (
        ("drop_invalid", [True, False]),
        ("window_start_s", [0.0, 0.05, 1e9]),
        ("window_end_s", [0.2, 1e300]),
        ("max_total_tokens", [2, 500, 10**12]),
        ("min_input_tokens", [0, 10**9]),
        ("rate_scale", [1e-300, 0.5, 1e300]),
        ("repeat_until_s", [1.0, 1e12]),
        ("max_requests", [1, 3]),
        ("arrivals", [{"process": "poisson", "rate_rps": 5.0}, {"process": "gamma", "rate_rps": 1e-300, "cv": 2}]),
    ):
        if draw(st.integers(0, 5)) == 0:
            opts[key] = draw(st.sampled_from(values))
    return opts


def experiment(trace: Path, opts: Dict) -> dict:
    return {
        "name": "fuzz_trace",
        "seed": 3,
        "model": "Llama-3.1-8B",
        "workload": {"kind": "trace", "path": str(trace), **opts},
        "cluster": {"router": "round_robin", "instances": [{"gpu": "A100-80GB", "max_batched_tokens": 16384}]},
        "slo": {"ttft_s": 1.0, "tpot_s": 0.1},
        "performance": {"uncertainty": "none"},
        "simulation": {"progress": False},
        "output": {"plots": False},
    }


@FUZZ
@given(case=mutated_trace(), opts=trace_options())
def test_fuzz_trace_replay(case, opts, tmp_path_factory):
    """A damaged trace replayed by greensim.run and checked by validate: a finite result or a clear error."""
    data, locs = case
    folder = tmp_path_factory.mktemp("trace")
    trace = folder / "fuzzed_trace.csv"
    trace.write_bytes(data)
    exp = folder / "exp.yaml"
    exp.write_text(yaml.safe_dump(experiment(trace, opts)))
    locs = locs + [trace.name, "workload"] + [f"workload.{k}" for k in opts]
    res = api_outcome(lambda: greensim.run(str(exp), write=False), locs)
    if res != "error":
        check_summary(res.summary, res.requests)
    api_outcome(lambda: validate_experiment(exp), locs)


@FUZZ
@given(case=mutated_trace(), drop=st.booleans())
def test_fuzz_trace_stats_cli(case, drop, tmp_path_factory):
    """`greensim trace stats FILE`: exit 0 with finite statistics, or exit 2 with a clear message."""
    import json
    import math

    data, locs = case
    folder = tmp_path_factory.mktemp("stats")
    trace = folder / "fuzzed_trace.csv"
    trace.write_bytes(data)
    res = cli_outcome(
        ["trace", "stats", trace, "--no-plot", "--json"] + (["--drop-invalid"] if drop else []), locs + [trace.name]
    )
    if res is not None:

        def no_nan(c):
            raise AssertionError(f"--json printed {c}, which is not JSON")

        stats = json.loads(res.stdout, parse_constant=no_nan)
        from fuzzlib import walk_numbers

        bad = [(p, v) for p, v in walk_numbers(stats) if not math.isfinite(v) or (v < 0 and "spearman" not in p)]
        assert not bad, bad
