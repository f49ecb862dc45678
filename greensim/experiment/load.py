"""Load an experiment file: YAML, overrides, validation and relative paths.

Precedence: model defaults < YAML file < ``--set key=value`` overrides. Every error
names the dotted field path, the bad value and the fix; unknown keys suggest the
closest valid key."""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List

import yaml
from pydantic import ValidationError

from greensim.base.errors import ConfigError
from greensim.experiment.carbon import DEFAULT_SITE, SeriesIntensity
from greensim.experiment.messages import format_validation_error
from greensim.experiment.overrides import apply_overrides
from greensim.experiment.schema import Experiment
from greensim.experiment.workload import (
    EmpiricalLength,
    IndependentLengths,
    ServeGenArrivals,
    SyntheticWorkload,
    TraceWorkload,
)

__all__ = [
    "load_experiment",
    "parse_experiment",
    "load_yaml",
    "resolve_paths",
    "check_sites",
    "to_experiment",
    "config_hash",
    "safe_load_unique",
    "DuplicateKeyError",
    "read_text_file",
]


class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping names the same key twice (PyYAML silently keeps the last one)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line} (first set at line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: Dict[Any, int] = {}
            for k_node, _ in node.value:
                if k_node.tag == "tag:yaml.org,2002:merge":
                    continue
                try:
                    key = self.construct_object(k_node, deep=True)
                    hash(key)
                except Exception:
                    continue
                line = k_node.start_mark.line + 1
                if key in seen:
                    raise DuplicateKeyError(key, line, seen[key])
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def safe_load_unique(text: str) -> Any:
    """``yaml.safe_load`` that rejects duplicate keys in a mapping (raises :class:`DuplicateKeyError`)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def read_text_file(p: Path, what: str) -> str:
    """The text of ``p``; a clear ConfigError for a folder, an unreadable or a non-UTF-8 (binary) file."""
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, not {what}. Give the path of the file itself.")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: is not a UTF-8 text file (undecodable byte at offset {exc.start}); is it a binary file? "
            f"Give {what} (YAML text)."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read ({exc.strerror or exc}). Check the path and its permissions.") from None


# ------------------------------------------------------------------ loading
def parse_experiment(data: Any, where: str = "experiment", base_dir: Path | None = None) -> Experiment:
    """Validate a dict into an :class:`Experiment`; relative paths resolve against base_dir."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: the experiment must be a YAML mapping of keys to values, got {type(data).__name__}."
        )
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, where)) from None
    check_sites(exp, where)
    if base_dir is not None:
        exp = resolve_paths(exp, base_dir)
    return exp


