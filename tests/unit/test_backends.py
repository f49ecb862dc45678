"""Backends: the same sweep gives identical numbers in-process, on local worker processes
and on a real local Dask cluster of worker processes; unreachable schedulers fail fast."""

import json
import socket
import time

import distributed
import pandas as pd
import pytest
from conftest import make_experiment

from greensim.api.backends import BackendError, make_backend
from greensim.api.sweep import sweep

GRID = {"workload.rate_rps": [3.0, 12.0], "cluster.router": ["round_robin", "join_shortest_queue"]}


def small():
    return make_experiment(**{"workload.n_requests": 80})


def numbers(df):
    return df.drop(columns=["cached", "wall_s"])


@pytest.fixture(scope="module")
def dask_client():
    cluster = distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=50
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_identical_numbers_on_every_backend(dask_client, tmp_path):
    """In-process, 2 spawned local processes and a 2-process Dask cluster: equal tables."""
    kw = dict(grid=GRID, seeds=2, cache=False, progress=False)
    serial = sweep(small(), workers=1, **kw)
    local = sweep(small(), backend="local", workers=2, **kw)
    with distributed.get_task_stream(dask_client) as stream:
        dask = sweep(small(), backend=dask_client, **kw)
    assert (serial["status"] == "ok").all() and len(serial) == 8
    pd.testing.assert_frame_equal(numbers(serial), numbers(local))
    pd.testing.assert_frame_equal(numbers(serial), numbers(dask))
    # The 8 runs really went to the cluster's worker processes.
    assert len(stream.data) == 8 and {t["worker"] for t in stream.data} <= set(dask_client.scheduler_info()["workers"])


def test_dask_by_scheduler_address_and_file(dask_client, tmp_path):
    """The 'dask' backend by name connects with an address or a scheduler file."""
    addr = dask_client.scheduler.address
    df = sweep(small(), grid={"seed": [3]}, backend="dask", scheduler=addr, cache=False, progress=False)
    assert df["status"].tolist() == ["ok"]
    f = tmp_path / "sched.json"
    # The file `dask scheduler --scheduler-file` writes; Client reads its "address".
    # (Client.write_scheduler_file fails on a LocalCluster in distributed 2026.8.)
    f.write_text(json.dumps({"type": "Scheduler", "address": addr}))
    df2 = sweep(small(), grid={"seed": [3]}, backend="dask", scheduler_file=str(f), cache=False, progress=False)
    pd.testing.assert_frame_equal(numbers(df), numbers(df2))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_fails_fast_before_any_run():
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match=r"no scheduler answered at tcp://127\.0\.0\.1:\d+ within 1 s"):
        sweep(
            small(),
            grid={"seed": [1]},
            backend="dask",
            scheduler=f"tcp://127.0.0.1:{_free_port()}",
            timeout_s=1,
            cache=False,
            progress=False,
        )
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize(
    "kw,pattern",
    [
        ({}, r"give exactly one of a scheduler address"),
        ({"scheduler_file": "/nonexistent/s.json"}, r"scheduler file '/nonexistent/s\.json' does not exist"),
        ({"scheduler": "tcp://127.0.0.1:1", "workers": 2}, r"drop --workers"),
    ],
)
def test_dask_option_errors(kw, pattern):
    with pytest.raises(BackendError, match=pattern):
        make_backend("dask", **kw)


def test_local_rejects_dask_options():
    with pytest.raises(BackendError, match=r"apply to --backend dask only"):
        make_backend("local", scheduler="tcp://x:1")
