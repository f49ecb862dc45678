"""Measured-profile performance model (``performance: {model: profiled}``).

Uses a measured profile (``profiles/measured/<GPU>/<model>_tp<N>.csv``, written by
``greensim profile``; more folders via ``performance.profile_dirs``) when one exists for
the instance's GPU, model and TP degree, and the calibrated roofline otherwise.

Interpolation (piecewise linear, so exact on grid points and monotone where the data is):

* decode-only iteration of ``n`` requests with mean context ``c``: bilinear in (batch, context)
  over the measured decode grid;
* an iteration with prefill tokens: the measured single-sequence prefill time at the
  iteration's ``T`` tokens (prefill + decode), times the roofline's ratio between the actual
  composition (chunks with cached context, decodes) and one fresh ``T``-token prefill;
* power: measured prefill power at ``T`` tokens, decode power at batch ``n`` (median over
  context), mixed iterations weighted by their prefill-token share, as the roofline does.

Outside the grid nothing is extrapolated: that iteration uses the calibrated roofline, and the
first such fallback of each kind is logged once per instance (logger ``greensim.hardware``).

Uncertainty bands (``performance.band``): ``pessimistic`` multiplies times and powers by
``1 + u``, ``optimistic`` by ``1 - u``, with ``u`` from ``profiles/uncertainty.yaml``
(generated with profiles/VALIDATION.md from leave-one-out and published-data errors).
"""

from __future__ import annotations

import bisect
import csv
import logging
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

from greensim.base.errors import ProfileError
from greensim.base.paths import bundled
from greensim.core.interfaces import BoundPerformance, Chunk, PerformanceModel
from greensim.hardware.bands import BANDS, apply_band
from greensim.hardware.catalog import GPUSpec, ModelSpec
from greensim.hardware.registry import PERFORMANCE_MODELS
from greensim.hardware.roofline import BoundRoofline, RooflineModel

__all__ = ["MeasuredProfile", "load_profile", "find_profiles", "ProfiledModel", "BoundProfiled"]

log = logging.getLogger("greensim.hardware")
COLUMNS = ["phase", "batch", "prompt_tokens", "ctx_tokens", "time_s", "time_p10_s", "time_p90_s", "power_w", "n_rep"]
PHASES = ("idle", "prefill", "decode", "verify", "mixed")
_INT = ("batch", "prompt_tokens", "ctx_tokens", "n_rep")


