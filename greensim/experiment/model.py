"""The base of every experiment-file model: unknown keys are errors, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Frozen pydantic model that forbids unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)
