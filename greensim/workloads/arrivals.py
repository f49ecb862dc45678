"""Arrival processes: Poisson, Gamma renewal, and time-varying rates (diurnal, rate series, ServeGen).

All are generated vectorised with numpy. A time-varying process is a renewal process
(Gamma gaps of mean 1 and the given CV; CV 1 = Poisson) in *operational time*
Lambda(t) = integral of rate(u) du, mapped back to real time by t = Lambda^-1(s)
(time-rescaling; Brown et al., Neural Computation 14(2):325-346, 2002, for the Poisson
case). With CV 1 this is exactly a non-homogeneous Poisson process; with CV != 1 it keeps
the local burstiness while the rate follows the profile. The first arrival is at the
first gap (an ordinary renewal process, as the existing Poisson generator).

Registered in :data:`greensim.workloads.ARRIVALS` by ``process`` name; each entry is
``fn(cfg, rng, n, duration_s, where) -> arrival times [s]`` (sorted, starting near 0),
stopping after ``n`` arrivals or at ``duration_s``, whichever comes first.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import numpy as np

from greensim.base.errors import ConfigError, TraceError
from greensim.base.lazy import lazy_module
from greensim.base.registry import Registry
from greensim.experiment.workload import (
    DiurnalArrivals,
    FittedArrivals,
    GammaArrivals,
    PoissonArrivals,
    RateSeriesArrivals,
    ServeGenArrivals,
)

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = ["ARRIVALS", "arrival_times", "renewal_unit", "PiecewiseRate", "servegen_rates"]

ARRIVALS: Registry = Registry("arrival process", entry_point_group="greensim.arrivals")


def _check_stop(n: Optional[int], duration_s: Optional[float], where: str) -> None:
    if n is None and duration_s is None:
        raise ConfigError(f"{where}: set n_requests or duration_s to say when arrivals stop.")


def _gaps(rng: np.random.Generator, cv: float, size: int) -> np.ndarray:
    """Gaps of mean 1 and coefficient of variation ``cv`` (CV 1: exponential)."""
    if cv == 1.0:
        return rng.standard_exponential(size)
    shape = 1.0 / (cv * cv)
    return rng.gamma(shape, 1.0 / shape, size)


def renewal_unit(
    rng: np.random.Generator, cv: float, n: Optional[int] = None, horizon: Optional[float] = None
) -> np.ndarray:
    """Arrival times of a renewal process of rate 1 (gap mean 1, CV ``cv``).

    Stops after ``n`` arrivals or before ``horizon``, whichever comes first. Vectorised:
    draws gaps in blocks sized from the expected count.
    """
    if n is not None and horizon is None:
        return np.cumsum(_gaps(rng, cv, n))
    assert horizon is not None
    cap = n if n is not None else None
    chunks, total, t0 = [], 0, 0.0
    while True:
        remaining = max(horizon - t0, 0.0)
        m = int(remaining + 6.0 * cv * math.sqrt(remaining + 1.0) + 16)
        if cap is not None:
            m = min(m, cap - total)
        if m <= 0:
            break
        t = t0 + np.cumsum(_gaps(rng, cv, m))
        inside = t < horizon
        k = int(np.searchsorted(t, horizon)) if not inside.all() else m
        chunks.append(t[:k])
        total += k
        if k < m or (cap is not None and total >= cap):
            break
        t0 = float(t[-1])
    out = np.concatenate(chunks) if chunks else np.empty(0)
    return out[:cap] if cap is not None else out


class PiecewiseRate:
    """A periodic piecewise-constant rate: ``rates_rps[i]`` on ``[i*bin_s, (i+1)*bin_s)``.

    ``cumulative(t)`` is Lambda(t) [expected arrivals]; ``inverse(s)`` its inverse [s].
    """

    def __init__(self, rates_rps: np.ndarray, bin_s: float, where: str):
        r = np.asarray(rates_rps, dtype=float)
        if r.size == 0 or not np.isfinite(r).all() or (r < 0).any():
            i = int(np.flatnonzero(~(np.isfinite(r) & (r >= 0)))[0]) if r.size else 0
            raise ConfigError(f"{where}: rates must be finite and >= 0 (bin {i}: {r[i] if r.size else 'none'}).")
        if r.sum() <= 0:
            raise ConfigError(f"{where}: every rate is 0, so no request would ever arrive. Give a positive rate.")
        self.rates_rps, self.bin_s = r, float(bin_s)
        self.period_s = r.size * self.bin_s
        self.edges_s = np.arange(r.size + 1) * self.bin_s
        self.cum = np.concatenate([[0.0], np.cumsum(r * self.bin_s)])
        self.per_period = float(self.cum[-1])

    @property
    def mean_rate_rps(self) -> float:
        return self.per_period / self.period_s

    def cumulative(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        k, rem = np.divmod(t, self.period_s)
        return k * self.per_period + np.interp(rem, self.edges_s, self.cum)

    def inverse(self, s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        k, rem = np.divmod(s, self.per_period)
        # the bin with cum[j] <= rem < cum[j+1]; side="right" skips zero-rate bins (flat runs of cum)
        j = np.clip(np.searchsorted(self.cum, rem, side="right") - 1, 0, self.rates_rps.size - 1)
        t = self.edges_s[j] + (rem - self.cum[j]) / self.rates_rps[j]
        return k * self.period_s + np.minimum(t, self.edges_s[j + 1])


def _time_varying(
    rate: PiecewiseRate,
    cv: float,
    start_s: float,
    rng: np.random.Generator,
    n: Optional[int],
    duration_s: Optional[float],
) -> np.ndarray:
    s0 = float(rate.cumulative(np.array([start_s]))[0])
    horizon = None
    if duration_s is not None:
        horizon = float(rate.cumulative(np.array([start_s + duration_s]))[0]) - s0
    s = renewal_unit(rng, cv, n=n, horizon=horizon)
    t = rate.inverse(s + s0) - start_s
    return np.maximum.accumulate(np.maximum(t, 0.0))  # guard rounding at bin edges


@ARRIVALS.register("poisson")
def _poisson(cfg: PoissonArrivals, rng, n, duration_s, where):
    _check_stop(n, duration_s, where)
    return renewal_unit(rng, 1.0, n=n, horizon=None if duration_s is None else duration_s * cfg.rate_rps) / cfg.rate_rps


@ARRIVALS.register("gamma")
def _gamma(cfg: GammaArrivals, rng, n, duration_s, where):
    _check_stop(n, duration_s, where)
    return (
        renewal_unit(rng, cfg.cv, n=n, horizon=None if duration_s is None else duration_s * cfg.rate_rps) / cfg.rate_rps
    )


def diurnal_rate(cfg: DiurnalArrivals, where: str = "arrivals") -> PiecewiseRate:
    """The diurnal cosine as a piecewise-constant rate over one period (mean exactly ``mean_rate_rps``)."""
    n_bins = max(1, int(round(cfg.period_s / cfg.step_s)))
    step = cfg.period_s / n_bins
    centre = (np.arange(n_bins) + 0.5) * step
    a = (cfg.peak_to_trough - 1.0) / (cfg.peak_to_trough + 1.0)
    shape = 1.0 + a * np.cos(2 * np.pi * (centre - cfg.peak_s) / cfg.period_s)
    return PiecewiseRate(cfg.mean_rate_rps * shape / shape.mean(), step, where)


@ARRIVALS.register("diurnal")
def _diurnal(cfg: DiurnalArrivals, rng, n, duration_s, where):
    _check_stop(n, duration_s, where)
    return _time_varying(diurnal_rate(cfg, where), cfg.cv, cfg.start_s, rng, n, duration_s)


def _scaled(rates: np.ndarray, rate_scale: float, mean_rate_rps: Optional[float]) -> np.ndarray:
    r = np.asarray(rates, dtype=float) * rate_scale
    if mean_rate_rps is not None:
        r = r * (mean_rate_rps / r.mean())
    return r


@ARRIVALS.register("rate_series")
def _rate_series(cfg: RateSeriesArrivals, rng, n, duration_s, where):
    _check_stop(n, duration_s, where)
    rate = PiecewiseRate(np.asarray(cfg.rates_rps, dtype=float), cfg.bin_s, f"{where}.rates_rps")
    rate = PiecewiseRate(_scaled(rate.rates_rps, cfg.rate_scale, cfg.mean_rate_rps), cfg.bin_s, f"{where}.rates_rps")
    return _time_varying(rate, cfg.cv, cfg.start_s, rng, n, duration_s)


def servegen_rates(cfg: ServeGenArrivals, data_dir: Optional[str] = None, where: str = "arrivals"):
    """(rates [req/s] per window, window length [s]) of one ServeGen model, before scaling."""
    from greensim.workloads.named import find_named_trace
    from greensim.workloads.traces import read_trace_frame

    if cfg.path:
        path = cfg.path
    else:
        _, path = find_named_trace("servegen_rate_profile_10min", data_dir, f"{where}.path")
    df = read_trace_frame(path, "servegen", where=f"{where}.path")
    models = sorted(df["model"].astype(str).unique())
    sub = df[df["model"].astype(str) == cfg.model].sort_values("window_start_s")
    if sub.empty:
        raise ConfigError(f"{where}.model: '{cfg.model}' is not in {path} (models: {', '.join(models)}).")
    start = sub["window_start_s"].to_numpy(dtype=float)
    length = sub["window_len_s"].to_numpy(dtype=float)
    rates = pd.to_numeric(sub["total_rate_rps"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(rates).all():
        i = int(np.flatnonzero(~np.isfinite(rates))[0])
        raise TraceError(f"{where}.path ({path}): total_rate_rps is not a number in window {i} of {cfg.model}.")
    if len(set(length)) != 1 or not np.allclose(np.diff(start), length[0]):
        raise TraceError(
            f"{where}.path ({path}): the windows of {cfg.model} are not contiguous and of equal "
            f"length; a rate series needs both."
        )
    return rates, float(length[0])


@ARRIVALS.register("servegen")
def _servegen(cfg: ServeGenArrivals, rng, n, duration_s, where, data_dir: Optional[str] = None):
    _check_stop(n, duration_s, where)
    rates, bin_s = servegen_rates(cfg, data_dir, where)
    rate = PiecewiseRate(_scaled(rates, cfg.rate_scale, cfg.mean_rate_rps), bin_s, f"{where} ({cfg.model})")
    return _time_varying(rate, cfg.cv, cfg.start_s, rng, n, duration_s)


@ARRIVALS.register("fitted")
def _fitted(cfg: FittedArrivals, rng, n, duration_s, where):
    from greensim.workloads.fitted import load_fit

    fit = load_fit(cfg.trace, f"{where}.trace")
    arr = fit.get("arrivals")
    if not arr:
        raise ConfigError(
            f"{where}.trace: '{cfg.trace}' has no arrival times (lengths only), so no arrival "
            f"process was fitted. Use process poisson/gamma/diurnal/servegen with it."
        )
    g = GammaArrivals(process="gamma", rate_rps=cfg.rate_rps or arr["rate_rps"], cv=cfg.cv or arr["iat_cv"])
    return _gamma(g, rng, n, duration_s, where)


def arrival_times(
    cfg,
    rng: np.random.Generator,
    n: Optional[int] = None,
    duration_s: Optional[float] = None,
    where: str = "workload.arrivals",
    data_dir: Optional[str] = None,
) -> np.ndarray:
    """Arrival times [s] of the configured process (see module docstring)."""
    fn = ARRIVALS.get(cfg.process, field=f"{where}.process")
    if cfg.process == "servegen":
        return fn(cfg, rng, n, duration_s, where, data_dir=data_dir)
    return fn(cfg, rng, n, duration_s, where)
