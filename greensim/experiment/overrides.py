"""Check dotted-path overrides against the experiment schema before anything runs.

``apply_overrides`` creates missing keys (so a whole section can be set from the command
line); this module then checks each override's dotted path against the pydantic models of
:class:`~greensim.experiment.schema.Experiment`, so that a typo such as ``workload.rate`` fails at
once with the override's path and the closest valid key, instead of surfacing later as
a pydantic error about a key the user never wrote, or (in a sweep) after runs started.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import yaml
from pydantic import BaseModel

from greensim.base.errors import ConfigError
from greensim.experiment.messages import invisible_note, unwrap_annotation, visible

__all__ = ["apply_overrides", "coerce_value", "override_keys", "check_override_key", "check_override_keys"]


def override_keys(overrides: Dict[str, Any] | List[str] | None) -> List[str]:
    """The dotted keys of ``{"a.b": v}`` or ``["a.b=v", ...]`` overrides, in order."""
    if not overrides:
        return []
    if isinstance(overrides, dict):
        return [str(k) for k in overrides]
    return [s.split("=", 1)[0].strip() for s in overrides if "=" in s]


def _strip(tp: Any) -> Any:
    """Remove Annotated and Optional wrappers (the config layer's unwrapping)."""
    return unwrap_annotation(tp, None)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _members(tp: Any, data: Any) -> Optional[List[type]]:
    """The model classes a value of type ``tp`` may be: one model, or the union members
    matching the tag (``kind``/``dist``) found in ``data``; None if ``tp`` is no model."""
    if _is_model(tp):
        return [tp]
    if typing.get_origin(tp) is not Union:
        return None
    models = [m for m in typing.get_args(tp) if _is_model(m)]
    if not models:
        return None
    if isinstance(data, dict):
        for tag in _tags(models):
            if tag in data:
                hit = [m for m in models if data[tag] in typing.get_args(m.model_fields[tag].annotation)]
                if hit:
                    return hit
    return models


def _tags(models: List[type]) -> List[str]:
    """Discriminator candidates: fields every member has, each typed as a Literal
    (``kind``, ``dist``, ``process``...), so new unions need no change here."""
    common = set.intersection(*(set(m.model_fields) for m in models))
    return sorted(n for n in common if all(typing.get_origin(m.model_fields[n].annotation) is Literal for m in models))


def _label(models: List[type], data: Any) -> str:
    if len(models) == 1 and isinstance(data, dict):
        for tag in _tags(models):
            if tag in data:
                return f" ({tag} {data[tag]})"
    return ""


def check_override_key(key: str, data: Dict[str, Any], root: type | None = None) -> None:
    """Raise :class:`ConfigError` unless ``key`` names a field of the experiment schema.

    Parameters
    ----------
    key : str
        Dotted path, e.g. ``"cluster.instances.0.gpu"``; list items by index.
    data : dict
        The experiment dict after the overrides were applied; it selects the member of
        each discriminated union (``workload.kind``, ``*.dist``, ``intensity.kind``).
    root : pydantic model class, optional
        Schema root; default :class:`~greensim.experiment.schema.Experiment`.

    Raises
    ------
    ConfigError
        Naming the override, the part that does not exist, the closest valid key and the
        valid keys at that level.
    """
    if root is None:
        from greensim.experiment.schema import Experiment

        root = Experiment
    parts = key.split(".")
    tp: Any = root
    cur: Any = data
    for i, part in enumerate(parts):
        here = ".".join(parts[:i])
        tp = _strip(tp)
        origin = typing.get_origin(tp)
        models = _members(tp, cur)
        if models is not None:
            fields: Dict[str, Any] = {}
            for m in models:
                for name, f in m.model_fields.items():
                    fields.setdefault(name, f.annotation)
            if part not in fields:
                valid = sorted(fields)
                # A prefix ('rate' -> 'rate_rps') is the commonest slip: a missing unit suffix.
                close = difflib.get_close_matches(part, valid, n=1) or [v for v in valid if v.startswith(part)][:1]
                hint = f" Did you mean '{'.'.join(parts[:i] + [close[0]])}'?" if close else ""
                where = f"'{here}'{_label(models, cur)}" if here else "the experiment"
                raise ConfigError(
                    f"override '{visible(key)}': {where} has no field '{visible(part)}'.{invisible_note(part)}{hint} "
                    f"Valid keys there: {', '.join(valid)}."
                )
            tp = fields[part]
            cur = cur.get(part) if isinstance(cur, dict) else None
        elif origin in (list, List, tuple, Tuple):
            try:
                idx = int(part)
            except ValueError:
                raise ConfigError(
                    f"override '{key}': '{here}' is a list; '{part}' is not an index. Use a number, e.g. '{here}.0'."
                ) from None
            tp = typing.get_args(tp)[0] if typing.get_args(tp) else Any
            cur = cur[idx] if isinstance(cur, list) and -len(cur) <= idx < len(cur) else None
        elif origin in (dict, Dict):
            tp = typing.get_args(tp)[1] if typing.get_args(tp) else Any
            cur = cur.get(part) if isinstance(cur, dict) else None
        elif tp is Any or origin is Union:
            return  # free-form value: anything below is the value's business
        else:
            name = getattr(tp, "__name__", str(tp))
            raise ConfigError(f"override '{key}': '{here}' is a value ({name}), not a section; set '{here}' itself.")


def check_override_keys(
    data: Dict[str, Any], overrides: Dict[str, Any] | List[str] | None, root: type | None = None
) -> None:
    """Check every override key (see :func:`check_override_key`); ``data`` has them applied."""
    for key in override_keys(overrides):
        check_override_key(key, data, root)


def coerce_value(v: str) -> Any:
    try:
        return yaml.safe_load(v)
    except yaml.YAMLError:
        return v


def apply_overrides(data: Dict[str, Any], overrides: Dict[str, Any] | List[str]) -> Dict[str, Any]:
    """Return a copy of ``data`` with dotted-path overrides applied.

    ``overrides`` is a mapping ``{"cluster.router": "join_shortest_queue"}`` or a list of
    ``"a.b=value"`` strings (values parsed as YAML). List items are addressed by index.
    """
    import copy

    out = copy.deepcopy(data)
    items = overrides.items() if isinstance(overrides, dict) else []
    if isinstance(overrides, list):
        parsed = []
        for s in overrides:
            if "=" not in s:
                raise ConfigError(f"--set {s!r}: expected KEY=VALUE, e.g. --set workload.rate_rps=3")
            k, v = s.split("=", 1)
            parsed.append((k.strip(), coerce_value(v)))
        items = parsed
    for key, value in items:
        parts = key.split(".")
        cur: Any = out
        for i, p in enumerate(parts[:-1]):
            if isinstance(cur, list):
                try:
                    cur = cur[int(p)]
                except (ValueError, IndexError):
                    raise ConfigError(
                        f"override {key!r}: '{p}' is not a valid index of "
                        f"{'.'.join(parts[:i]) or 'the list'} (length {len(cur)})."
                    ) from None
            else:
                cur = cur.setdefault(p, {})
                if not isinstance(cur, (dict, list)):
                    raise ConfigError(f"override {key!r}: '{'.'.join(parts[: i + 1])}' is a value, not a section.")
        last = parts[-1]
        if isinstance(cur, list):
            try:
                cur[int(last)] = value
            except (ValueError, IndexError):
                raise ConfigError(f"override {key!r}: '{last}' is not a valid list index.") from None
        else:
            cur[last] = value
    return out
