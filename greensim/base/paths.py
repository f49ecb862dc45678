"""Where greensim finds its files: the bundled data (``profiles/``, ``experiments/``,
``traces/`` at the top of the source tree) and the shared public data folder.

Bundled data is found the same way in every mode: inside the installed package (a wheel
ships ``profiles/`` as ``greensim/_profiles``), else beside the package in a source
checkout (``python -m pytest`` from the checkout, ``pip install -e .``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["bundled", "shared_data_dir", "DATA_ENV"]

_PACKAGE = Path(__file__).resolve().parents[1]
_KINDS = ("profiles", "experiments", "traces")

#: the one environment variable that points greensim at the shared data folder
DATA_ENV = "GREENSIM_DATA_DIR"


def bundled(kind: str) -> Path:
    """The folder of bundled ``kind`` (``profiles``, ``experiments`` or ``traces``)."""
    if kind not in _KINDS:
        raise ValueError(f"bundled data kind {kind!r}: expected one of {_KINDS}")
    installed = _PACKAGE / f"_{kind}"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / kind


def shared_data_dir() -> Path:
    """The shared data folder (traces, carbon series, measured profiles).

    ``$GREENSIM_DATA_DIR`` if set, else ``../shared/data`` from the working directory, else
    ``../shared/data`` beside a source checkout.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    for base in (Path.cwd(), _PACKAGE.parent):
        p = base.parent / "shared" / "data"
        if p.is_dir():
            return p
    return _PACKAGE.parent.parent / "shared" / "data"
