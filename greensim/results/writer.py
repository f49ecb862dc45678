"""Atomic results folders: written under a temporary name, renamed when complete.

A folder is complete iff it holds ``manifest.json`` (written last, before the rename).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict

import yaml

__all__ = ["write_run", "write_folder_atomically", "to_jsonable", "check_writable"]


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


def write_folder_atomically(target: Path, fill: Callable[[Path], None], manifest: Dict[str, Any]) -> Path:
    """Create ``target`` atomically: ``fill(tmp)`` writes the files into a temporary
    sibling folder, ``manifest.json`` is written last, then the folder is renamed.

    A crash leaves only a dot-named temporary folder without a manifest; an existing
    ``target`` is replaced only once the new one is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        fill(tmp)
        write_text(tmp / "manifest.json", json.dumps(to_jsonable(manifest), indent=2))
        if target.exists():
            trash = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, trash)
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


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
                df.to_parquet(tmp / f"{name}.parquet", index=False)
            else:
                df.to_csv(tmp / f"{name}.csv", index=False)
        for name, df in (getattr(tables, "extra", None) or {}).items():  # policy tables (router.report())
            if table_format == "parquet":
                df.to_parquet(tmp / f"{name}.parquet", index=False)
            else:
                df.to_csv(tmp / f"{name}.csv", index=False)
        if getattr(tables, "regions", None) is not None:  # carbon.compare_regions: per-region totals
            tables.regions.to_csv(tmp / "regions.csv", index=False)
        write_text(tmp / "summary.json", json.dumps(to_jsonable(tables.summary), indent=2))
        if plot is not None:
            plot(tmp)

    return write_folder_atomically(target, fill, manifest)
