"""Parameter sweeps: many runs of one experiment, one table row per run.

:func:`sweep` expands a grid of dotted-path overrides (times replicate seeds) into
resolved experiments, checks all of them before anything runs, skips the ones already
in the cache, runs the rest on a backend (:mod:`greensim.api.backends`: local processes or
a Dask cluster) and returns a :class:`pandas.DataFrame` with the swept inputs and every
summary metric as columns (with ``performance.uncertainty: corners``, the default, also
``<metric>_low`` / ``<metric>_high`` band columns of the headline metrics). A run that fails
becomes a row holding its error.

Determinism: each run's seed is derived from the base experiment's seed, the run's
swept values and its replicate number (a hash, not the run's position), so adding a
value to an axis never changes the other runs' numbers, and the same sweep gives the
same numbers on every backend. The engine is deterministic given the seed.

Cache (:mod:`greensim.api.cache`): one small JSON file per run under ``cache_dir`` (default
``$GREENSIM_CACHE_DIR``, else the platform's user cache folder, ``~/.cache/greensim`` on
Linux; least recently used runs are dropped beyond ``cache_max_mb``, default 512 MB), named by the SHA-256 of the resolved experiment (less its ``output`` section and
progress flag; ``performance.uncertainty`` included, so a run with bands and one without
never share an entry), the greensim version, a fingerprint of greensim's own source and shipped
profiles, and the size and mtime of any trace file the run reads. Files under
``catalog.gpu_dirs``/``model_dirs`` are not fingerprinted: clear the cache
(delete the folder) or pass ``cache=False`` after editing them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pandas as pd

from greensim.api.backends import make_backend
from greensim.api.cache import RunCache, default_cache_dir
from greensim.base.errors import ConfigError
from greensim.base.version import code_fingerprint
from greensim.experiment.load import parse_experiment
from greensim.experiment.overrides import apply_overrides, check_override_keys
from greensim.experiment.schema import Experiment
from greensim.experiment.workload import TraceWorkload
from greensim.results.bands import band_columns

__all__ = [
    "sweep",
    "expand_grid",
    "derive_seed",
    "cache_key",
    "default_cache_dir",
    "SweepError",
    "STATUS_OK",
    "STATUS_ERROR",
    "load_grid",
]

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_ERROR = "error"

# Columns every sweep table has besides the swept keys and the summary metrics.
META_COLUMNS = ("replicate", "seed", "status", "error", "cached", "wall_s", "run_key")


class SweepError(ConfigError):
    """The sweep itself is malformed (grid, seeds); raised before any run starts."""


# ------------------------------------------------------------------ grid and seeds
def expand_grid(grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | None) -> List[Dict[str, Any]]:
    """The list of override dicts a grid describes.

    Parameters
    ----------
    grid : dict or list of dict or None
        ``{"dotted.key": [v1, v2, ...], ...}``: the Cartesian product of the axes, last
        axis fastest; or a list of override dicts, one per point (for non-grid designs);
        or None for the base experiment alone.

    Raises
    ------
    SweepError
        An axis that is empty or not a list, or a point that is not a mapping.
    """
    if grid is None:
        return [{}]
    if isinstance(grid, Mapping):
        axes = []
        for key, values in grid.items():
            if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
                raise SweepError(
                    f"grid.{key}: expected a list of values, got {values!r}. Write [{values!r}] for a single value."
                )
            if len(values) == 0:
                raise SweepError(
                    f"grid.{key}: the axis is empty, so the sweep would have no runs. "
                    f"Give at least one value, or remove the axis."
                )
            axes.append((str(key), list(values)))
        return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]
    if isinstance(grid, Sequence) and not isinstance(grid, (str, bytes)):
        if len(grid) == 0:
            raise SweepError("grid: the list of points is empty. Give at least one override dict.")
        for i, p in enumerate(grid):
            if not isinstance(p, Mapping):
                raise SweepError(f"grid[{i}]: expected a mapping of dotted keys to values, got {p!r}.")
        return [dict(p) for p in grid]
    if grid is None:
        raise SweepError(
            "grid: is empty, so the sweep would have no runs. Give a mapping of dotted keys to lists of values, "
            "e.g. 'grid: {workload.rate_rps: [2, 4, 8]}'."
        )
    raise SweepError(
        f"grid: expected a mapping of dotted keys to lists, or a list of override dicts; got {type(grid).__name__}."
    )


def _replicates(seeds: int | Sequence[int]) -> List[int]:
    if isinstance(seeds, bool):
        raise SweepError(f"seeds: expected a count or a list of replicate numbers, got {seeds!r}.")
    if isinstance(seeds, int):
        if seeds < 1:
            raise SweepError(f"seeds: the number of replicates must be >= 1, got {seeds}.")
        return list(range(seeds))
    reps = list(seeds)
    if not reps:
        raise SweepError("seeds: the list of replicates is empty. Give at least one, e.g. seeds=[0].")
    if any(isinstance(r, bool) or not isinstance(r, int) or r < 0 for r in reps) or len(set(reps)) != len(reps):
        raise SweepError(f"seeds: replicates must be distinct non-negative integers, got {reps!r}.")
    return reps


def _canonical(x: Any) -> str:
    return json.dumps(x, sort_keys=True, separators=(",", ":"), default=str)


def derive_seed(base_seed: int, params: Mapping[str, Any], replicate: int, common: bool = False) -> int:
    """A run's seed from the base seed, its swept values and its replicate number.

    Parameters
    ----------
    base_seed : int
        The base experiment's ``seed``.
    params : dict
        The run's overrides (dotted key -> value); order does not matter.
    replicate : int
        Replicate number (0, 1, ...).
    common : bool
        Common random numbers: ignore ``params``, so every grid point of one replicate
        sees the same arrivals and lengths (lower variance when comparing configurations).

    Returns
    -------
    int
        A seed in [0, 2**63), the first 63 bits of SHA-256 of the canonical JSON of the inputs.
    """
    blob = _canonical(
        {"base_seed": int(base_seed), "params": {} if common else dict(params), "replicate": int(replicate)}
    )
    return int(hashlib.sha256(blob.encode()).hexdigest()[:16], 16) >> 1


# ------------------------------------------------------------------ cache
def _files_read(exp: Experiment) -> List[str]:
    """Paths of data files the workload names directly (a trace, empirical length columns)."""
    wl = exp.workload
    found = [getattr(wl, "path", None) if isinstance(wl, TraceWorkload) else None]
    found += [getattr(getattr(wl, k, None), "path", None) for k in ("input_tokens", "output_tokens")]
    return [p for p in found if isinstance(p, str)]


def cache_key(exp: Experiment) -> str:
    """Hex SHA-256 identifying a run's results (see the module docstring for what it covers)."""
    from greensim.base.version import __version__

    data = exp.model_dump(mode="json")
    data.pop("output", None)  # where and how results are written
    data.get("simulation", {}).pop("progress", None)
    files = []
    for f in _files_read(exp):
        try:
            st = os.stat(f)
            files.append([f, st.st_size, st.st_mtime_ns])
        except OSError:
            files.append([f, None, None])  # the run will fail and is not cached
    blob = _canonical({"experiment": data, "version": __version__, "code": code_fingerprint(), "files": files})
    return hashlib.sha256(blob.encode()).hexdigest()