class MeasuredProfile:
    """One measured profile: tables of time [s] and power [W] by phase.

    Attributes
    ----------
    prefill : sorted list of (prompt tokens, time s, power W), one sequence per prefill.
    decode : {batch: {context tokens: (time s, power W)}}.
    mixed : list of (prompt tokens, batch, context, time s, power W).
    verify : list of (new tokens per sequence, batch, context, time s, power W).
    idle_w : board power with weights resident and nothing running [W] (None if absent).
    """

    def __init__(self, path: str, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]):
        self.path, self.meta = path, dict(meta)
        self.idle_w: Optional[float] = None
        pre: Dict[int, Tuple[float, float]] = {}
        self.decode: Dict[int, Dict[int, Tuple[float, float]]] = {}
        self.mixed: List[Tuple[int, int, int, float, float]] = []
        self.verify: List[Tuple[int, int, int, float, float]] = []
        for r in rows:
            ph = r["phase"]
            if ph == "idle":
                self.idle_w = r["power_w"]
            elif ph == "prefill":
                pre[r["prompt_tokens"]] = (r["time_s"], r["power_w"])
            elif ph == "decode":
                self.decode.setdefault(r["batch"], {})[r["ctx_tokens"]] = (r["time_s"], r["power_w"])
            else:
                getattr(self, ph).append((r["prompt_tokens"], r["batch"], r["ctx_tokens"], r["time_s"], r["power_w"]))
        self.prefill = sorted((t, v[0], v[1]) for t, v in pre.items())
        if not self.prefill or not self.decode:
            raise ProfileError(
                f"{path}: needs prefill and decode rows (phase column); found "
                f"{len(self.prefill)} prefill and {len(self.decode)} decode batch sizes. "
                "Re-run `greensim profile`."
            )
        self.batches = sorted(self.decode)
        self.ctxs = sorted({c for d in self.decode.values() for c in d})
        self.pre_tokens = [p[0] for p in self.prefill]
        # decode power by batch: median over the contexts measured at that batch
        self.dec_power = [(b, _median([v[1] for v in self.decode[b].values()])) for b in self.batches]

    def decode_row(self, i: int) -> List[Tuple[int, float]]:
        """(context, time) of batch index ``i``, contiguous from the smallest context."""
        d = self.decode[self.batches[i]]
        out = []
        for c in self.ctxs:
            if c not in d:
                break
            out.append((c, d[c][0]))
        return out


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def load_profile(path: str | Path) -> MeasuredProfile:
    """Read and check a profile CSV (and its ``.meta.json`` sidecar if present).

    Raises
    ------
    ProfileError
        naming the file, and the row and column of a missing column, a non-number, a NaN or
        a negative value.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ProfileError(f"{p}: cannot read the profile ({exc}).") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ProfileError(
            f"{p}: missing column(s) {missing} (header has {reader.fieldnames}). "
            f"A profile needs the columns {COLUMNS}; re-run `greensim profile`."
        )
    rows = []
    for i, r in enumerate(reader, start=2):  # line 1 is the header
        if r["phase"] not in PHASES:
            raise ProfileError(f"{p}: row {i}, column 'phase': {r['phase']!r} is not one of {list(PHASES)}.")
        out: Dict[str, Any] = {"phase": r["phase"]}
        for c in COLUMNS[1:]:
            v = r.get(c)
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise ProfileError(f"{p}: row {i}, column '{c}': {v!r} is not a number.") from None
            if not math.isfinite(x) or x < 0:
                raise ProfileError(
                    f"{p}: row {i}, column '{c}': {v!r} must be a finite non-negative number "
                    "(NaN is not allowed: drop the row or re-measure it)."
                )
            out[c] = int(x) if c in _INT else x
        if out["phase"] != "idle" and out["time_s"] <= 0:
            raise ProfileError(f"{p}: row {i}, column 'time_s': {r['time_s']!r} must be positive.")
        rows.append(out)
    meta: Dict[str, Any] = {}
    side = p.with_name(p.stem + ".meta.json")
    if side.exists():
        meta = yaml.safe_load(side.read_text()) or {}
    return MeasuredProfile(str(p), rows, meta)


def find_profiles(dirs: Iterable[str | Path] = ()) -> Dict[Tuple[str, str, int], Path]:
    """Index ``<dir>/<GPU>/<model>_tp<N>.csv`` files: (GPU, model, TP) -> path.

    The shipped ``profiles/measured`` comes first; later folders override it.
    """
    roots: List[Any] = [bundled("profiles") / "measured"]
    for d in dirs:
        if not Path(d).is_dir():
            raise ProfileError(f"performance.profile_dirs: '{d}' is not a folder.")
        roots.append(Path(d))
    out: Dict[Tuple[str, str, int], Path] = {}
    for root in roots:
        root = Path(str(root))
        if not root.is_dir():
            continue
        for f in sorted(root.glob("*/*_tp*.csv")):
            model, _, tp = f.stem.rpartition("_tp")
            if tp.isdigit():
                out[(f.parent.name, model, int(tp))] = f
    return out


def _bracket(xs: Sequence[float], x: float) -> Optional[Tuple[int, float]]:
    """(i, w) with x = (1-w) xs[i] + w xs[i+1]; None outside [xs[0], xs[-1]]."""
    if not xs or x < xs[0] or x > xs[-1]:
        return None
    if len(xs) == 1:
        return (0, 0.0)
    i = min(bisect.bisect_right(xs, x) - 1, len(xs) - 2)
    return i, (x - xs[i]) / (xs[i + 1] - xs[i])


class BoundProfiled(BoundPerformance):
    """Interpolated measured profile of one instance, with a roofline fallback."""

    def __init__(
        self, profile: MeasuredProfile, fallback: BoundRoofline, gpu: GPUSpec, tp: int, warned: Optional[set] = None
    ):
        self.profile, self.fb = profile, fallback
        self._where = f"{gpu.name} x TP{tp} {profile.meta.get('model', '')}".strip()
        self._warned = set() if warned is None else warned  # shared by a model's instances
        self.idle_power_w = profile.idle_w if profile.idle_w is not None else fallback.idle_power_w
        self.decode_power_w = _median([p for _, p in profile.dec_power])
        self._pre_t = [p[0] for p in profile.prefill]
        self._pre_time = [p[1] for p in profile.prefill]
        self._pre_pow = [p[2] for p in profile.prefill]
        self._dec_b = profile.batches
        self._rows = [profile.decode_row(i) for i in range(len(self._dec_b))]
        self._dec_pow = [p for _, p in profile.dec_power]
        self._row_cache: Dict[int, Any] = {}

    def _fallback(self, kind: str, why: str) -> None:
        key = (self._where, kind)
        if key not in self._warned:
            self._warned.add(key)
            log.warning(
                "profiled %s: %s is outside the measured grid (%s); using the calibrated roofline "
                "for this and every later %s outside it (logged once)",
                self._where,
                why,
                self.profile.path,
                kind,
            )

    # --- decode ------------------------------------------------------------------------
    def _row_pair(self, n: int):
        """Combined (contexts, times) row for batch ``n``, or None outside the batch grid (cached)."""
        try:
            return self._row_cache[n]
        except KeyError:
            r = self._row_cache[n] = self._make_row(n)
            return r

    def _make_row(self, n: int):
        br = _bracket(self._dec_b, n)
        if br is None:
            return None
        i, w = br
        a = self._rows[i]
        if w == 0.0:
            return [c for c, _ in a], [t for _, t in a]
        b = self._rows[i + 1]
        m = min(len(a), len(b))
        return [a[j][0] for j in range(m)], [(1 - w) * a[j][1] + w * b[j][1] for j in range(m)]

    def _decode_time(self, n: int, ctx_mean: float) -> Optional[float]:
        row = self._row_pair(n)
        if row is None:
            return None
        cs, ts = row
        br = _bracket(cs, ctx_mean)
        if br is None:
            return None
        i, w = br
        return ts[i] if w == 0.0 else (1 - w) * ts[i] + w * ts[i + 1]

    def decode_run_time_s(self, n: int, ctx0: int, k: int) -> float:
        # Iteration j has mean context c0 + j; the row is piecewise linear in context, so
        # the sum splits into affine segments summed in closed form.
        if k <= 0:
            return 0.0
        row = self._row_pair(n)
        if row is None:
            self._fallback("decode batch", f"decode batch {n}")
            return self.fb.decode_run_time_s(n, ctx0, k)
        cs, ts = row
        c0 = ctx0 / n
        total = 0.0
        j_lo = max(0, math.ceil(cs[0] - c0 - 1e-9))
        j_hi = min(k - 1, math.floor(cs[-1] - c0 + 1e-9))
        if j_lo > 0:  # contexts below the grid
            self._fallback("decode context", f"decode context below {cs[0]}")
            total += self.fb.decode_run_time_s(n, ctx0, min(j_lo, k))
        if j_hi < k - 1:  # contexts above the grid
            s = max(j_hi + 1, j_lo)
            if s < k:
                self._fallback("decode context", f"decode context above {cs[-1]}")
                total += self.fb.decode_run_time_s(n, ctx0 + n * s, k - s)
        if j_hi < j_lo:
            return total
        if len(cs) == 1:
            return total + (j_hi - j_lo + 1) * ts[0]
        j = j_lo
        for s in range(len(cs) - 1):
            last = s == len(cs) - 2
            # iterations with cs[s] <= c0 + j < cs[s+1] (<= on the last segment)
            end = math.floor(cs[s + 1] - c0 + 1e-9) if last else math.ceil(cs[s + 1] - c0 - 1e-9) - 1
            end = min(end, j_hi)
            if end >= j:
                slope = (ts[s + 1] - ts[s]) / (cs[s + 1] - cs[s])
                cnt = end - j + 1
                sum_c = cnt * c0 + (j + end) * cnt * 0.5  # sum of c0 + j over the span
                total += cnt * (ts[s] - slope * cs[s]) + slope * sum_c
                j = end + 1
            if j > j_hi:
                break
        return total

    # --- any iteration -------------------------------------------------------------------
    def iteration_time_s(self, chunks: Sequence[Chunk], n_decode: int, decode_ctx_tokens: int) -> float:
        if not chunks:
            if n_decode <= 0:
                return 0.0
            t = self._decode_time(n_decode, decode_ctx_tokens / n_decode)
            if t is None:
                self._fallback(
                    "decode batch x context", f"decode batch {n_decode} x context {decode_ctx_tokens / n_decode:.0f}"
                )
                return self.fb.iteration_time_s(chunks, n_decode, decode_ctx_tokens)
            return t
        tokens = n_decode
        for q, _ in chunks:
            tokens += q
        br = _bracket(self._pre_t, tokens)
        if br is None:
            self._fallback("prefill size", f"a prefill of {tokens} tokens")
            return self.fb.iteration_time_s(chunks, n_decode, decode_ctx_tokens)
        i, w = br
        t = self._pre_time[i] if w == 0.0 else (1 - w) * self._pre_time[i] + w * self._pre_time[i + 1]
        if n_decode == 0 and len(chunks) == 1 and chunks[0][1] == 0:
            return t
        fb = self.fb
        return t * fb.iteration_time_s(chunks, n_decode, decode_ctx_tokens) / fb.iteration_time_s([(tokens, 0)], 0, 0)

    def power_w(self, n_prefill_tokens: int, n_decode: int) -> float:
        pd = None
        if n_decode > 0:
            br = _bracket(self._dec_b, n_decode)
            if br is not None:
                i, w = br
                pd = self._dec_pow[i] if w == 0.0 else (1 - w) * self._dec_pow[i] + w * self._dec_pow[i + 1]
        if n_prefill_tokens <= 0:
            return pd if pd is not None else self.fb.power_w(0, n_decode)
        tokens = n_prefill_tokens + n_decode
        br = _bracket(self._pre_t, tokens)
        if br is None or (n_decode > 0 and pd is None):
            return self.fb.power_w(n_prefill_tokens, n_decode)
        i, w = br
        pp = self._pre_pow[i] if w == 0.0 else (1 - w) * self._pre_pow[i] + w * self._pre_pow[i + 1]
        if n_decode == 0:
            return pp
        share = n_prefill_tokens / tokens
        return pd + (pp - pd) * share


@PERFORMANCE_MODELS.register("profiled")
class ProfiledModel(PerformanceModel):
    """Measured profile where one exists for (GPU, model, TP), calibrated roofline elsewhere.

    Parameters
    ----------
    band : "pessimistic" | "nominal" | "optimistic" (see :func:`greensim.hardware.bands.band_entry`).
    profile_dirs : extra folders of ``<GPU>/<model>_tp<N>.csv`` profiles.
    **overrides : passed to :class:`RooflineModel` (eta_compute, eta_memory, iteration_overhead_s).
    """

    name = "profiled"

    def __init__(self, band: str = "nominal", profile_dirs: Sequence[str] = (), **overrides: Any):
        if band not in BANDS:
            raise ProfileError(f"performance.band: {band!r} is not one of {list(BANDS)}.")
        self.band = band
        self.bands_used: Dict[str, Dict[str, Any]] = {}  # uncertainty.yaml entries applied (band != nominal)
        self.roofline = RooflineModel(**overrides)
        self.index = find_profiles(profile_dirs)
        self._cache: Dict[Path, MeasuredProfile] = {}
        self._warned: set = set()

    def profile_for(self, gpu: GPUSpec, model: ModelSpec, tp: int) -> Optional[MeasuredProfile]:
        f = self.index.get((gpu.name, model.name, tp))
        if f is None:
            return None
        if f not in self._cache:
            self._cache[f] = load_profile(f)
        return self._cache[f]

    def bind(self, gpu: GPUSpec, model: ModelSpec, tp: int) -> BoundPerformance:
        fb = self.roofline._bind(gpu, model, tp)
        prof = self.profile_for(gpu, model, tp)
        if prof is None:
            log.info(
                "profiled: no measured profile for %s / %s / TP%d; using the calibrated roofline",
                gpu.name,
                model.name,
                tp,
            )
            bound: BoundPerformance = fb
        else:
            bound = BoundProfiled(prof, fb, gpu, tp, self._warned)
        return apply_band(bound, gpu, self.band, measured=prof is not None, used=self.bands_used)
