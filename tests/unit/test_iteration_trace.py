"""Per-iteration trace export (issue 20 part 5): ``output.iterations`` writes iterations.parquet and a
Perfetto / Chrome trace.json; the rows add up to the ledgers; the size guard; off changes nothing."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import greensim
from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.experiment.load import to_experiment
from greensim.results.iterations import COLUMNS, expand_decode_run, trace_events

EXP = Path(__file__).resolve().parents[2] / "experiments"
QUICKSTART = str(EXP / "quickstart.yaml")
QUIET = {"simulation.progress": False, "performance.uncertainty": "none", "output.plots": False}
ON = {**QUIET, "output.iterations": True}

CASES = {
    "colocated": (None, {"workload.n_requests": 150}),
    "chunked": (None, {"workload.n_requests": 150, "cluster.instances.0.chunked_prefill": True}),
    "utilization_power": (None, {"workload.n_requests": 120, "performance.decode_power": "utilization"}),
    "dpd": ("dpd_a100_v100.yaml", {"workload.n_requests": 80}),
    "dpd_layerwise": ("dpd_a100_v100.yaml", {"workload.n_requests": 80, "cluster.disaggregation.layerwise": True}),
    "dsd_split": ("dsd_v100_a100.yaml", {"workload.n_requests": 60}),
    "dsd_pipeline": (
        "dsd_v100_a100.yaml",
        {"workload.n_requests": 60, "cluster.instances.0.speculative.pipeline": True},
    ),
    "dsd_colocated": ("spec_colocated_a100.yaml", {"workload.n_requests": 60}),
    "failures_dpd": ("aging_failures_dpd.yaml", {"workload.n_requests": 300}),
    "failures_dsd": ("aging_failures_dsd.yaml", {"workload.n_requests": 300}),
}


def _run(case: str, tmp_path: Path, **extra):
    exp, ov = CASES[case]
    path = None if exp is None else str(EXP / exp)
    return greensim.run(path, overrides={**ov, **ON, **extra}, out_dir=tmp_path)


def _x_events(trace: dict) -> list:
    return [e for e in trace["traceEvents"] if e["ph"] == "X"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_iteration_energy_and_time_sum_to_each_instance_ledger(case, tmp_path):
    res = _run(case, tmp_path)
    df = res.iterations
    assert list(df.columns) == COLUMNS
    work = df[df["phase"] != "kv_transfer"]
    inst = res.instances.set_index("instance")
    for k, row in inst.iterrows():
        rows = work[work["instance"] == k]
        assert rows["energy_j"].sum() == pytest.approx(row["busy_energy_j"], rel=1e-9, abs=1e-12)
        assert rows["duration_s"].sum() == pytest.approx(row["busy_s"], rel=1e-9, abs=1e-12)
    assert (df["duration_s"] >= 0).all()
    assert np.all(np.diff(df["start_s"].to_numpy()) >= 0)  # sorted by start
    if "dsd" not in case:  # one row per engine iteration (speculative instances: one per pass instead)
        its = work[work["phase"].isin(["prefill", "decode", "mixed"])].groupby("instance").size()
        assert its.reindex(inst.index, fill_value=0).tolist() == inst["n_iterations"].tolist()
    if case in ("dpd", "dpd_layerwise"):  # every hand-off is a transfer (layer-wise: body and last layer)
        tr = df[df["phase"] == "kv_transfer"]
        req = res.requests.set_index("request_id")
        handed = req[req["decode_instance"] >= 0]
        per_req = tr.groupby("request").size()
        assert set(per_req.index) == set(handed.index)
        assert per_req.max() <= (2 if case == "dpd_layerwise" else 1)
        got = tr.groupby("request")["bytes"].sum()
        np.testing.assert_allclose(got.sort_index(), handed["kv_transfer_bytes"].sort_index(), rtol=1e-12)
        assert (
            tr.set_index("request")["dst_instance"] == handed["decode_instance"].reindex(tr["request"]).values
        ).all()
        last = tr.groupby("request").apply(lambda g: (g["start_s"] + g["duration_s"]).max() - g["start_s"].min())
        np.testing.assert_allclose(last.sort_index(), handed["kv_transfer_s"].sort_index(), rtol=1e-9)
    if case == "chunked":
        assert "mixed" in set(df["phase"])  # decode tokens and prompt chunks in one iteration
    if case.startswith("failures"):
        assert "lost" in set(df["phase"])  # interrupted iterations are booked, so they are rows
    if case.startswith("dsd"):
        draft = "predraft" if case == "dsd_pipeline" else "draft"
        assert {draft, "verify", "prefill", "draft_prefill"} <= set(df["phase"])


def test_colocated_rows_carry_the_batch_and_closed_form_runs_expand_to_one_event_per_iteration(tmp_path):
    """The closed-form decode runs, expanded, equal the reference that takes one event per iteration."""
    exp = to_experiment(QUICKSTART, {**CASES["colocated"][1], **ON})
    fast = simulate(prepare(exp)).extra["iterations"]
    ref = simulate(prepare(exp), max_run_iterations=1).extra["iterations"]
    assert len(fast) == len(ref) > 0
    for c in ("instance", "phase", "prefill_tokens", "prefill_seqs", "decode_batch", "decode_ctx_tokens"):
        assert fast[c].tolist() == ref[c].tolist(), c
    for c in ("start_s", "duration_s", "energy_j"):
        np.testing.assert_allclose(fast[c], ref[c], rtol=1e-9, atol=1e-12)
    dec = fast[fast["phase"] == "decode"]
    assert (dec["prefill_tokens"] == 0).all() and (dec["decode_batch"] > 0).all()
    pre = fast[fast["phase"] == "prefill"]
    assert (pre["decode_batch"] == 0).all() and (pre["prefill_tokens"] > 0).all()
    # every request's prompt is prefilled once (no preemption at this load)
    req = simulate(prepare(exp)).requests
    assert int(pre["prefill_tokens"].sum()) == int(req["n_input_tokens"].sum())


@pytest.mark.parametrize("decode_power", ["constant", "utilization"])
@pytest.mark.parametrize("n, ctx0, k", [(1, 10, 1), (7, 3000, 250), (64, 90_000, 1000)])
def test_expanded_decode_run_sums_to_the_closed_form(decode_power, n, ctx0, k):
    exp = to_experiment(QUICKSTART, {"performance.decode_power": decode_power, "workload.n_requests": 5})
    perf = prepare(exp).instances[0][1]
    t, e = perf.decode_run_time_s(n, ctx0, k), perf.decode_run_energy_j(n, ctx0, k)
    starts, durs, ens, t_sum, e_sum = expand_decode_run(perf, 2.0, t, e, n, ctx0, k)
    assert t_sum == pytest.approx(t, rel=1e-9)  # the per-iteration model sums to the run's closed form
    assert e_sum == pytest.approx(e, rel=1e-9)
    assert durs.sum() == pytest.approx(t, rel=1e-12) and ens.sum() == pytest.approx(e, rel=1e-12)
    assert starts[0] == 2.0 and starts[-1] + durs[-1] == 2.0 + t
    np.testing.assert_array_equal(starts[1:], starts[:-1] + durs[:-1])  # back to back
    j = k // 2  # one iteration against the model directly
    assert durs[j] == pytest.approx(perf.iteration_time_s((), n, ctx0 + n * j), rel=1e-9)


@pytest.mark.parametrize("case", ["colocated", "dpd", "dsd_split"])
def test_trace_json_opens_as_a_trace_event_file_matching_the_table(case, tmp_path):
    res = _run(case, tmp_path)
    files = {p.name for p in res.folder.iterdir()}
    assert {"iterations.parquet", "trace.json"} <= files
    table = pd.read_parquet(res.folder / "iterations.parquet")
    pd.testing.assert_frame_equal(table, res.iterations)
    trace = json.loads((res.folder / "trace.json").read_text())
    events = trace["traceEvents"]
    for e in events:
        assert {"name", "ph", "ts", "pid", "tid"} <= set(e), e
        assert e["ph"] in {"X", "C", "M"}
    xs = _x_events(trace)
    assert len(xs) == len(table)
    assert all(e["dur"] >= 0 for e in xs)
    by_track = defaultdict(list)
    for e in xs:
        by_track[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for track, iv in by_track.items():
        iv.sort()
        for (a0, a1), (b0, _) in zip(iv, iv[1:]):
            assert b0 >= a1 - 1e-6, (track, a0, a1, b0)  # 1e-6 us: float rounding of integer ns
    # names: every pid and thread with events is named by metadata
    named_p = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    named_t = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {e["pid"] for e in xs} <= named_p and set(by_track) <= named_t
    # counts per phase and the total duration survive the conversion (us)
    assert pd.Series([e["name"] for e in xs]).value_counts().to_dict() == table["phase"].value_counts().to_dict()
    assert sum(e["dur"] for e in xs) == pytest.approx(table["duration_s"].sum() * 1e6, rel=1e-6)
    counters = [e for e in events if e["ph"] == "C"]
    assert counters and all(e["name"] in {"power_w", "batch"} for e in counters)
    if case == "dpd":  # the links get a process of their own
        assert any(e["args"].get("name") == "KV links" for e in events if e["ph"] == "M")


def test_overlapping_rows_on_one_track_go_to_lanes():
    """Processor-shared KV transfers overlap on their link: they are spread over threads."""
    rows = [(0.0, 1.0), (0.5, 1.0), (0.7, 0.1), (1.6, 0.2), (0.5, 0.0)]
    df = pd.DataFrame(
        {
            "instance": 0,
            "instance_name": "p",
            "gpu": "A100-80GB",
            "phase": "kv_transfer",
            "start_s": [a for a, _ in rows],
            "duration_s": [d for _, d in rows],
            "prefill_tokens": -1,
            "prefill_seqs": -1,
            "decode_batch": -1,
            "decode_ctx_tokens": -1,
            "power_w": np.nan,
            "energy_j": 0.0,
            "request": range(len(rows)),
            "dst_instance": 1,
            "bytes": 1e6,
            "link": "link(0, 1)",
        }
    )[COLUMNS]
    xs = [e for e in trace_events(df) if e["ph"] == "X"]
    lanes = {e["args"]["request"]: e["tid"] for e in xs}
    assert lanes[0] != lanes[1] and lanes[2] not in (lanes[0], lanes[1])  # three overlap at 0.7 s
    assert lanes[3] == lanes[0]  # after the first ended: back on the first lane
    assert len(set(lanes.values())) == 3


def test_size_guard_keeps_the_first_rows_and_says_so(tmp_path):
    full = _run("colocated", tmp_path / "full").iterations
    cap = 40
    res = _run("colocated", tmp_path / "cut", **{"output.iterations_max": cap})
    df, s = res.iterations, res.summary
    assert len(df) == cap
    assert s["iterations_truncated"] is True and s["iterations_rows"] == cap
    assert s["iterations_dropped_rows"] == len(full) - cap
    assert 0 < s["iterations_recorded_until_s"] <= full["start_s"].max() + full["duration_s"].max()
    key = ["instance", "phase", "start_s", "decode_ctx_tokens"]
    assert len(df[key].merge(full[key], on=key)) == cap  # a subset of the full table's rows
    manifest = json.loads((res.folder / "manifest.json").read_text())
    assert (
        manifest["iterations"]["truncated"] is True
        and "output.iterations_max 40 reached" in manifest["iterations"]["note"]
    )
    assert len(_x_events(json.loads((res.folder / "trace.json").read_text()))) == cap
    # the run's own numbers do not depend on the guard
    assert res.summary["energy_kwh"] == _run("colocated", tmp_path / "again").summary["energy_kwh"]


def test_off_by_default_writes_nothing_and_changes_no_number(tmp_path):
    exp, ov = CASES["dpd"]
    off = greensim.run(str(EXP / exp), overrides={**ov, **QUIET}, out_dir=tmp_path / "off")
    on = greensim.run(str(EXP / exp), overrides={**ov, **ON}, out_dir=tmp_path / "on")
    assert off.iterations is None
    names = {p.name for p in off.folder.iterdir()}
    assert "iterations.parquet" not in names and "trace.json" not in names
    assert not any(k.startswith("iterations") for k in off.summary)
    assert "iterations" not in json.loads((off.folder / "manifest.json").read_text())
    pd.testing.assert_frame_equal(off.requests, on.requests)
    pd.testing.assert_frame_equal(off.instances, on.instances)
    pd.testing.assert_frame_equal(off.timeline, on.timeline)
    drop = {"sim_wall_s"}
    s_on = {k: v for k, v in on.summary.items() if k not in drop and not k.startswith("iterations")}
    s_off = {k: v for k, v in off.summary.items() if k not in drop}
    assert json.dumps(s_on, sort_keys=True, default=str) == json.dumps(s_off, sort_keys=True, default=str)


def test_csv_table_format_writes_iterations_csv(tmp_path):
    res = _run("colocated", tmp_path, **{"output.table_format": "csv"})
    names = {p.name for p in res.folder.iterdir()}
    assert "iterations.csv" in names and "trace.json" in names
    assert len(pd.read_csv(res.folder / "iterations.csv")) == len(res.iterations)


def test_cli_run_iterations_flag(tmp_path):
    from click.testing import CliRunner

    from greensim.cli.main import main

    out = CliRunner().invoke(
        main,
        [
            "run",
            "-q",
            "--iterations",
            "--no-plots",
            "--out",
            str(tmp_path),
            "--set",
            "workload.n_requests=20",
            "--set",
            "performance.uncertainty=none",
        ],
    )
    assert out.exit_code == 0, out.output
    folder = Path(out.output.strip().split("results: ")[-1])
    assert (folder / "trace.json").is_file() and (folder / "iterations.parquet").is_file()


def test_iterations_max_must_be_positive():
    from greensim.base.errors import GreensimError

    with pytest.raises(GreensimError, match="iterations_max"):
        to_experiment(QUICKSTART, {"output.iterations_max": 0})
