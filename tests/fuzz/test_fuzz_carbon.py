"""Fuzzing: mutated carbon-intensity series (CSV) through greensim.run, validate and the CLI.

A valid hourly series of one region is damaged: rows removed (gaps), values replaced by text,
empty, NaN, inf, negative or huge numbers, timestamps replaced by unparsable text, naive times,
other time-zone offsets or duplicates, rows shuffled, columns dropped, the file emptied or
replaced by binary bytes; the experiment's start, timezone, region and gap_fill vary too.
See fuzzlib for the contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pandas as pd
import yaml
from fuzzlib import FUZZ, api_outcome, check_summary, cli_outcome
from hypothesis import given
from hypothesis import strategies as st

import greensim
from greensim.api.validate import validate_experiment

REGION = "ZZ-FUZZ"
HOURS = 6
VALUES = ["", "text", "nan", "inf", "-inf", "-5", "0", "1e300", "1e-300", "12,5", " 100 "]
STAMPS = [
    "",
    "yesterday",
    "2023-13-01T00:00:00Z",
    "2023-01-01T25:00:00Z",
    "2023-01-01T02:00:00",
    "2023-01-01T02:00:00+05:00",
    "2023-01-01T02:00:00-08:00",
    "2023-01-01T02:30:00Z",
    "2023-01-01T00:00:00Z",
    "1e9",
    "0",
]
STARTS = ["2023-01-01T01:00", "2023-01-01T01:00:00Z", "2023-01-01T01:00+09:00", "2022-12-31T23:00", "2099-01-01", "x"]
ZONES = ["UTC", "Europe/Paris", "America/Los_Angeles", "Mars/Olympus", "", "UTC+5", "utc"]


@st.composite
def mutated_series(draw) -> Tuple[bytes, dict, List[str]]:
    """(file bytes, carbon.intensity options, locators)."""
    header = ["timestamp_utc", "region", "gco2_per_kwh"]
    t0 = pd.Timestamp("2023-01-01T00:00:00Z")
    rows = [
        [(t0 + pd.Timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ"), REGION, f"{200 + 10 * h:g}"] for h in range(HOURS)
    ]
    opts = {"start": "2023-01-01T01:00", "timezone": "UTC", "region": REGION}
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(
            st.sampled_from(
                ["value", "value", "stamp", "stamp", "gap", "shuffle", "dup", "drop_col", "start", "zone", "region"]
            )
        )
        if kind == "value" and rows and "gco2_per_kwh" in header:
            rows[draw(st.integers(0, len(rows) - 1))][header.index("gco2_per_kwh")] = draw(st.sampled_from(VALUES))
        elif kind == "stamp" and rows and "timestamp_utc" in header:
            rows[draw(st.integers(0, len(rows) - 1))][header.index("timestamp_utc")] = draw(st.sampled_from(STAMPS))
        elif kind == "gap" and rows:
            del rows[draw(st.integers(0, len(rows) - 1))]
        elif kind == "shuffle":
            rows = draw(st.permutations(rows))
        elif kind == "dup" and rows:
            rows.append(list(rows[draw(st.integers(0, len(rows) - 1))]))
        elif kind == "drop_col" and len(header) == 3:
            j = draw(st.integers(0, 2))
            header = header[:j] + header[j + 1 :]
            rows = [r[:j] + r[j + 1 :] for r in rows]
        elif kind == "start":
            opts["start"] = draw(st.sampled_from(STARTS))
        elif kind == "zone":
            opts["timezone"] = draw(st.sampled_from(ZONES))
        elif kind == "region":
            opts["region"] = draw(st.sampled_from(["", "zz-fuzz", "FR", "ZZ-FUZZ ", "\u200bZZ-FUZZ"]))
    opts["gap_fill"] = draw(st.sampled_from(["error", "error", "linear", "ffill"]))
    text = "\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n"
    whole = draw(st.sampled_from(["keep"] * 10 + ["empty", "header_only", "binary"]))
    data = {
        "keep": text.encode(),
        "empty": b"",
        "header_only": (",".join(header) + "\n").encode(),
        "binary": b"\x00\xff\xfe\x81" + draw(st.binary(max_size=32)),
    }[whole]
    locs = ["carbon.intensity", "line", "region", "timestamp", "gco2_per_kwh", "start", "timezone", "gap_fill"]
    return data, opts, locs


def experiment(series: Path, opts: dict) -> dict:
    return {
        "name": "fuzz_carbon",
        "seed": 5,
        "model": "Llama-3.1-8B",
        "workload": {
            "kind": "poisson",
            "rate_rps": 5.0,
            "n_requests": 5,
            "input_tokens": {"dist": "constant", "value": 200},
            "output_tokens": {"dist": "constant", "value": 20},
        },
        "cluster": {"router": "round_robin", "instances": [{"gpu": "A100-80GB"}]},
        "slo": {"ttft_s": 1.0, "tpot_s": 0.1},
        "carbon": {"intensity": {"kind": "series", "path": str(series), **opts}, "pue": 1.1},
        "performance": {"uncertainty": "none"},
        "simulation": {"progress": False},
        "output": {"plots": False},
    }


@FUZZ
@given(case=mutated_series())
def test_fuzz_carbon_series(case, tmp_path_factory):
    """A damaged intensity series through greensim.run, validate and `greensim run`."""
    data, opts, locs = case
    folder = tmp_path_factory.mktemp("carbon")
    series = folder / "fuzzed_carbon.csv"
    series.write_bytes(data)
    exp = folder / "exp.yaml"
    exp.write_text(yaml.safe_dump(experiment(series, opts), allow_unicode=True))
    locs = locs + [series.name]
    res = api_outcome(lambda: greensim.run(str(exp), write=False), locs)
    if res != "error":
        check_summary(res.summary, res.requests)
        assert 0 <= res.summary["intensity_mean_gco2_per_kwh"] < 1e6
    api_outcome(lambda: validate_experiment(exp), locs)
    cli_outcome(["run", exp, "--out", folder / "out", "--no-plots", "-q"], locs)
