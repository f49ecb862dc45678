"""The experiment file: one YAML document that describes a whole run.

Sections are frozen pydantic models, one module per section (:mod:`.workload`,
:mod:`.cluster`, :mod:`.carbon`, :mod:`.settings`, root :mod:`.schema`); :mod:`.load`
reads YAML, applies ``--set`` overrides (:mod:`.overrides`) and resolves relative paths;
:mod:`.messages` turns validation errors into one line naming the field and the fix.
"""

from greensim.experiment.load import load_experiment, load_yaml, parse_experiment
from greensim.experiment.overrides import apply_overrides, check_override_keys
from greensim.experiment.schema import Experiment, json_schema

__all__ = [
    "Experiment",
    "load_experiment",
    "load_yaml",
    "parse_experiment",
    "apply_overrides",
    "check_override_keys",
    "json_schema",
]
