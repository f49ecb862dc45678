"""The root of the experiment file, :class:`Experiment`, and its JSON Schema."""

from __future__ import annotations

from typing import Any, Dict, Optional

from pydantic import Field

from greensim.experiment.carbon import Carbon
from greensim.experiment.cluster import Cluster, Reconfigure
from greensim.experiment.model import StrictModel
from greensim.experiment.quantization import Quantization
from greensim.experiment.settings import SLO, CatalogDirs, Defer, Output, Performance, SimulationOpts
from greensim.experiment.workload import Workload

__all__ = ["Experiment", "json_schema"]


class Experiment(StrictModel):
    """One simulated experiment: the single description of a run."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="experiment name (folder-safe)")
    seed: int = Field(0, ge=0, description="root seed of every random stream")
    model: str = Field(description="model name from the catalogue, e.g. Llama-3.1-8B")
    quantization: Optional[Quantization] = Field(
        None,
        description="quantised weights / activations / KV cache of every instance group (an instance group's own "
        "quantization replaces it); default none: the catalogue dtype (fp16)",
    )
    workload: Workload
    cluster: Cluster
    slo: SLO
    defer: Defer = Field(
        default_factory=Defer, description="release of deferrable requests (slo.classes.*.deferrable): time shifting"
    )
    carbon: Carbon = Field(default_factory=Carbon)
    performance: Performance = Field(default_factory=Performance)
    output: Output = Field(default_factory=Output)
    catalog: CatalogDirs = Field(default_factory=CatalogDirs)
    simulation: SimulationOpts = Field(default_factory=SimulationOpts)
    reconfigure: Optional[Reconfigure] = Field(
        None, description="per-window reconfiguration among deployments (greensim replan); greensim run ignores it"
    )


def json_schema() -> Dict[str, Any]:
    """JSON Schema of the experiment format (for editors)."""
    return Experiment.model_json_schema()
