"""The base of every experiment-file model: unknown keys are errors, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Frozen pydantic model that forbids unknown keys and infinite or NaN numbers (a field that
    means something by infinity opts in with ``Field(allow_inf_nan=True)``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