# ------------------------------------------------------------------ one run (in a worker)
def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        return x.item()
    return x


def _execute(data: Dict[str, Any]) -> Dict[str, Any]:
    """Run one resolved experiment (a JSON-able dict); never raises for a failing run."""
    from greensim.assembly.prepare import prepare
    from greensim.assembly.simulate import simulate
    from greensim.assembly.uncertainty import add_bands

    t0 = time.perf_counter()
    try:
        exp = parse_experiment(data, where=f"run {data.get('name')}")
        if exp.output.iterations:  # a sweep keeps summaries only: no per-iteration export to build
            exp = exp.model_copy(update={"output": exp.output.model_copy(update={"iterations": False})})
        tables = simulate(prepare(exp))
        add_bands(tables.summary, exp)  # performance.uncertainty: corners -> the band corners' runs too
        summary = _plain(tables.summary)
        error = None
    # A sweep isolates runs: one run's failure (a model that does not fit a GPU, a bug)
    # is recorded in its row with its type and message, and the other runs go on.
    except Exception as exc:  # noqa: BLE001
        summary, error = None, f"{type(exc).__name__}: {exc}"
    return {"summary": summary, "error": error, "wall_s": time.perf_counter() - t0}


# ------------------------------------------------------------------ table
def _flatten(summary: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in summary.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (list, tuple)):
            out[f"{prefix}{k}"] = _canonical(v)
        else:
            out[f"{prefix}{k}"] = v
    return out


