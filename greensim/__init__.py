"""greensim: discrete-event simulation of carbon-aware LLM serving on heterogeneous GPUs."""
from .config import Experiment, load_experiment
from .errors import ConfigError, GreensimError, ProfileError, SimulationInvariantError, TraceError
from .runner import Result, run
from .sweeps import sweep

__version__ = "0.1.0"

__all__ = ["run", "Result", "Experiment", "load_experiment", "GreensimError", "ConfigError",
           "ProfileError", "TraceError", "SimulationInvariantError", "__version__", "sweep"]
