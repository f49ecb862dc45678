"""Fuzzing: mutated experiment files through greensim.run, validate and the command line.

Each example starts from a bundled experiment, shrunk to a few requests so that it runs in
milliseconds, and applies one to three mutations: a value replaced by a wrong type or an
out-of-range number (0, negative, NaN, inf, huge, tiny), a key or a whole section removed,
an unknown key added, or a key written twice in the file. See fuzzlib for the contract.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any, List, Tuple

import yaml
from fuzzlib import BAD_VALUES, FUZZ, api_outcome, check_summary, cli_outcome
from hypothesis import given
from hypothesis import strategies as st

import greensim
from greensim.api.validate import validate_experiment

ROOT = Path(__file__).resolve().parents[2]
BASES = ("quickstart.yaml", "dpd_a100_v100.yaml", "dsd_v100_a100.yaml")

Path_ = Tuple[Any, ...]


def tiny(name: str) -> dict:
    """A bundled experiment shrunk to 6 requests, no bands, no plots, no progress bar."""
    d = yaml.safe_load((ROOT / "experiments" / name).read_text())
    d["workload"]["n_requests"] = 6
    d["performance"] = {"uncertainty": "none"}
    d["simulation"] = {"progress": False}
    d["output"] = {"plots": False}
    return d


def nodes(d: Any, path: Path_ = ()) -> List[Path_]:
    """Paths of every node below ``d`` (mapping keys and list items), parents first."""
    out: List[Path_] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append(path + (k,))
            out += nodes(v, path + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out.append(path + (i,))
            out += nodes(v, path + (i,))
    return out


def parent_of(d: Any, path: Path_) -> Any:
    for k in path[:-1]:
        d = d[k]
    return d


SCALES = [0, -1, 1e-9, 1e-3, 0.5, 2, 10, 1e3, 1e9, float("inf"), float("nan")]
UNKNOWN_KEYS = ["colour", "rate", "n_request", "gpus", "rate_rps\u200b", "x" * 40, "1"]


@st.composite
def mutated_experiment(draw) -> Tuple[dict, List[str], List[Tuple[str, str]], str]:
    """(experiment dict, locators the error must name, duplicated keys, base file)."""
    base = draw(st.sampled_from(BASES))
    d = tiny(base)
    locators: List[str] = []
    dups: List[Tuple[str, str]] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["set", "set", "scale", "scale", "delete", "add", "dup"]))
        paths = nodes(d)
        if not paths:
            break
        p = draw(st.sampled_from(paths))
        container = parent_of(d, p)
        named = [str(k) for k in p if isinstance(k, str)][-2:] or [str(p[0])]
        if kind == "set":
            container[p[-1]] = copy.deepcopy(draw(st.sampled_from(BAD_VALUES)))
        elif kind == "scale":  # a number of the right type, far off: keeps more runs going
            old = container[p[-1]]
            if isinstance(old, bool) or not isinstance(old, (int, float)):
                continue
            f = draw(st.sampled_from(SCALES))
            new = old * f
            container[p[-1]] = int(new) if isinstance(old, int) and math.isfinite(new) else new
        elif kind == "delete":
            del container[p[-1]]
        elif kind == "add":
            target = container if isinstance(container, dict) else d
            key = draw(st.sampled_from(UNKNOWN_KEYS))
            target[key] = draw(st.sampled_from(BAD_VALUES[:6]))
            named = [key.replace("\u200b", ""), "unknown", "extra", "not permitted"]
        else:  # a key written twice: done on the YAML text
            if not isinstance(p[-1], str):
                continue
            dups.append((p[-1], yaml.safe_dump(draw(st.sampled_from([1, "x", 2.5])))))
            named = [p[-1], "duplicate"]
        locators += named
    return d, locators, dups, base


def write_yaml(d: dict, dups: List[Tuple[str, str]], path: Path) -> Path:
    text = yaml.safe_dump(d, sort_keys=False, allow_unicode=True)
    lines = text.splitlines()
    for key, _ in dups:  # repeat the first line that sets this key, at the same indentation
        pat = re.compile(rf"^(\s*)(- )?{re.escape(key)}:")
        for i, line in enumerate(lines):
            m = pat.match(line)
            if m:
                indent = m.group(1) + ("  " if m.group(2) else "")
                lines.insert(i + 1, f"{indent}{key}: 1")
                break
    path.write_text("\n".join(lines) + "\n")
    return path


@FUZZ
@given(case=mutated_experiment())
def test_fuzz_experiment_api(case, tmp_path_factory):
    """greensim.run and validate on a mutated experiment file: a finite result or a clear error."""
    d, locators, dups, base = case
    folder = tmp_path_factory.mktemp("exp")
    path = write_yaml(d, dups, folder / "fuzzed.yaml")
    locs = locators + [path.name]
    res = api_outcome(lambda: greensim.run(str(path), write=False), locs)
    if res != "error":
        check_summary(res.summary, res.requests)
    api_outcome(lambda: validate_experiment(path), locs)


@FUZZ
@given(case=mutated_experiment())
def test_fuzz_experiment_cli(case, tmp_path_factory):
    """`greensim validate` and `greensim run` on a mutated file: exit 0, or exit 2 with a clear message."""
    d, locators, dups, base = case
    folder = tmp_path_factory.mktemp("exp")
    path = write_yaml(d, dups, folder / "fuzzed.yaml")
    locs = locators + [path.name]
    cli_outcome(["validate", path], locs)
    res = cli_outcome(["run", path, "--out", folder / "out", "--no-plots", "-q"], locs)
    if res is not None:
        assert "results:" in res.output


SET_VALUES = ["0", "-1", "nan", "inf", "-inf", "1e300", "1e-300", "text", "", "[]", "{}", "null", "true", "1e400"]
SET_KEYS = [
    "workload.rate_rps",
    "workload.n_requests",
    "workload.input_tokens.max",
    "workload.output_tokens.median",
    "cluster.instances.0.count",
    "cluster.instances.0.max_batched_tokens",
    "cluster.instances.0.tp",
    "slo.ttft_s",
    "carbon.pue",
    "carbon.lifetime_years",
    "carbon.intensity.gco2_per_kwh",
    "seed",
    "model",
    "workload",
    "workload.nonexistent",
]


@FUZZ
@given(key=st.sampled_from(SET_KEYS), value=st.sampled_from(SET_VALUES))
def test_fuzz_set_overrides(key, value, tmp_path_factory):
    """`greensim run --set KEY=VALUE` with bad values: exit 0, or 2 naming the key."""
    folder = tmp_path_factory.mktemp("set")
    path = write_yaml(tiny("quickstart.yaml"), [], folder / "q.yaml")
    locs = [key, key.split(".")[-1]]
    cli_outcome(["run", path, "--set", f"{key}={value}", "--out", folder / "out", "--no-plots", "-q"], locs)