def check_sites(exp: Experiment, where: str) -> None:
    """Every instance group's site is defined in carbon.sites; 'default' is reserved."""
    if DEFAULT_SITE in exp.carbon.sites:
        raise ConfigError(
            f"{where}: carbon.sites.{DEFAULT_SITE}: the name '{DEFAULT_SITE}' is reserved for groups "
            f"without a site (they use carbon.pue). Rename the site or set carbon.pue."
        )
    for i, g in enumerate(exp.cluster.instances):
        if g.site is not None and g.site not in exp.carbon.sites:
            close = difflib.get_close_matches(g.site, list(exp.carbon.sites), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            have = ", ".join(sorted(exp.carbon.sites)) or "none"
            raise ConfigError(
                f"{where}: cluster.instances.{i}.site: unknown site '{g.site}' (carbon.sites "
                f"defines: {have}).{hint} Add carbon.sites.{g.site}: {{pue: ...}} or fix the name."
            )
    timed = sorted(n for n, s in exp.carbon.sites.items() if s.rtt_s is not None)
    if timed:
        for i, g in enumerate(exp.cluster.instances):
            if g.site is None:
                raise ConfigError(
                    f"{where}: cluster.instances.{i}.site: carbon.sites.{timed[0]} sets rtt_s (network "
                    f"round trip), so every instance group needs a site with rtt_s; this group has no "
                    f"site (it would pay no network delay). Add site: NAME."
                )
            if exp.carbon.sites[g.site].rtt_s is None:
                raise ConfigError(
                    f"{where}: carbon.sites.{g.site}.rtt_s: required because carbon.sites.{timed[0]} "
                    f"sets rtt_s and cluster.instances.{i} runs at site '{g.site}' (requests to it "
                    f"would pay no network delay). Add rtt_s [s]."
                )


def resolve_paths(exp: Experiment, base: Path) -> Experiment:
    def fix(p: str) -> str:
        pp = Path(p).expanduser()
        return str(pp if pp.is_absolute() else (base / pp).resolve())

    wl = exp.workload
    if isinstance(wl, TraceWorkload):
        wl = wl.model_copy(update={k: fix(getattr(wl, k)) for k in ("path", "data_dir") if getattr(wl, k)})
        if isinstance(wl.arrivals, ServeGenArrivals) and wl.arrivals.path:
            wl = wl.model_copy(update={"arrivals": wl.arrivals.model_copy(update={"path": fix(wl.arrivals.path)})})
    elif isinstance(wl, SyntheticWorkload):
        upd = {}
        if isinstance(wl.arrivals, ServeGenArrivals) and wl.arrivals.path:
            upd["arrivals"] = wl.arrivals.model_copy(update={"path": fix(wl.arrivals.path)})
        if isinstance(wl.lengths, IndependentLengths):
            lupd = {
                k: getattr(wl.lengths, k).model_copy(update={"path": fix(getattr(wl.lengths, k).path)})
                for k in ("input_tokens", "output_tokens")
                if isinstance(getattr(wl.lengths, k), EmpiricalLength)
            }
            upd["lengths"] = wl.lengths.model_copy(update=lupd)
        wl = wl.model_copy(update=upd)
    else:
        upd = {}
        for k in ("input_tokens", "output_tokens"):
            d = getattr(wl, k)
            if isinstance(d, EmpiricalLength):
                upd[k] = d.model_copy(update={"path": fix(d.path)})
        wl = wl.model_copy(update=upd)
    ci = exp.carbon.intensity
    if isinstance(ci, SeriesIntensity) and ci.path is not None:
        exp = exp.model_copy(
            update={"carbon": exp.carbon.model_copy(update={"intensity": ci.model_copy(update={"path": fix(ci.path)})})}
        )
    sites = {
        n: s.model_copy(update={"intensity": s.intensity.model_copy(update={"path": fix(s.intensity.path)})})
        if isinstance(s.intensity, SeriesIntensity) and s.intensity.path is not None
        else s
        for n, s in exp.carbon.sites.items()
    }
    if sites != dict(exp.carbon.sites):
        exp = exp.model_copy(update={"carbon": exp.carbon.model_copy(update={"sites": sites})})
    cat = exp.catalog.model_copy(
        update={
            "gpu_dirs": [fix(d) for d in exp.catalog.gpu_dirs],
            "model_dirs": [fix(d) for d in exp.catalog.model_dirs],
        }
    )
    perf = exp.performance.model_copy(update={"profile_dirs": [fix(d) for d in exp.performance.profile_dirs]})
    return exp.model_copy(update={"workload": wl, "catalog": cat, "performance": perf})


def load_yaml(path: str | Path) -> Dict[str, Any]:
    """Read an experiment YAML file into a dict with clear errors."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{path}: is a folder, not an experiment file. Give the path of a .yaml file.")
    if not p.is_file():
        raise ConfigError(
            f"{path}: no such experiment file. Check the path "
            f"(run `greensim run` with no argument for the bundled quickstart)."
        )
    text = read_text_file(p, "an experiment file")
    try:
        data = safe_load_unique(text)
    except DuplicateKeyError as exc:
        raise ConfigError(
            f"{path}: duplicate key {exc.key!r} at line {exc.line} (already set at line {exc.first_line}); "
            f"YAML would silently keep only the last one. Remove one of them."
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{at}: {problem}. Fix the indentation or quoting there.") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty. Start from experiments/quickstart.yaml.")
    return data


def load_experiment(path: str | Path, overrides: Dict[str, Any] | List[str] | None = None) -> Experiment:
    """Load, override and validate an experiment file."""
    data = load_yaml(path)
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the experiment must be a YAML mapping.")
        data = apply_overrides(data, overrides)
        from greensim.experiment.overrides import check_override_keys  # unknown override keys fail here, naming the key

        check_override_keys(data, overrides)
    return parse_experiment(data, where=str(path), base_dir=Path(path).resolve().parent)


def config_hash(exp: Experiment) -> str:
    """SHA-256 of the resolved experiment (its results folder is named by the first 8 digits)."""
    blob = json.dumps(exp.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def to_experiment(experiment: Any, overrides: Any = None) -> Experiment:
    """An :class:`Experiment` from a path, a dict or an Experiment, with ``overrides`` applied."""
    from greensim.experiment.overrides import check_override_keys

    if isinstance(experiment, Experiment):
        if overrides:
            data = apply_overrides(experiment.model_dump(mode="json"), overrides)
            check_override_keys(data, overrides)
            return parse_experiment(data)
        return experiment
    if isinstance(experiment, dict):
        data = apply_overrides(experiment, overrides or {})
        check_override_keys(data, overrides)
        return parse_experiment(data)
    return load_experiment(experiment, overrides)
