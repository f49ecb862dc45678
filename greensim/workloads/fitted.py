"""Length and arrival models fitted to real traces, and the files that hold them.

Joint length model (:class:`JointLengthModel`): each marginal (input, output tokens) is
kept as its quantile function at ``n_levels + 1`` equally spaced probability levels
(linear interpolation in between, rounded to whole tokens), and their dependence as a
``grid x grid`` *checkerboard (empirical) copula*: the number of requests whose
(input rank, output rank) fall in each cell of a grid over [0, 1]^2 (Nelsen, An
Introduction to Copulas, 2nd ed., 2006, sections 2.3 and 5.6; Genest, Neslehova and
Remillard, "On the empirical multilinear copula process for count data", Bernoulli
20(3), 2014, for ties). Ties are broken by a fixed-seed random order, so each grid row and
column holds the same number of requests and the margins stay exactly uniform.
Sampling draws a cell with the cell's probability, a uniform point inside it, and maps
both coordinates through the marginal quantile functions: vectorised, O(n).

Arrival model: a Gamma renewal process with the trace's mean rate (1 / mean gap) and
inter-arrival CV (:mod:`greensim.workloads.arrivals`).

Fits live in ``traces/fitted/<name>.yaml`` (installed as ``greensim._traces``), written by
``greensim trace fit NAME --out traces/fitted`` with the source file's SHA-256 and row count.
"""

from __future__ import annotations

import copy
import datetime as _dt
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

import numpy as np

from greensim.base.errors import ConfigError, TraceError
from greensim.base.paths import bundled
from greensim.base.yamlio import parse_yaml_cached

__all__ = [
    "JointLengthModel",
    "fit_lengths",
    "fit_arrivals",
    "load_fit",
    "fitted_names",
    "fit_document",
    "FIT_LEVELS",
    "FIT_GRID",
]

#: quantile levels per marginal (0.1% steps: p50/p90/p99 fall on knots)
FIT_LEVELS = 1000
#: copula grid cells per axis (5% rank bins: 400 cells, ~50 requests a cell for a 20k-row trace)
FIT_GRID = 20
#: seed of the tie-breaking order in fits (any fixed value: fits must be reproducible)
_TIE_SEED = 20231116


