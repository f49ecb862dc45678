"""The sweep's run cache: atomic entries, LRU pruning to a size limit, platform folder."""

import json
import os
import time

import pytest

from greensim.api.cache import STALE_TMP_S, RunCache, default_cache_dir, default_cache_max_bytes
from greensim.base.errors import ConfigError


def _fill(cache, n, size=1000):
    for i in range(n):
        cache.put(f"{i:064x}", {"x": "y" * size}, 1.0)
        os.utime(cache.path(f"{i:064x}"), ns=(10**18 + i * 10**9, 10**18 + i * 10**9))  # distinct ages


def test_prune_drops_least_recently_used_until_under_limit(tmp_path):
    c = RunCache(tmp_path, max_bytes=10**9)
    _fill(c, 10)
    one = c.path(f"{0:064x}").stat().st_size
    assert c.size_bytes() == 10 * one
    assert c.get(f"{0:064x}") is not None  # the oldest is used again: now the newest
    c.max_bytes = 4 * one
    assert c.prune() == 6
    left = sorted(p.name[:64] for p in (tmp_path / "runs").glob("*/*.json"))
    assert left == sorted([f"{0:064x}"] + [f"{i:064x}" for i in (7, 8, 9)])
    assert c.size_bytes() <= c.max_bytes
    assert c.prune() == 0


def test_entries_round_trip_and_bad_files_are_misses(tmp_path):
    c = RunCache(tmp_path)
    k = "ab" * 32
    c.put(k, {"carbon": 0.1 + 0.2}, 2.5)
    assert c.get(k) == {"key": k, "summary": {"carbon": 0.1 + 0.2}, "wall_s": 2.5}
    c.path(k).write_text("{not json")
    assert c.get(k) is None
    c.path(k).write_text(json.dumps({"key": "other", "summary": {}}))
    assert c.get(k) is None
    assert not [p for p in c.path(k).parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_default_folder_and_limit_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GREENSIM_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("GREENSIM_CACHE_DIR")
    import platformdirs

    assert default_cache_dir() == __import__("pathlib").Path(platformdirs.user_cache_dir("greensim", appauthor=False))
    monkeypatch.setenv("GREENSIM_CACHE_MAX_MB", "3")
    assert default_cache_max_bytes() == 3_000_000
    for bad in ("-1", "zero", "inf", "nan"):
        monkeypatch.setenv("GREENSIM_CACHE_MAX_MB", bad)
        with pytest.raises(ConfigError, match="GREENSIM_CACHE_MAX_MB"):
            default_cache_max_bytes()


def test_sweep_keeps_the_cache_under_its_limit(tmp_path):
    from conftest import make_experiment

    import greensim

    base = make_experiment(**{"workload.n_requests": 30})
    df = greensim.sweep(
        base,
        grid={"workload.rate_rps": [1, 2, 3, 4]},
        workers=1,
        cache_dir=tmp_path,
        progress=False,
        cache_max_mb=1e-6 * 2.5 * _entry_size(tmp_path, base),
    )
    assert (df["status"] == "ok").all()
    files = list((tmp_path / "runs").glob("*/*.json"))
    assert 1 <= len(files) <= 3
    with pytest.raises(greensim.ConfigError, match="cache_max_mb"):
        greensim.sweep(
            base, grid={"workload.rate_rps": [1]}, workers=1, cache_dir=tmp_path, progress=False, cache_max_mb=0
        )


def _entry_size(tmp_path, base):
    """The size of one cached run of ``base`` (measured, so the limit test needs no constant)."""
    import greensim

    d = tmp_path / "probe"
    greensim.sweep(base, grid={"workload.rate_rps": [9]}, workers=1, cache_dir=d, progress=False)
    return RunCache(d).size_bytes()


def test_prune_removes_a_killed_writes_temporary_file_but_not_a_fresh_one(tmp_path):
    c = RunCache(tmp_path)
    c.put("ab" * 32, {"x": 1.0}, 0.1)
    d = c.path("ab" * 32).parent
    dead, live = d / ".abababab.dead", d / ".abababab.live"
    dead.write_text("{")
    live.write_text("{")
    old = time.time() - 2 * STALE_TMP_S
    os.utime(dead, (old, old))
    c.prune()
    assert not dead.exists() and live.exists() and c.get("ab" * 32)["summary"] == {"x": 1.0}
