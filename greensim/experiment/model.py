"""The base of every experiment-file model: unknown keys are errors, values are frozen."""
from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from typing_extensions import Annotated

from greensim.base.errors import ConfigError

__all__ = ['StrictModel']


class StrictModel(BaseModel):
    """Frozen pydantic model that forbids unknown keys."""
    model_config = ConfigDict(extra="forbid", frozen=True)
