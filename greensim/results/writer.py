"""Atomic results folders: written under a temporary name, renamed when complete.

A folder is complete iff it holds ``manifest.json`` (written last, before the rename).

The temporary folder is a hidden sibling of the target named after the writing process,
``.<name>.tmp-<host>-<pid>-<start>-<random>`` (``start``: the process's start time in clock
ticks since boot, from ``/proc``, 0 where unknown), so that a later write into the same parent
can tell a dead writer's leftovers from a live one's: :func:`remove_stale_temporaries` removes
those of processes on this host that are gone, and never touches a live process's or another
host's. Folders are created with the user's usual permissions (``0o777`` less the umask).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

log = logging.getLogger(__name__)

__all__ = [
    "write_run",
    "write_folder_atomically",
    "to_jsonable",
    "write_parquet",
    "check_writable",
    "remove_stale_temporaries",
]


def check_writable(folder: str | Path, what: str = "output folder") -> None:
    """Raise a ConfigError now (before a long run) if ``folder`` could not be created or written:
    an existing part of its path is a regular file, or the nearest existing folder is read-only."""
    from greensim.base.errors import ConfigError

    p = Path(folder).expanduser().absolute()
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(
            f"{what} {folder}: {probe} is a file, not a folder, so the results cannot be written there. "
            f"Choose another folder (--out DIR or output.dir)."
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{what} {folder}: {probe} is not writable, so the results cannot be written there. "
            f"Choose a folder you can write (--out DIR or output.dir) or fix its permissions."
        )


def to_jsonable(x: Any) -> Any:
    """Floats NaN/inf become None; numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_text(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


#: hidden working names: ``.<name>.tmp-...`` (being written) and ``.<name>.old-...`` (a folder
#: being replaced, moved aside for the instant of the swap)
_WORK_NAME = re.compile(
    r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>[A-Za-z0-9._-]+)-(?P<pid>\d+)-(?P<start>\d+)-[0-9a-f]{8}$"
)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def _start_ticks(pid: int) -> int:
    """Start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22);
    0 where unknown (not Linux, or no such process)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return int(stat[stat.rindex(")") + 2 :].split()[19])  # fields after "pid (comm)": 3.. -> 22 is [19]
    except (OSError, ValueError, IndexError):
        return 0


def _alive(pid: int, start: int) -> bool:
    """Whether the process that wrote a working name (pid, start ticks) still runs on this host.
    A recycled pid (same number, other start time) counts as gone; in doubt: alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    except OSError:
        return True
    if start:
        now = _start_ticks(pid)
        if now and now != start:
            return False
    return True


def _work_name(target: Path, kind: str) -> Path:
    pid = os.getpid()
    return target.parent / f".{target.name}.{kind}-{_host()}-{pid}-{_start_ticks(pid)}-{secrets.token_hex(4)}"


