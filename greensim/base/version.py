"""greensim's version (the one place it is written; ``pyproject.toml`` reads it) and the
revision of the code that produced a result."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

from greensim.base.paths import bundled

__version__ = "0.1.0"

__all__ = ["__version__", "version", "code_fingerprint", "code_revision", "provenance"]

_PACKAGE = Path(__file__).resolve().parents[1]


def version() -> str:
    """The greensim version string."""
    return __version__


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 over greensim's source files and shipped profiles (a dev checkout keeps one
    version number while its code changes; caches and manifests must tell such code apart)."""
    h = hashlib.sha256()
    for root in (_PACKAGE, bundled("profiles")):
        for p in sorted(root.rglob("*")):
            if p.suffix in (".py", ".yaml", ".yml", ".csv") and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(root)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_revision() -> dict:
    """Where the running code comes from: ``{"git_commit": sha, "git_dirty": bool}`` when
    greensim runs from a git checkout, else ``{"code_sha256": ...}`` (an installed wheel)."""
    top = _PACKAGE.parent
    if (top / ".git").exists():
        try:
            sha = subprocess.run(
                ["git", "-C", str(top), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
            ).stdout.strip()
            dirty = (
                subprocess.run(
                    ["git", "-C", str(top), "status", "--porcelain", "--untracked-files=no"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                ).stdout.strip()
                != ""
            )
            out: dict = {"git_commit": sha, "git_dirty": dirty}
            if dirty:
                out["code_sha256"] = code_fingerprint()
            return out
        except (OSError, subprocess.SubprocessError):
            pass
    return {"code_sha256": code_fingerprint()}


def provenance() -> dict:
    """What a results manifest records of the code: ``greensim_version`` plus
    :func:`code_revision` (git commit, or a fingerprint of the installed code)."""
    return {"greensim_version": __version__, **code_revision()}
