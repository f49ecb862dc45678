"""The root of the experiment file, :class:`Experiment`, and its JSON Schema."""
from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from typing_extensions import Annotated

from greensim.base.errors import ConfigError
from greensim.experiment.model import StrictModel
from greensim.experiment.workload import *  # noqa: F403
from greensim.experiment.cluster import *  # noqa: F403
from greensim.experiment.carbon import *  # noqa: F403
from greensim.experiment.settings import *  # noqa: F403

__all__ = ['Experiment', 'json_schema']


class Experiment(StrictModel):
    """One simulated experiment: the single description of a run."""
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="experiment name (folder-safe)")
    seed: int = Field(0, ge=0, description="root seed of every random stream")
    model: str = Field(description="model name from the catalogue, e.g. Llama-3.1-8B")
    workload: Workload
    cluster: Cluster
    slo: SLO
    carbon: Carbon = Field(default_factory=Carbon)
    performance: Performance = Field(default_factory=Performance)
    output: Output = Field(default_factory=Output)
    catalog: CatalogDirs = Field(default_factory=CatalogDirs)
    simulation: SimulationOpts = Field(default_factory=SimulationOpts)
    reconfigure: Optional[Reconfigure] = Field(None, description="per-window reconfiguration among deployments "
                                               "(greensim replan); greensim run ignores it")




def json_schema() -> Dict[str, Any]:
    """JSON Schema of the experiment format (for editors)."""
    return Experiment.model_json_schema()