def remove_stale_temporaries(parent: str | Path) -> List[Path]:
    """Clean up after writers in ``parent`` that were killed mid-write; return what was removed.

    A ``.tmp-`` folder of a dead process on this host is deleted (it never got its final name, so
    it holds no result). A ``.old-`` folder of a dead process (killed in the instant between moving
    the previous results aside and renaming the new ones in) is renamed back to its name if that
    name is free, else deleted. Folders of live processes and of other hosts are left alone.
    """
    parent = Path(parent)
    removed: List[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    host = _host()
    for e in sorted(entries, key=lambda e: (".old-" not in e.name, e.name)):  # restore first, then delete
        m = _WORK_NAME.match(e.name)
        if m is None or m["host"] != host or not e.is_dir(follow_symlinks=False):
            continue
        if _alive(int(m["pid"]), int(m["start"])):
            continue
        path = parent / e.name
        if m["kind"] == "old" and not (parent / m["name"]).exists():
            try:
                os.rename(path, parent / m["name"])
                log.warning("restored %s, moved aside by a run killed while replacing it", parent / m["name"])
                continue
            except OSError:
                pass
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
            log.info("removed %s, left by a run killed while writing (pid %s)", path, m["pid"])
    return removed


def _fsync_tree(folder: Path) -> None:
    """Flush the files written into ``folder`` to disk, then the folder itself (POSIX)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_folder_atomically(target: Path, fill: Callable[[Path], None], manifest: Dict[str, Any]) -> Path:
    """Create ``target`` atomically: ``fill(tmp)`` writes the files into a temporary
    sibling folder, ``manifest.json`` is written last, then the folder is renamed.

    Before writing, :func:`remove_stale_temporaries` cleans up after killed writers in the same
    parent. A crash at any point leaves ``target`` either as it was or complete; an existing
    ``target`` is replaced only once the new one is complete, with a warning on the log (a rerun of
    the same experiment lands in the same folder). An operating-system error while writing (disk
    full, permissions) becomes a :class:`~greensim.base.errors.ConfigError` naming the folder.
    """
    from greensim.base.errors import ConfigError

    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)  # mode 0o777 less the umask
        remove_stale_temporaries(target.parent)
        while True:
            tmp = _work_name(target, "tmp")
            try:
                os.mkdir(tmp)  # not tempfile.mkdtemp: that makes it owner-only (0o700) whatever the umask
                break
            except FileExistsError:
                continue
    except OSError as exc:
        raise ConfigError(
            f"results folder {target}: cannot create it ({exc.strerror or exc}). "
            f"Choose a folder you can write (--out DIR or output.dir)."
        ) from exc
    replaced: Optional[str] = None
    try:
        fill(tmp)
        write_text(tmp / "manifest.json", json.dumps(to_jsonable(manifest), indent=2))
        _fsync_tree(tmp)
        if target.exists():
            replaced = _describe(target)
            trash = _work_name(target, "old")
            os.replace(target, trash)
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError(
            f"results folder {target}: writing failed ({exc}); nothing was written there. "
            f"Free space or choose another folder (--out DIR or output.dir)."
        ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if replaced is not None:
        log.warning(
            "replaced the earlier results folder %s (%s) with this one; to keep both, rename the old one "
            "first or write elsewhere (--out DIR)",
            target,
            replaced,
        )
    return target


def _describe(folder: Path) -> str:
    """What a folder about to be replaced held, for the replacement warning."""
    import datetime

    m = folder / "manifest.json"
    try:
        t = datetime.datetime.fromtimestamp(m.stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")
        return f"written {t}"
    except OSError:
        return "an incomplete folder without manifest.json"


#: rows converted to Arrow and written per Parquet row group: ``DataFrame.to_parquet`` converts the
#: whole table first (1M requests: ~375 MB of Arrow buffers on top of the table); a slice at a time
#: keeps that to ~30 MB whatever the length (``benchmarks/README.md``, "Memory").
PARQUET_ROWS_PER_GROUP = 65536


def write_parquet(df: Any, path: Path, rows_per_group: int = PARQUET_ROWS_PER_GROUP) -> None:
    """``df.to_parquet(path, index=False)``, converted and written ``rows_per_group`` rows at a time
    (the same schema, values and pandas metadata; only the row groups are smaller)."""
    if len(df) <= rows_per_group:
        df.to_parquet(path, index=False)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.Schema.from_pandas(df, preserve_index=False)
    with pq.ParquetWriter(path, schema) as w:
        for start in range(0, len(df), rows_per_group):
            part = df.iloc[start : start + rows_per_group]
            w.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
    # mimalloc (the wheels' default pool) keeps what the writer used (~50 MB) unless asked; with
    # ARROW_DEFAULT_MEMORY_POOL=system (the greensim command: greensim.base.memory) this is a no-op
    pa.default_memory_pool().release_unused()


def write_run(
    target: Path,
    experiment: Dict[str, Any],
    tables,
    manifest: Dict[str, Any],
    table_format: str = "parquet",
    plot: Callable[[Path], None] | None = None,
) -> Path:
    """Write the run folder at ``target`` atomically and return its path."""

    def fill(tmp: Path) -> None:
        write_text(tmp / "experiment.yaml", yaml.safe_dump(experiment, sort_keys=False))
        for name, df in (("requests", tables.requests), ("instances", tables.instances), ("timeline", tables.timeline)):
            if table_format == "parquet":
                write_parquet(df, tmp / f"{name}.parquet")
            else:
                df.to_csv(tmp / f"{name}.csv", index=False)
        for name, df in (getattr(tables, "extra", None) or {}).items():  # policy tables (router.report())
            if table_format == "parquet":
                write_parquet(df, tmp / f"{name}.parquet")
            else:
                df.to_csv(tmp / f"{name}.csv", index=False)
        if getattr(tables, "regions", None) is not None:  # carbon.compare_regions: per-region totals
            tables.regions.to_csv(tmp / "regions.csv", index=False)
        for name, write in (getattr(tables, "files", None) or {}).items():  # e.g. trace.json (output.iterations)
            write(tmp / name)
        write_text(tmp / "summary.json", json.dumps(to_jsonable(tables.summary), indent=2))
        if plot is not None:
            plot(tmp)

    return write_folder_atomically(target, fill, manifest)