def _ranks(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ranks 0..n-1 with ties broken in a random (seeded) order."""
    order = np.lexsort((rng.random(x.size), x))
    r = np.empty(x.size, dtype=np.int64)
    r[order] = np.arange(x.size)
    return r


@dataclass(frozen=True)
class JointLengthModel:
    """Input/output token lengths: marginal quantile functions + checkerboard copula.

    Parameters
    ----------
    input_quantiles, output_quantiles : quantiles [tokens] at levels ``linspace(0, 1, len)``.
    copula_counts : ``grid x grid`` requests per (input-rank cell, output-rank cell).
    """

    input_quantiles: np.ndarray
    output_quantiles: np.ndarray
    copula_counts: np.ndarray

    def __post_init__(self):
        for name in ("input_quantiles", "output_quantiles"):
            q = np.asarray(getattr(self, name), dtype=float)
            if q.ndim != 1 or q.size < 2 or (np.diff(q) < 0).any() or q[0] < 1:
                raise TraceError(f"fitted lengths: {name} must be >= 1 and non-decreasing (>= 2 values).")
        c = np.asarray(self.copula_counts, dtype=float)
        if c.ndim != 2 or c.shape[0] != c.shape[1] or (c < 0).any() or c.sum() <= 0:
            raise TraceError("fitted lengths: copula_counts must be a square grid of non-negative counts.")

    @property
    def grid(self) -> int:
        return int(np.asarray(self.copula_counts).shape[0])

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` (input, output) token counts [tokens], int64, each >= 1."""
        g = self.grid
        p = np.asarray(self.copula_counts, dtype=float).ravel()
        cdf = np.cumsum(p / p.sum())
        cell = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), p.size - 1)
        i, j = np.divmod(cell, g)
        u = (i + rng.random(n)) / g
        v = (j + rng.random(n)) / g
        return self._quantile(self.input_quantiles, u), self._quantile(self.output_quantiles, v)

    @staticmethod
    def _quantile(q: np.ndarray, u: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        x = np.interp(u, np.linspace(0.0, 1.0, q.size), q)
        return np.maximum(np.rint(x), 1).astype(np.int64)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "n_levels": int(len(self.input_quantiles) - 1),
            "copula_grid": self.grid,
            "input_quantiles": [round(float(x), 3) for x in self.input_quantiles],
            "output_quantiles": [round(float(x), 3) for x in self.output_quantiles],
            "copula_counts": [[int(x) for x in row] for row in np.asarray(self.copula_counts)],
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "JointLengthModel":
        return cls(
            np.asarray(d["input_quantiles"], dtype=float),
            np.asarray(d["output_quantiles"], dtype=float),
            np.asarray(d["copula_counts"], dtype=np.int64),
        )


def fit_lengths(
    input_tokens: np.ndarray, output_tokens: np.ndarray, n_levels: int = FIT_LEVELS, grid: int = FIT_GRID
) -> JointLengthModel:
    """Fit a :class:`JointLengthModel` to paired token counts (see module docstring)."""
    x = np.asarray(input_tokens, dtype=float)
    y = np.asarray(output_tokens, dtype=float)
    if x.size != y.size or x.size < grid:
        raise TraceError(f"fit: need paired columns with at least {grid} rows (got {x.size}, {y.size}).")
    levels = np.linspace(0.0, 1.0, n_levels + 1)
    rng = np.random.default_rng(_TIE_SEED)
    rx, ry = _ranks(x, rng), _ranks(y, rng)
    ci = rx * grid // x.size
    cj = ry * grid // y.size
    counts = np.bincount(ci * grid + cj, minlength=grid * grid).reshape(grid, grid)
    return JointLengthModel(np.quantile(x, levels), np.quantile(y, levels), counts)


def fit_arrivals(arrival_s: np.ndarray) -> Dict[str, float]:
    """Mean rate (1 / mean gap) [req/s] and inter-arrival CV of a sorted arrival column."""
    t = np.asarray(arrival_s, dtype=float)
    if t.size < 3 or t[-1] <= t[0]:
        raise TraceError("fit: need at least 3 arrivals spanning a positive time to fit an arrival process.")
    g = np.diff(t)
    return {
        "rate_rps": float(1.0 / g.mean()),
        "iat_cv": float(g.std() / g.mean()),
        "duration_s": float(t[-1] - t[0]),
        "n_requests": int(t.size),
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fit_document(
    name: str, path: Path, frame, source: str = "", license: str = "", command: str = ""
) -> Dict[str, Any]:
    """The YAML document of a fit: provenance, arrival fit (if times), length model, summary."""
    from greensim.base.version import __version__
    from greensim.workloads.stats import trace_stats

    arr = frame["arrival_time_s"].to_numpy() if "arrival_time_s" in frame.columns else None
    inp = frame["input_tokens"].to_numpy()
    out = frame["output_tokens"].to_numpy()
    model = fit_lengths(inp, out)
    st = trace_stats(arr, inp, out)
    return {
        "name": name,
        "provenance": {
            "source_file": path.name,
            "source_sha256": _sha256(path),
            "source_rows": int(len(frame)),
            "source": source,
            "license": license,
            "fitted_by": command or f"greensim trace fit {name} --out traces/fitted",
            "greensim_version": __version__,
            "date": _dt.date.today().isoformat(),
            "method": "marginal quantiles at 0.1% steps + 20x20 checkerboard copula of ranks (ties broken by "
            "a seeded random order); arrivals: Gamma renewal with the trace's 1/mean gap and gap CV. "
            "See greensim/workloads/fitted.py.",
        },
        "summary": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in st.items()},
        "arrivals": fit_arrivals(arr) if arr is not None else None,
        "lengths": model.to_dict(),
    }


def _fits_dir():
    return bundled("traces") / "fitted"


def fitted_names() -> list[str]:
    """Names of the shipped fits."""
    d = _fits_dir()
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".yaml"))


@functools.lru_cache(maxsize=None)
def _read_fit(name: str) -> str:
    return (_fits_dir() / f"{name}.yaml").read_text()


def load_fit(name: str, field: str = "trace") -> Dict[str, Any]:
    """The fit document of a shipped fit (``traces/fitted/<name>.yaml``)."""
    if not (_fits_dir() / f"{name}.yaml").is_file():
        import difflib

        names = fitted_names()
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"{field}: no fitted model '{name}' (fitted: {', '.join(names)}).{hint} "
            f"Fit one with `greensim trace fit FILE --out traces/fitted`."
        )
    return copy.deepcopy(parse_yaml_cached(_read_fit(name)))


def load_length_model(name: str, field: str = "trace") -> JointLengthModel:
    """The :class:`JointLengthModel` of a shipped fit."""
    return JointLengthModel.from_dict(load_fit(name, field)["lengths"])
