"""Readable validation errors: the dotted field path, the bad value and the fix."""

from __future__ import annotations

import difflib
import typing
from typing import Any, List, Optional, Union

from pydantic import BaseModel, ValidationError
from typing_extensions import Annotated

__all__ = [
    "model_at",
    "tag_member",
    "unwrap_annotation",
    "TAGS",
    "format_validation_error",
    "visible",
    "invisible_note",
]


# ------------------------------------------------------------------ errors
def model_at(root: type, loc: tuple) -> Optional[type]:
    """The pydantic model class at a location path (for 'did you mean')."""
    cur: Any = root
    for part in loc:
        tagged = tag_member(cur, part)
        if tagged is not None:  # a discriminated union's tag appears in the path
            cur = tagged
            continue
        cur = unwrap_annotation(cur, part)
        if isinstance(part, int):
            continue
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            f = cur.model_fields.get(part)
            if f is None:
                return None
            cur = f.annotation
        elif typing.get_origin(cur) is dict:
            cur = typing.get_args(cur)[1]
        else:
            return None
    cur = unwrap_annotation(cur, None)
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def tag_member(tp: Any, part: Any) -> Optional[type]:
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is not Union:
        return None
    for m in typing.get_args(tp):
        for fname in ("dist", "kind", "process"):
            f = getattr(m, "model_fields", {}).get(fname)
            if f is not None and part in typing.get_args(f.annotation):
                return m
    return None


def union_tags(root: type, loc: tuple, disc: str) -> List[str]:
    """The values the discriminator ``disc`` may take in the tagged union at ``loc`` (empty if
    the location cannot be resolved)."""
    parent = model_at(root, loc[:-1]) if loc else None
    if parent is None or not isinstance(loc[-1], str) or loc[-1] not in parent.model_fields:
        return []
    tp = parent.model_fields[loc[-1]].annotation
    for _ in range(4):  # Optional[Annotated[Union[...], ...]]
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is Union and any(a is type(None) for a in typing.get_args(tp)):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = members[0] if len(members) == 1 else Union[tuple(members)]
        else:
            break
    tags: List[str] = []
    for m in typing.get_args(tp) if typing.get_origin(tp) is Union else ():
        f = getattr(m, "model_fields", {}).get(disc)
        if f is not None:
            tags += [str(a) for a in typing.get_args(f.annotation)]
    return tags


def unwrap_annotation(tp: Any, part: Any) -> Any:
    for _ in range(5):
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin is Union:
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        elif origin in (list, List) and isinstance(part, int):
            return typing.get_args(tp)[0]
        else:
            return tp
    return tp


TAGS = (
    "constant",
    "uniform",
    "lognormal",
    "empirical",
    "poisson",
    "trace",
    "synthetic",
    "gamma",
    "diurnal",
    "rate_series",
    "servegen",
    "fitted",
    "independent",
    "series",
)


def visible(s: str) -> str:
    """``s`` with invisible or non-printable characters escaped (``'ttft\u200b_s'``), so a key that
    differs from a valid one only by such a character does not look identical in a message."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in s)


def invisible_note(s: str) -> str:
    """A sentence naming the invisible characters in ``s`` (empty if none)."""
    bad = sorted({f"U+{ord(c):04X}" for c in s if not c.isprintable()})
    if not bad:
        return ""
    return f" The key contains invisible character(s) {', '.join(bad)} (shown escaped); retype it."


def format_validation_error(
    exc: ValidationError,
    where: str,
    root: Optional[type] = None,
    noun: str = "experiment",
    plain_value_errors: bool = False,
) -> str:
    """One line per validation error: dotted path, what is wrong, the fix. ``root`` is the
    validated model (default :class:`Experiment`), for the valid keys of an unknown one;
    with ``plain_value_errors`` a model validator's message stands alone (it names its fields)."""
    if root is None:
        from greensim.experiment.schema import Experiment

        root = Experiment
    lines = []
    for e in exc.errors():
        loc = tuple(e["loc"])
        # drop discriminator tags (a tag follows a field name; a field named like a tag, e.g.
        # lengths.fitted.trace, follows a tag and stays)
        # a last part named like a tag that is a field of its model stays (e.g. speculative.gamma)
        parent = model_at(root, loc[:-1]) if loc and loc[-1] in TAGS else None
        last_is_field = parent is not None and loc[-1] in parent.model_fields
        path = (
            ".".join(
                str(p)
                for i, p in enumerate(loc)
                if not (p in TAGS and not (last_is_field and i == len(loc) - 1) and (i == 0 or loc[i - 1] not in TAGS))
            )
            or "(top level)"
        )
        val = e.get("input")
        sval = repr(val) if not isinstance(val, dict) else "{...}"
        if len(sval) > 60:
            sval = sval[:57] + "..."
        if e["type"] == "extra_forbidden":
            parent = model_at(root, loc[:-1])
            valid = sorted(parent.model_fields) if parent else []
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            note = invisible_note(str(loc[-1]))
            lines.append(f"{visible(path)}: unknown key.{note}{hint} Valid keys here: {', '.join(valid)}.")
        elif e["type"] == "missing":
            lines.append(f"{path}: required field is missing. Add it.")
        elif e["type"] == "union_tag_invalid":
            lines.append(f"{path}: {e['msg']}. Set one of the listed kinds.")
        elif e["type"] == "union_tag_not_found":
            disc = str((e.get("ctx") or {}).get("discriminator", "kind")).strip("'")
            tags = union_tags(root, loc, disc)
            got = f" (got keys: {', '.join(map(str, val))})" if isinstance(val, dict) and val else ""
            which = f": one of {', '.join(tags)}" if tags else ""
            lines.append(f"{path}: says neither which form it is{got}. Add '{disc}'{which}.")
        elif e["type"] == "value_error" and plain_value_errors:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{msg}." if not loc else f"{path}: {msg}.")
        else:
            lines.append(f"{path}: {e['msg']} (got {sval}). Fix the value.")
    return f"{where}: invalid {noun} ({len(lines)} problem{'s' if len(lines) > 1 else ''}):\n  - " + "\n  - ".join(
        lines
    )