def _cell(v: Any) -> Any:
    """A swept value as a table cell: scalars as they are, sections as canonical JSON."""
    return _canonical(v) if isinstance(v, (Mapping, list, tuple)) else v


def _resolve_base(base: Any, overrides: Any) -> Experiment:
    from greensim.api.run import default_experiment_path, to_experiment

    return to_experiment(default_experiment_path() if base is None else base, overrides)


def sweep(
    base: Any = None,
    grid: Any = None,
    seeds: int | Sequence[int] = 1,
    *,
    overrides: Any = None,
    backend: Any = "local",
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    scheduler_file: Optional[str] = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    cache_max_mb: Optional[float] = None,
    progress: bool = True,
    common_random_numbers: bool = False,
    timeout_s: float = 10.0,
) -> pd.DataFrame:
    """Run an experiment over a grid of overrides and replicate seeds; one row per run.

    Parameters
    ----------
    base : str or Path or dict or Experiment, optional
        The base experiment (YAML path, dict or :class:`Experiment`); default the
        bundled quickstart.
    grid : dict or list of dict, optional
        ``{"dotted.key": [values...]}`` (Cartesian product) or a list of override dicts.
        Keys are checked against the schema before any run starts.
    seeds : int or list of int
        Number of replicates per grid point (default 1), or the replicate numbers.
        Each run's seed is :func:`derive_seed` of the base seed, the point and the
        replicate. A grid that sweeps ``seed`` itself uses those seeds as given.
    overrides : dict or list of str, optional
        Applied to the base before the grid (as in :func:`greensim.run`).
    backend : {"local", "dask"} or backend object or distributed.Client
        Where runs execute (:mod:`greensim.api.backends`).
    workers : int, optional
        Local worker processes; default all cores (``local`` only).
    scheduler, scheduler_file : str, optional
        Dask scheduler address (``tcp://host:8786``) or scheduler file (``dask`` only).
    cache : bool
        Read and write the run cache.
    cache_dir : str or Path, optional
        Cache folder; default :func:`default_cache_dir`.
    cache_max_mb : float, optional
        Size limit of the cache folder [MB]: after the sweep, least recently used runs are
        deleted until it fits; default ``$GREENSIM_CACHE_MAX_MB`` or 512.
    progress : bool
        Show a progress bar over runs (tqdm).
    common_random_numbers : bool
        Give every grid point of a replicate the same seed (see :func:`derive_seed`).
    timeout_s : float
        Dask connection timeout [s].

    Returns
    -------
    pandas.DataFrame
        One row per run, in grid order (replicates innermost): the swept keys (sections
        as JSON text), ``replicate``, ``seed``, ``status`` ("ok" or "error"), ``error``
        (type and message, or None), ``cached``, ``wall_s`` (simulation wall time of the
        run when it was computed [s], band corners included), ``run_key`` (cache key), then
        every summary metric (nested ones flattened as ``a.b``; NaN in failed rows), the
        nominal run's; ``uncertainty`` ("corners" or "none") and, with
        ``performance.uncertainty: corners`` (the default), ``<metric>_low`` and
        ``<metric>_high`` for every headline metric
        (:data:`greensim.results.bands.HEADLINE_METRICS`): min and max over the nominal run
        and the two ``performance.band`` corners at the same seed. Set
        ``overrides={"performance.uncertainty": "none"}`` for the nominal runs only (3x faster).
        ``DataFrame.attrs`` holds the base name, grid and seeds.

    Raises
    ------
    ConfigError
        Before any run: an unknown override key or grid axis (naming it and the closest
        valid key), an empty axis, bad seeds, or a point whose experiment is invalid.
    BackendError
        Before any run: an unknown backend, or a Dask scheduler that does not answer.

    Examples
    --------
    >>> df = greensim.sweep("experiments/quickstart.yaml",
    ...                     grid={"workload.rate_rps": [4, 8], "cluster.router": ["round_robin"]},
    ...                     seeds=2)  # doctest: +SKIP
    """
    base_exp = _resolve_base(base, overrides)
    base_data = base_exp.model_dump(mode="json")  # defaults filled: every field is overridable
    points = expand_grid(grid)
    reps = _replicates(seeds)
    if len(reps) > 1 and any("seed" in p for p in points):
        raise SweepError(
            "seeds: the grid sweeps 'seed' directly, so replicate seeds would be ignored. "
            "Drop seeds= (or drop 'seed' from the grid)."
        )
    runs = []  # (point, replicate, seed, experiment dict, key)
    for point in points:
        data = apply_overrides(base_data, point)
        check_override_keys(data, point)
        label = ", ".join(f"{k}={v!r}" for k, v in point.items()) or "base"
        for r in reps:
            seed = (
                int(point["seed"]) if "seed" in point else derive_seed(base_exp.seed, point, r, common_random_numbers)
            )
            d = dict(data, seed=seed)
            exp = parse_experiment(d, where=f"sweep point ({label})")
            runs.append((point, r, seed, exp.model_dump(mode="json"), cache_key(exp)))
    if cache_max_mb is not None and not (0 < cache_max_mb < math.inf):
        raise SweepError(f"cache_max_mb: {cache_max_mb!r}; it must be a positive number of megabytes.")
    store = RunCache(cache_dir, None if cache_max_mb is None else int(cache_max_mb * 1e6)) if cache else None
    results: List[Optional[Dict[str, Any]]] = [None] * len(runs)
    cached = [False] * len(runs)
    if store is not None:
        for i, run in enumerate(runs):
            hit = store.get(run[4])
            if hit is not None:
                results[i] = {"summary": hit["summary"], "error": None, "wall_s": hit.get("wall_s", math.nan)}
                cached[i] = True
    todo = [i for i in range(len(runs)) if results[i] is None]
    log.info(
        "sweep %s: %d runs (%d points x %d replicates), %d from the cache",
        base_exp.name,
        len(runs),
        len(points),
        len(reps),
        len(runs) - len(todo),
    )
    if todo:
        be = make_backend(
            backend, workers=workers, scheduler=scheduler, scheduler_file=scheduler_file, timeout_s=timeout_s
        )
        from tqdm import tqdm

        bar = tqdm(
            total=len(runs),
            initial=len(runs) - len(todo),
            unit="run",
            desc=base_exp.name,
            disable=not progress,
            leave=True,
        )
        try:
            for j, out in be.map_unordered(_execute, [runs[i][3] for i in todo]):
                i = todo[j]
                results[i] = out
                if store is not None and out["error"] is None:
                    store.put(runs[i][4], out["summary"], out["wall_s"])
                bar.update(1)
        finally:
            bar.close()
            if be is not backend:
                be.close()
    if store is not None:
        n_pruned = store.prune()
        if n_pruned:
            log.info(
                "run cache %s: dropped %d least recently used runs (limit %.0f MB)",
                store.folder,
                n_pruned,
                store.max_bytes / 1e6,
            )
    rows = []
    for (point, r, seed, _d, key), res, was_cached in zip(runs, results, cached):
        assert res is not None  # every run was cached or has just run
        row = {k: _cell(v) for k, v in point.items() if k != "seed"}
        row.update(
            replicate=r,
            seed=seed,
            status=STATUS_OK if res["error"] is None else STATUS_ERROR,
            error=res["error"],
            cached=was_cached,
            wall_s=res["wall_s"],
            run_key=key,
        )
        if res["summary"] is not None:
            summ = res["summary"]
            flat = _flatten({k: v for k, v in summ.items() if k not in ("bands", "uncertainty")})
            row.update({k: v for k, v in flat.items() if k not in row})
            row["uncertainty"] = (summ.get("uncertainty") or {}).get("method", "none")
            row.update(band_columns(summ))  # <metric>_low / <metric>_high (performance.uncertainty: corners)
        rows.append(row)
    df = pd.DataFrame(rows)
    n_err = int((df["status"] == STATUS_ERROR).sum())
    if n_err:
        log.warning("%d of %d runs failed; see the 'error' column.", n_err, len(df))
    df.attrs.update(base=base_exp.name, grid=_canonical(grid), seeds=reps)
    return df


