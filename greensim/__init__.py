"""greensim: discrete-event simulation of carbon-aware LLM serving on heterogeneous GPUs.

The public Python API (the same one the command line uses)::

    import greensim
    res = greensim.run("experiments/quickstart.yaml", overrides={"workload.rate_rps": 12})
    df = greensim.sweep("experiments/quickstart.yaml", grid={"workload.rate_rps": [4, 8, 12]})

Names are imported on first use, so ``import greensim`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from greensim.base.errors import ConfigError, GreensimError, ProfileError, SimulationInvariantError, TraceError
from greensim.base.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from greensim.api.run import Result, run
    from greensim.api.sweep import sweep
    from greensim.experiment.load import load_experiment
    from greensim.experiment.schema import Experiment
    from greensim.planning import plan

_LAZY = {
    "run": "greensim.api.run",
    "Result": "greensim.api.run",
    "sweep": "greensim.api.sweep",
    "Experiment": "greensim.experiment",
    "load_experiment": "greensim.experiment",
    "plan": "greensim.planning",
}

__all__ = [
    "run",
    "Result",
    "sweep",
    "plan",
    "Experiment",
    "load_experiment",
    "GreensimError",
    "ConfigError",
    "ProfileError",
    "TraceError",
    "SimulationInvariantError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'greensim' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
