"""Reading the bundled YAML data files (catalogue, calibrations, bands) fast and once.

Every run reads several of ``profiles/*.yaml`` (a quickstart run with band corners parsed
eleven files, ~0.1 s of CPU with PyYAML's pure-Python parser); a sweep or a planner search
read them again for every point. :func:`load_yaml_file` parses a file's text once per process
(keyed by the text, so an edited file is parsed again) with libyaml's C parser where PyYAML
has it, and returns a fresh deep copy, so callers may change what they get.

The C parser feeds the same :class:`yaml.SafeLoader` constructor and resolver as
``yaml.safe_load``, so values and their types are the same. Users' own experiment files keep
the pure-Python loader (:mod:`greensim.experiment.load`), whose error messages are tested.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

__all__ = ["safe_load_fast", "load_yaml_file", "parse_yaml_cached"]

_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load_fast(text: str) -> Any:
    """``yaml.safe_load(text)``, with libyaml's C parser where available."""
    return yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - CSafeLoader / SafeLoader


@functools.lru_cache(maxsize=64)
def parse_yaml_cached(text: str) -> Any:
    """:func:`safe_load_fast` of ``text``, remembered; never change what it returns (deep-copy it)."""
    return safe_load_fast(text)


def load_yaml_file(path: str | Path) -> Any:
    """The parsed content of the YAML file ``path`` (a fresh copy; parsed once per file text)."""
    return copy.deepcopy(parse_yaml_cached(Path(path).read_text()))
