"""Time-varying grid carbon intensity: hourly (or finer) regional series and a diurnal curve.

A series maps simulated time ``t`` [s] to the intensity in force at wall-clock time
``start + t``; :meth:`mean_over` integrates the step function exactly, so operational
carbon = sum over ledger bins of energy x mean intensity over the bin x PUE.

Data: ``../shared/data/carbon/`` beside the repository (or ``$GREENSIM_DATA_DIR``):
``electricitymaps_2023_hourly.csv`` (9 zones, 2023, average consumption-based intensity,
life-cycle ``gco2_per_kwh`` and ``gco2_per_kwh_direct``; Electricity Maps, ODbL) and
``eia930_sustaindc_2022_hourly.csv`` (5 US balancing authorities, 2022, average
production-based, life-cycle IPCC AR5 factors; EIA-930 via HewlettPackard/dc-rl, MIT).
Both are *average* (not marginal) signals; see that folder's ``PROVENANCE.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

from greensim.base.errors import ConfigError
from greensim.base.lazy import lazy_module
from greensim.base.paths import shared_data_dir
from greensim.base.units import S_PER_HOUR
from greensim.carbon.intensity import CarbonIntensity
from greensim.carbon.registry import INTENSITY_SOURCES
from greensim.experiment.carbon import MAX_GCO2_PER_KWH

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

__all__ = [
    "IntensitySeries",
    "SeriesIntensitySource",
    "DiurnalIntensitySource",
    "load_region_series",
    "shared_carbon_files",
    "list_regions",
    "BASIS_COLUMNS",
]

#: column of the shared files holding each accounting basis
BASIS_COLUMNS = {"lifecycle": "gco2_per_kwh", "direct": "gco2_per_kwh_direct"}

#: the shared series files, in search order
SHARED_FILES = ("electricitymaps_2023_hourly.csv", "eia930_sustaindc_2022_hourly.csv")


def shared_carbon_files() -> List[Path]:
    """Paths of the shared carbon-intensity CSV files that exist."""
    d = shared_data_dir() / "carbon"
    return [d / f for f in SHARED_FILES if (d / f).is_file()]


_CACHE: Dict[str, pd.DataFrame] = {}  # by path, modification time and size


def _read(path: Path) -> pd.DataFrame:
    p = Path(path)
    st = p.stat() if p.is_file() else None  # an edited file (new time or size) is read again
    key = f"{p.resolve()}|{st.st_mtime_ns}|{st.st_size}" if st else str(p.resolve())
    if key not in _CACHE:
        if not Path(path).is_file():
            raise ConfigError(
                f"carbon.intensity.path: no such file '{path}'. Point it at a CSV with columns "
                f"timestamp_utc, region, gco2_per_kwh (see ../shared/data/carbon/PROVENANCE.md)."
            )
        if Path(path).is_dir():
            raise ConfigError(f"carbon.intensity.path: '{path}' is a folder. Give the path of the CSV file.")
        try:
            df = pd.read_csv(path)
        except UnicodeDecodeError:
            raise ConfigError(
                f"carbon.intensity.path: '{path}' is not a UTF-8 text (CSV) file; is it binary? Give a CSV with "
                f"columns timestamp_utc, region, gco2_per_kwh."
            ) from None
        except pd.errors.EmptyDataError:
            df = pd.DataFrame()
        except pd.errors.ParserError as exc:
            raise ConfigError(f"carbon.intensity.path: '{path}' is not a readable CSV ({exc}). Fix the file.") from None
        missing = {"timestamp_utc", "region", "gco2_per_kwh"} - set(df.columns)
        if missing:
            raise ConfigError(
                f"carbon.intensity.path: '{path}' lacks column(s) {sorted(missing)}; "
                f"expected timestamp_utc, region, gco2_per_kwh."
            )
        if len(df) == 0:
            raise ConfigError(
                f"carbon.intensity.path: '{path}' has a header but no rows. Add the hourly values "
                f"(timestamp_utc, region, gco2_per_kwh)."
            )
        for c in [c for c in ("gco2_per_kwh", "gco2_per_kwh_direct") if c in df.columns]:
            x = pd.to_numeric(df[c], errors="coerce")
            bad = np.flatnonzero(x.isna().to_numpy() & df[c].notna().to_numpy())
            if bad.size:
                i = int(bad[0])
                raise ConfigError(
                    f"carbon.intensity.path: '{path}' line {i + 2}: column '{c}' has a non-numeric "
                    f"value {df[c].iloc[i]!r} ({bad.size} such row(s)). Give intensities in gCO2e/kWh as numbers "
                    f"(leave a cell empty for a gap)."
                )
            df[c] = x.astype(float)
        ts = pd.to_datetime(df["timestamp_utc"], utc=True, errors="coerce")
        bad = np.flatnonzero(ts.isna().to_numpy())
        if bad.size:
            i = int(bad[0])
            raise ConfigError(
                f"carbon.intensity.path: '{path}' line {i + 2}: timestamp_utc "
                f"{df['timestamp_utc'].iloc[i]!r} is not an ISO 8601 time ({bad.size} such row(s)). "
                f"Write e.g. 2023-06-01T08:00:00Z."
            )
        df["timestamp_utc"] = ts
        _CACHE[key] = df
    return _CACHE[key]


def list_regions(paths: Optional[Sequence[Path]] = None) -> Dict[str, Path]:
    """Region code -> file holding it (first file wins)."""
    out: Dict[str, Path] = {}
    for p in paths if paths is not None else shared_carbon_files():
        for r in _read(Path(p))["region"].unique():
            out.setdefault(str(r), Path(p))
    return out


@dataclass(frozen=True)
class IntensitySeries:
    """A validated, evenly spaced intensity series.

    Attributes
    ----------
    region : zone code.
    t0 : timestamp of the first value (UTC).
    step_s : spacing [s].
    values : intensity in force during [t0 + i*step, t0 + (i+1)*step) [gCO2e/kWh].
    n_filled : number of values filled (gaps or NaN) by the requested gap filling.
    basis : "lifecycle" or "direct".
    """

    region: str
    t0: pd.Timestamp
    step_s: float
    values: np.ndarray
    n_filled: int = 0
    basis: str = "lifecycle"

    @property
    def end(self) -> pd.Timestamp:
        return self.t0 + pd.Timedelta(seconds=self.step_s * len(self.values))

    def index_of(self, ts: pd.Timestamp) -> float:
        """Fractional position of a timestamp in steps from t0."""
        return (ts - self.t0).total_seconds() / self.step_s

    def timestamps(self) -> pd.DatetimeIndex:
        return pd.date_range(self.t0, periods=len(self.values), freq=pd.Timedelta(seconds=self.step_s))


def validate_series(
    ts: pd.Series, vals: np.ndarray, region: str, where: str, gap_fill: str = "error", basis: str = "lifecycle"
) -> IntensitySeries:
    """Check a raw series (timestamps, values): sorted, no duplicates, evenly spaced, no NaN, >= 0.

    Parameters
    ----------
    gap_fill : "error" (default: any gap or NaN is an error), "linear" (interpolate in time)
        or "ffill" (carry the last value forward). Filled points are counted in ``n_filled``.

    Raises
    ------
    ConfigError
        naming the region, the first bad timestamp and the fix.
    """
    ts = pd.DatetimeIndex(pd.to_datetime(ts, utc=True))
    vals = np.asarray(vals, dtype=float)
    if len(ts) < 2:
        raise ConfigError(f"{where}: region '{region}' has {len(ts)} value(s); a series needs at least 2.")
    secs = (ts - ts[0]).total_seconds().to_numpy()  # resolution-independent (ns, ms or s datetimes)
    order = np.argsort(secs, kind="stable")
    ts, vals = ts[order], vals[order]
    dup = ts.duplicated()
    if dup.any():
        raise ConfigError(
            f"{where}: region '{region}' has {int(dup.sum())} duplicate timestamp(s), first "
            f"{ts[dup][0].isoformat()}. Keep one value per timestamp."
        )
    d = np.diff(secs[order])
    step = float(np.min(d))
    if step <= 0 or step > S_PER_HOUR:
        raise ConfigError(f"{where}: region '{region}' has a step of {step:g} s; hourly or finer series are supported.")
    neg = np.flatnonzero(vals < 0)
    if neg.size:
        raise ConfigError(
            f"{where}: region '{region}' has a negative intensity {vals[neg[0]]:g} gCO2e/kWh at "
            f"{ts[neg[0]].isoformat()}. Intensities must be >= 0; fix the data."
        )
    big = np.flatnonzero(vals > MAX_GCO2_PER_KWH)
    if big.size:
        raise ConfigError(
            f"{where}: region '{region}' has an intensity of {vals[big[0]]:g} gCO2e/kWh at "
            f"{ts[big[0]].isoformat()}, above {MAX_GCO2_PER_KWH:g} (over 5x a coal plant's life-cycle "
            f"intensity): check the units (gCO2e per kWh expected) or fix the data."
        )
    off = np.flatnonzero(np.abs(d / step - np.round(d / step)) > 1e-6)
    if off.size:
        raise ConfigError(
            f"{where}: region '{region}' is not evenly spaced: {ts[off[0] + 1].isoformat()} is "
            f"{d[off[0]]:g} s after the previous point, not a multiple of {step:g} s."
        )
    full = pd.date_range(ts[0], ts[-1], freq=pd.Timedelta(seconds=step))
    s = pd.Series(vals, index=ts).reindex(full)
    bad = np.flatnonzero(~np.isfinite(s.to_numpy()))
    n_gap = len(full) - len(ts)
    if bad.size:
        if gap_fill == "error":
            raise ConfigError(
                f"{where}: region '{region}' has {bad.size} missing or NaN value(s) ({n_gap} missing "
                f"timestamps), first at {full[bad[0]].isoformat()}. Set carbon.intensity.gap_fill to "
                f"'linear' or 'ffill' to fill them (the count is reported), or fix the data."
            )
        if gap_fill == "linear":
            s = s.interpolate(method="time", limit_direction="both")
        elif gap_fill == "ffill":
            s = s.ffill().bfill()
        else:
            raise ConfigError(f"{where}: gap_fill '{gap_fill}' unknown (valid: error, ffill, linear).")
    return IntensitySeries(region, full[0], step, s.to_numpy(dtype=float), int(bad.size), basis)


def load_region_series(
    region: str,
    path: Optional[str | Path] = None,
    basis: str = "lifecycle",
    gap_fill: str = "error",
    where: str = "carbon.intensity",
) -> IntensitySeries:
    """Load one region's series from a CSV (default: search the shared files).

    Parameters
    ----------
    region : zone code, e.g. "US-CAL-CISO", "FR", "PJM".
    path : CSV with columns ``timestamp_utc, region, gco2_per_kwh`` (optionally
        ``gco2_per_kwh_direct``); default: the shared files (see module docstring).
    basis : "lifecycle" (column ``gco2_per_kwh``) or "direct" (``gco2_per_kwh_direct``).
    gap_fill : see :func:`validate_series`.
    """
    files = [Path(path)] if path is not None else shared_carbon_files()
    if not files:
        raise ConfigError(
            f"{where}.path: no path given and the shared data folder {shared_data_dir()} has "
            f"none of {', '.join(SHARED_FILES)}. Set path or $GREENSIM_DATA_DIR."
        )
    regions = list_regions(files)
    if region not in regions:
        import difflib

        close = difflib.get_close_matches(region, list(regions), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{where}.region: unknown region '{region}' (valid: {', '.join(sorted(regions))}).{hint}")
    df = _read(regions[region])
    col = BASIS_COLUMNS.get(basis)
    if col is None:
        raise ConfigError(f"{where}.basis: unknown basis '{basis}' (valid: {', '.join(BASIS_COLUMNS)}).")
    if col not in df.columns:
        raise ConfigError(
            f"{where}.basis: '{basis}' needs column '{col}', which {regions[region].name} lacks "
            f"(it has only life-cycle values). Use basis: lifecycle."
        )
    sub = df[df["region"] == region]
    return validate_series(sub["timestamp_utc"], sub[col].to_numpy(dtype=float), region, where, gap_fill, basis)


def parse_start(start: str, timezone: str, where: str = "carbon.intensity") -> pd.Timestamp:
    """Wall-clock start of the simulation as a UTC timestamp (naive times are in ``timezone``)."""
    try:
        ts = pd.Timestamp(start)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}.start: '{start}' is not an ISO 8601 timestamp, e.g. 2023-06-01T08:00.") from None
    try:
        return ts.tz_localize(timezone).tz_convert("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    except Exception:  # pytz/zoneinfo raise various types for unknown zones
        raise ConfigError(
            f"{where}.timezone: unknown time zone '{timezone}'. Use an IANA name such as "
            f"UTC, Europe/Paris or America/Los_Angeles."
        ) from None


@INTENSITY_SOURCES.register("series")
class SeriesIntensitySource(CarbonIntensity):
    """Intensity from a regional series; simulated t = 0 is wall-clock ``start``.

    Parameters
    ----------
    region, path, basis, gap_fill : see :func:`load_region_series`.
    start : ISO 8601 wall-clock time of simulated t = 0; naive times are read in ``timezone``.
    timezone : IANA time zone of ``start`` [default UTC].
    series : an already-built :class:`IntensitySeries` (then region/path are ignored).
    """

    def __init__(
        self,
        region: str = "",
        start: str = "",
        timezone: str = "UTC",
        path: Optional[str] = None,
        basis: str = "lifecycle",
        gap_fill: str = "error",
        series: Optional[IntensitySeries] = None,
        where: str = "carbon.intensity",
    ):
        self.series = series if series is not None else load_region_series(region, path, basis, gap_fill, where)
        s = self.series
        self.start_utc = parse_start(start, timezone, where) if start else s.t0
        self._offset = s.index_of(self.start_utc)  # steps from t0 to simulated t = 0
        if not (0 <= self._offset < len(s.values)):
            raise ConfigError(
                f"{where}.start: {self.start_utc.isoformat()} is outside the series of region "
                f"'{s.region}' ({s.t0.isoformat()} to {s.end.isoformat()}). Pick a start inside it."
            )
        self._cum = np.concatenate(([0.0], np.cumsum(s.values)))  # integral in steps x g/kWh
        self.where = where

    @property
    def n_filled(self) -> int:
        return self.series.n_filled

    def _integral(self, t_s: np.ndarray) -> np.ndarray:
        s = self.series
        x = self._offset + np.asarray(t_s, dtype=float) / s.step_s
        if np.any(x > len(s.values) + 1e-9):
            t_end = (len(s.values) - self._offset) * s.step_s
            raise ConfigError(
                f"{self.where}: the simulation runs to t = {float(np.max(t_s)):.0f} s but the series of "
                f"'{s.region}' ends {t_end:.0f} s after the start ({s.end.isoformat()}). "
                f"Pick an earlier start."
            )
        i = np.clip(np.floor(x).astype(np.int64), 0, len(s.values) - 1)
        return self._cum[i] + (x - i) * s.values[i]

    def mean_over(self, t0_s, t1_s):
        t0 = np.asarray(t0_s, dtype=float)
        t1 = np.asarray(t1_s, dtype=float)
        span = (t1 - t0) / self.series.step_s
        with np.errstate(invalid="ignore", divide="ignore"):
            m = (self._integral(t1) - self._integral(t0)) / span
        return np.where(span > 0, m, self.at(t0))

    def at(self, t_s) -> np.ndarray:
        """Intensity in force at simulated time(s) ``t_s`` [gCO2e/kWh]."""
        s = self.series
        x = self._offset + np.asarray(t_s, dtype=float) / s.step_s
        return s.values[np.clip(np.floor(x).astype(np.int64), 0, len(s.values) - 1)]


@INTENSITY_SOURCES.register("diurnal")
class DiurnalIntensitySource(CarbonIntensity):
    """Synthetic daily cycle ``mean x (1 + amplitude_frac x cos(2 pi (h - peak_hour) / 24))``.

    Parameters
    ----------
    mean_gco2_per_kwh : daily mean [gCO2e/kWh].
    amplitude_frac : relative half peak-to-trough swing [-], in [0, 1].
    peak_hour : local hour of the maximum [h].
    start_hour : local hour at simulated t = 0 [h].
    """

    def __init__(self, mean_gco2_per_kwh: float, amplitude_frac: float, peak_hour: float, start_hour: float = 0.0):
        self.mean = float(mean_gco2_per_kwh)
        self.a = float(amplitude_frac)
        self.peak = float(peak_hour)
        self.h0 = float(start_hour)

    def _phase(self, t_s):
        return 2 * math.pi * (self.h0 + np.asarray(t_s, dtype=float) / S_PER_HOUR - self.peak) / 24.0

    def at(self, t_s) -> np.ndarray:
        return self.mean * (1 + self.a * np.cos(self._phase(t_s)))

    def mean_over(self, t0_s, t1_s):
        t0 = np.asarray(t0_s, dtype=float)
        t1 = np.asarray(t1_s, dtype=float)
        w = 2 * math.pi / (24 * S_PER_HOUR)
        dt = t1 - t0
        with np.errstate(invalid="ignore", divide="ignore"):
            m = self.mean * (1 + self.a * (np.sin(self._phase(t1)) - np.sin(self._phase(t0))) / (w * dt))
        return np.where(dt > 0, m, self.at(t0))