def load_grid(path: str | Path) -> Dict[str, Any]:
    """Read a grid file: ``{grid: {key: [values]}, seeds: N}`` or a plain ``{key: [values]}``.

    Returns
    -------
    dict
        ``{"grid": ..., "seeds": ...}`` (seeds default 1), ready for :func:`sweep`.

    Raises
    ------
    SweepError
        Missing or malformed file, or unknown top-level keys.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SweepError(
            f"--grid {path}: no such file. Write a YAML mapping, e.g. 'grid: {{workload.rate_rps: [2, 4, 8]}}'."
        )
    from greensim.experiment.load import DuplicateKeyError, read_text_file, safe_load_unique

    try:
        data = safe_load_unique(read_text_file(p, "a sweep grid file"))
    except DuplicateKeyError as exc:
        raise SweepError(
            f"--grid {path}: duplicate key {exc.key!r} at line {exc.line} (already set at line {exc.first_line}); "
            f"YAML would keep only the last one. Remove one of them."
        ) from None
    except yaml.YAMLError as exc:
        raise SweepError(f"--grid {path}: malformed YAML ({str(exc).splitlines()[0]}). Fix the file.") from None
    if data is None:
        raise SweepError(
            f"--grid {path}: the file is empty. Write a YAML mapping, e.g. 'grid: {{workload.rate_rps: [2, 4, 8]}}'."
        )
    if isinstance(data, Mapping) and "grid" in data:
        extra = sorted(set(data) - {"grid", "seeds", "common_random_numbers"})
        if extra:
            raise SweepError(
                f"--grid {path}: unknown top-level key(s) {extra}; valid: grid, seeds, common_random_numbers."
            )
        if data["grid"] is None:
            raise SweepError(
                f"--grid {path}: grid: is empty, so the sweep would have no runs. Give a mapping of dotted keys "
                f"to lists of values, e.g. 'grid: {{workload.rate_rps: [2, 4, 8]}}'."
            )
        return {
            "grid": data["grid"],
            "seeds": data.get("seeds", 1),
            "common_random_numbers": bool(data.get("common_random_numbers", False)),
        }
    if isinstance(data, (Mapping, list)):
        return {"grid": data, "seeds": 1, "common_random_numbers": False}
    raise SweepError(f"--grid {path}: expected a mapping of dotted keys to lists of values, got {type(data).__name__}.")
