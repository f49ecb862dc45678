"""Crash-safe results folders (greensim.results.writer): a killed writer leaves no folder that
looks complete, the next write removes its leftovers, folders follow the umask, and replacing a
folder is announced (issue 18)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from greensim.base.errors import ConfigError
from greensim.results.writer import (
    _WORK_NAME,
    _host,
    _start_ticks,
    _work_name,
    remove_stale_temporaries,
    write_folder_atomically,
)

ROOT = Path(__file__).resolve().parents[2]


def _fill(text: str):
    def fill(tmp: Path) -> None:
        (tmp / "data.txt").write_text(text)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "x.txt").write_text(text)

    return fill


def _work_names(parent: Path):
    return sorted(p.name for p in parent.iterdir() if _WORK_NAME.match(p.name))


def _complete(folder: Path) -> bool:
    return (folder / "manifest.json").is_file()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# A writer killed (os._exit: no clean-up, as SIGKILL) at one stage of its second write of the same
# folder; stage "fill" is mid-way through writing the files.
_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import greensim.results.writer as w

    target, stage = Path(sys.argv[1]), sys.argv[2]
    def fill(tmp, text):
        (tmp / "data.txt").write_text(text)
        if stage == "fill" and text == "new":
            os._exit(9)
    w.write_folder_atomically(target, lambda t: fill(t, "old"), {"run": "old"})
    real_replace, real_write = os.replace, w.write_text
    calls = []
    def replace(a, b):
        calls.append(b)
        if stage == "aside" and len(calls) == 2:  # the old folder moved aside, the new one not yet in
            os._exit(9)
        real_replace(a, b)
        if stage == "swapped" and len(calls) == 2:
            os._exit(9)
    def write_text(path, text):
        real_write(path, text)
        if stage == "manifest" and path.name == "manifest.json":
            os._exit(9)
    os.replace, w.write_text = replace, write_text
    w.write_folder_atomically(target, lambda t: fill(t, "new"), {"run": "new"})
    """
)


@pytest.mark.parametrize("stage", ["fill", "manifest", "aside", "swapped"])
def test_a_writer_killed_at_any_stage_leaves_no_incomplete_folder(tmp_path, stage):
    target = tmp_path / "exp" / "abcd1234"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target), stage], env=env, timeout=120)
    assert p.returncode == 9
    # whatever holds the target's name is complete: the old results or the new ones
    if target.exists():
        assert _complete(target)
        data = (target / "data.txt").read_text()
        assert json.loads((target / "manifest.json").read_text())["run"] == data
    # the killed writer left its working folder(s)
    left = _work_names(target.parent)
    assert left, "the kill should leave a working folder behind for the next write to clean"
    # the next write into the same parent (another experiment's folder) removes them
    write_folder_atomically(target.parent / "other", _fill("x"), {})
    assert _work_names(target.parent) == []
    # and the target is complete: never missing after a kill in the swap (the old one is restored)
    assert _complete(target)
    expect = "new" if stage == "swapped" else "old"
    assert (target / "data.txt").read_text() == expect


def test_sigkill_mid_write_then_next_run_cleans(tmp_path):
    """A real SIGKILL while the files are being written."""
    target = tmp_path / "exp" / "h1"
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from greensim.results.writer import write_folder_atomically
        def fill(tmp):
            (tmp / "requests.parquet").write_bytes(b"x" * 1000)
            Path({str(ready)!r}).write_text("1")
            time.sleep(60)
        write_folder_atomically(Path({str(target)!r}), fill, {{}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for _ in range(600):
            if ready.exists():
                break
            time.sleep(0.05)
        assert ready.exists()
        # while the writer lives, another write into the same parent leaves its folder alone
        write_folder_atomically(target.parent / "other", _fill("x"), {})
        assert len(_work_names(target.parent)) == 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not target.exists()
    (tmp_dir,) = _work_names(target.parent)
    assert f"-{proc.pid}-" in tmp_dir and not _complete(target.parent / tmp_dir)
    write_folder_atomically(target.parent / "other", _fill("y"), {})
    assert _work_names(target.parent) == []


def test_an_exception_in_the_writer_leaves_nothing(tmp_path):
    target = tmp_path / "r"

    def fill(tmp: Path) -> None:
        (tmp / "a.txt").write_text("a")
        raise RuntimeError("injected")

    with pytest.raises(RuntimeError, match="injected"):
        write_folder_atomically(target, fill, {})
    assert list(tmp_path.iterdir()) == []


def test_stale_folders_only_of_dead_processes_on_this_host(tmp_path):
    target = tmp_path / "t"
    live = _work_name(target, "tmp")  # this (live) process's name
    live.mkdir()
    me, start = os.getpid(), _start_ticks(os.getpid())
    dead = tmp_path / f".t.tmp-{_host()}-{_dead_pid()}-0-0123abcd"
    dead.mkdir()
    recycled = tmp_path / f".t.tmp-{_host()}-{me}-{start + 1}-0123abcd"  # this pid, another start time
    recycled.mkdir()
    other_host = tmp_path / f".t.tmp-some-other-host-{_dead_pid()}-0-0123abcd"
    other_host.mkdir()
    legacy = tmp_path / ".t.tmp-k2j4x_8q"  # tempfile.mkdtemp's name, before the pid was recorded
    legacy.mkdir()
    unrelated = tmp_path / ".t.tmp-mine"
    unrelated.mkdir()
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead, recycled] if start else [dead])
    assert live.exists() and other_host.exists() and legacy.exists() and unrelated.exists()


def test_an_old_folder_of_a_dead_swap_is_restored_or_removed(tmp_path):
    pid = _dead_pid()
    aside = tmp_path / f".a.old-{_host()}-{pid}-0-00000001"
    aside.mkdir()
    (aside / "manifest.json").write_text("{}")
    remove_stale_temporaries(tmp_path)
    assert _complete(tmp_path / "a") and not aside.exists()  # the name was free: restored
    aside.mkdir()
    remove_stale_temporaries(tmp_path)
    assert not aside.exists() and _complete(tmp_path / "a")  # the name is taken: removed


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_folders_and_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        target = write_folder_atomically(tmp_path / "deep" / "exp" / "h", _fill("x"), {"a": 1})
    finally:
        os.umask(old)
    for p in (target, target / "sub", target.parent):
        assert (p.stat().st_mode & 0o777) == 0o777 & ~umask, p
    for p in (target / "data.txt", target / "manifest.json"):
        assert (p.stat().st_mode & 0o777) == 0o666 & ~umask, p


def test_replacing_a_folder_is_announced(tmp_path, caplog):
    target = tmp_path / "exp" / "h"
    with caplog.at_level(logging.WARNING, logger="greensim.results.writer"):
        write_folder_atomically(target, _fill("first"), {})
        assert not [r for r in caplog.records if "replaced" in r.getMessage()]
        write_folder_atomically(target, _fill("second"), {})
    (rec,) = [r for r in caplog.records if "replaced" in r.getMessage()]
    assert str(target) in rec.getMessage() and "written " in rec.getMessage()
    assert (target / "data.txt").read_text() == "second"
    assert _work_names(target.parent) == []


def test_an_os_error_while_writing_is_a_config_error(tmp_path):
    def fill(tmp: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(ConfigError, match="No space left on device"):
        write_folder_atomically(tmp_path / "r", fill, {})
    assert list(tmp_path.iterdir()) == []
