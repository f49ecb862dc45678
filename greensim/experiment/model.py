"""The base of every experiment-file model: unknown keys are errors, values are frozen."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["StrictModel"]

_NUMBERS = (int, float)


def _numeric(annotation: Any) -> bool:
    """Whether a field holds a number: ``int``, ``float`` or an Optional/Union of them only."""
    if annotation in _NUMBERS:
        return True
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return typing.get_origin(annotation) is typing.Union and bool(args) and all(a in _NUMBERS for a in args)


class StrictModel(BaseModel):
    """Frozen pydantic model that forbids unknown keys and infinite or NaN numbers (a field that
    means something by infinity opts in with ``Field(allow_inf_nan=True)``), and a YAML
    true/false where a number is expected (pydantic would read it as 1/0)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_number(cls, data: Any) -> Any:
        """A yes/no value where a number is expected becomes its text, which then fails the
        field's own number check (so the message names the field)."""
        if isinstance(data, dict) and any(isinstance(v, bool) for v in data.values()):
            data = dict(data)
            for k, v in data.items():
                f = cls.model_fields.get(k) if isinstance(v, bool) and isinstance(k, str) else None
                if f is not None and _numeric(f.annotation):
                    data[k] = str(v).lower()
        return data
