"""The README's lists match the code (issue 18): routers and decode routers against the registries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from greensim.policies import DECODE_ROUTERS, ROUTERS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _block(marker: str) -> str:
    m = re.search(rf"<!-- {marker}: begin[^>]*-->(.*?)<!-- {marker}: end -->", README, re.S)
    assert m, f"README has no '<!-- {marker}: begin -->' ... '<!-- {marker}: end -->' block"
    return m.group(1)


def _builtins(reg) -> set:
    return {n for n in reg.names() if getattr(reg.get(n), "__module__", "").startswith("greensim.")}


@pytest.mark.parametrize(
    "marker, reg, pattern",
    [("routers", ROUTERS, r"^\| `([a-z0-9_]+)` \|"), ("decode routers", DECODE_ROUTERS, r"`([a-z0-9_]+)`")],
)
def test_readme_lists_every_builtin_router(marker, reg, pattern):
    listed = re.findall(pattern, _block(marker), re.M)
    assert len(listed) == len(set(listed))
    assert set(listed) == _builtins(reg)
