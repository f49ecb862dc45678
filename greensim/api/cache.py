"""The sweep's run cache: one small JSON file per run, least recently used first out.

Files live under :func:`default_cache_dir` (``$GREENSIM_CACHE_DIR``, else the platform's
user cache folder from platformdirs, e.g. ``~/.cache/greensim`` on Linux,
``~/Library/Caches/greensim`` on macOS), in ``runs/<2 hex>/<key>.json``. Writes are
atomic (a temporary file renamed into place), so concurrent sweeps never read half a
file. A hit refreshes the file's modification time; :meth:`RunCache.prune` then deletes
the least recently used files until the folder is under ``max_bytes`` (default 512 MB,
``$GREENSIM_CACHE_MAX_MB``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

from greensim.base.errors import ConfigError

__all__ = ["RunCache", "default_cache_dir", "default_cache_max_bytes", "DEFAULT_MAX_MB"]

#: default size limit of the cache folder [MB]; a run's entry is a few kB
DEFAULT_MAX_MB = 512.0


def default_cache_dir() -> Path:
    """``$GREENSIM_CACHE_DIR``, else the platform's user cache folder for greensim."""
    env = os.environ.get("GREENSIM_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("greensim", appauthor=False))


def default_cache_max_bytes() -> int:
    """``$GREENSIM_CACHE_MAX_MB`` (MB, > 0) or :data:`DEFAULT_MAX_MB`, in bytes."""
    env = os.environ.get("GREENSIM_CACHE_MAX_MB")
    if not env:
        return int(DEFAULT_MAX_MB * 1e6)
    try:
        mb = float(env)
    except ValueError:
        mb = float("nan")
    if not (mb > 0 and mb != float("inf")):
        raise ConfigError(
            f"$GREENSIM_CACHE_MAX_MB: {env!r} is not a positive number of megabytes. "
            f"Set it to e.g. 512, or unset it for the default ({DEFAULT_MAX_MB:g} MB)."
        )
    return int(mb * 1e6)


#: a cache temporary file older than this is a dead write's [s] (a write takes milliseconds)
STALE_TMP_S = 3600.0


class RunCache:
    """Summaries of finished runs keyed by :func:`greensim.api.sweep.cache_key`."""

    def __init__(self, folder: str | Path | None = None, max_bytes: Optional[int] = None):
        self.folder = Path(folder).expanduser() if folder is not None else default_cache_dir()
        self.max_bytes = default_cache_max_bytes() if max_bytes is None else int(max_bytes)
        if self.max_bytes <= 0:
            raise ConfigError(f"cache size limit: {max_bytes!r} bytes; it must be > 0.")

    def path(self, key: str) -> Path:
        return self.folder / "runs" / key[:2] / f"{key}.json"

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        """The entry ``{"key", "summary", "wall_s"}`` or None (absent or unreadable)."""
        p = self.path(key)
        try:
            entry = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        if entry.get("key") != key or not isinstance(entry.get("summary"), dict):
            return None
        try:
            os.utime(p)  # recently used: last out
        except OSError:
            pass
        return entry

    def put(self, key: str, summary: Dict[str, Any], wall_s: float) -> None:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}.", dir=p.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"key": key, "summary": summary, "wall_s": wall_s}, f)  # floats round-trip exactly
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def size_bytes(self) -> int:
        return sum(st.st_size for _, st in self._entries())

    def _entries(self):
        runs = self.folder / "runs"
        if not runs.is_dir():
            return []
        out = []
        for p in runs.glob("*/*.json"):
            try:
                out.append((p, p.stat()))
            except OSError:
                continue
        return out

    def remove_stale_temporaries(self, older_than_s: float = STALE_TMP_S) -> int:
        """Delete the temporary files of writes that never finished (a killed run leaves its
        ``.<key>.*`` file behind; a live write lasts milliseconds); return how many."""
        runs = self.folder / "runs"
        if not runs.is_dir():
            return 0
        cutoff, n = time.time() - older_than_s, 0
        for p in runs.glob("*/.*"):
            try:
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink()
                    n += 1
            except OSError:
                continue
        return n

    def prune(self) -> int:
        """Delete stale temporary files, then least recently used entries until the folder is
        under ``max_bytes``; return how many entries were deleted."""
        self.remove_stale_temporaries()
        entries = self._entries()
        total = sum(st.st_size for _, st in entries)
        if total <= self.max_bytes:
            return 0
        n = 0
        for p, st in sorted(entries, key=lambda e: (e[1].st_mtime_ns, str(e[0]))):
            if total <= self.max_bytes:
                break
            try:
                p.unlink()
            except OSError:
                continue
            total -= st.st_size
            n += 1
        return n
