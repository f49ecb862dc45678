"""The cited acceptance-rate table ``profiles/acceptance.yaml``: per draft/target pair and task.

``speculative.acceptance: <name>`` (and the planner's ``search.draft.acceptance``) selects an
entry instead of an explicit ``alpha``; :func:`acceptance_entry` looks one up and
:func:`entries_for_pair` lists the names that fit a draft/target pair. Derived entries come
from a reported mean tokens per verify step or accepted/drafted fraction through
:func:`alpha_from_tokens_per_step` / :func:`alpha_from_accepted_fraction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, List, Optional

import yaml

from greensim.base.paths import bundled

__all__ = [
    "AcceptanceEntry",
    "acceptance_entries",
    "acceptance_entry",
    "entries_for_pair",
    "alpha_from_tokens_per_step",
    "alpha_from_accepted_fraction",
]


@dataclass(frozen=True)
class AcceptanceEntry:
    """One row of the table: ``alpha`` for ``draft`` -> ``target`` on ``task`` ("*": any model)."""

    name: str
    draft: str
    target: str
    task: str
    alpha: float
    source: str
    derived: bool = False
    assumed: bool = False
    reported: Optional[Dict[str, Any]] = None
    note: str = ""

    def fits(self, draft: str, target: Optional[str] = None) -> bool:
        """Whether this entry applies to ``draft`` -> ``target`` (None: any target)."""

        def ok(mine: str, theirs: Optional[str]) -> bool:
            return theirs is None or mine == "*" or mine.lower() == theirs.lower()

        return ok(self.draft, draft) and ok(self.target, target)


@lru_cache(maxsize=1)
def acceptance_entries() -> Dict[str, AcceptanceEntry]:
    """All entries of ``profiles/acceptance.yaml``, by name."""
    data = yaml.safe_load((bundled("profiles") / "acceptance.yaml").read_text()) or {}
    out: Dict[str, AcceptanceEntry] = {}
    for name, e in data.items():
        a = float(e["alpha"])
        if not 0 <= a < 1:
            raise ValueError(f"profiles/acceptance.yaml: {name}.alpha {a} must be in [0, 1)")
        if not e.get("source"):
            raise ValueError(f"profiles/acceptance.yaml: {name} has no source")
        out[str(name)] = AcceptanceEntry(
            name=str(name),
            draft=str(e["draft"]),
            target=str(e["target"]),
            task=str(e.get("task", "")),
            alpha=a,
            source=" ".join(str(e["source"]).split()),
            derived=bool(e.get("derived", False)),
            assumed=bool(e.get("assumed", False)),
            reported=e.get("reported"),
            note=" ".join(str(e.get("note", "")).split()),
        )
    return out


def entries_for_pair(draft: str, target: Optional[str] = None) -> List[str]:
    """Names of the entries for ``draft`` (and ``target`` when given), measured ones first."""
    es = [e for e in acceptance_entries().values() if e.fits(draft, target)]
    return [e.name for e in sorted(es, key=lambda e: (e.assumed, e.name))]


def acceptance_entry(name: str, draft: str, target: Optional[str] = None) -> AcceptanceEntry:
    """The entry ``name``; ValueError (naming the valid entries for the pair) if it is unknown or
    was measured for another draft (or, with ``target``, another target)."""
    es = acceptance_entries()
    valid = ", ".join(entries_for_pair(draft, target)) or "none"
    pair = f"{draft} -> {target}" if target else f"draft {draft}"
    if name not in es:
        raise ValueError(f"unknown acceptance entry '{name}' (entries for {pair}: {valid}; all: {', '.join(es)})")
    e = es[name]
    if not e.fits(draft, target):
        raise ValueError(
            f"acceptance entry '{name}' was measured for {e.draft} -> {e.target}, not {pair} "
            f"(entries for {pair}: {valid}); or set alpha"
        )
    return e


def _solve(f, lo: float = 0.0, hi: float = 1.0 - 1e-12) -> float:
    """Root of the increasing function ``f`` on [lo, hi] by bisection."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def alpha_from_tokens_per_step(tokens_per_step: float, gamma: int) -> float:
    """alpha with ``(1 - a^(g+1)) / (1 - a) = tokens_per_step`` (mean tokens per verify step,
    bonus token included, fixed draft length ``gamma``)."""
    if not 1 <= tokens_per_step < gamma + 1:
        raise ValueError(f"tokens per step {tokens_per_step} must be in [1, gamma + 1 = {gamma + 1})")
    return _solve(lambda a: sum(a**k for k in range(gamma + 1)) - tokens_per_step)


def alpha_from_accepted_fraction(fraction: float, gamma: int) -> float:
    """alpha with ``a (1 - a^g) / ((1 - a) g) = fraction`` (accepted / drafted draft tokens)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"accepted fraction {fraction} must be in [0, 1)")
    return _solve(lambda a: sum(a**k for k in range(1, gamma + 1)) / gamma - fraction)
