"""Closed forms for carbon per request of colocated-new, DPD and DSD serving.

A serving *mode* uses one or more GPU *roles* (e.g. "new" = A100, "old" = V100). Per
request, role r keeps its instance busy for ``busy_s`` seconds drawing ``busy_j`` joules;
at utilisation ``u`` (busy fraction of wall-clock time) the request's share of the
instance's provisioned time is ``busy_s / u``, during the rest of which the instance draws
idle power. With grid intensity CI [gCO2e/kWh], PUE, embodied carbon E [kgCO2e per GPU],
``n`` GPUs per instance and lifetime LT [years]:

    C_req = sum_r [ CI PUE (busy_j + P_idle (busy_s/u - busy_s)) / 3.6e6
                    + 1000 E n (busy_s/u) / (LT x 3.1536e7) ]  +  CI PUE link_j / 3.6e6

This is exactly the simulator's accounting (idle power over provisioned time, embodied
amortised linearly over provisioned time; ``greensim.results.metrics``), so the only
modelling is in ``busy_s``, ``busy_j`` and ``u``. :func:`colocated`, :func:`dpd` and
:func:`dsd` derive them from a bound performance model (the profiles' per-token time and
energy) at a steady arrival rate, with the mean decode batch from Little's law:

    b = max(1, lambda (L_out - 1) t_dec(b) / (1 - lambda t_pre))   (crude fixed point)

where ``t_dec(b)`` is one decode iteration of ``b`` requests at the mean context and
``t_pre`` one prefill of ``L_in`` tokens. Continuous batching admits every arrival at the
next iteration, so the number of decoding requests is close to an M/G/infinity queue:
Poisson with mean rho = lambda (L_out - 1) t_dec(b) / (1 - lambda t_pre), and the batch
*while decoding* is b = rho / (1 - exp(-rho)) (the max(1, .) above is its crude limit).
Without this queueing term the theory overestimates busy time at low load by ~45 %. DPD (prefill on new, decode on old, KV moved
over a link) and DSD (draft ``gamma`` tokens on old, verify on new, expected accepted
tokens per iteration ``(1 - alpha^(gamma+1)) / (1 - alpha)``, Leviathan et al. 2023) follow
``../shared/research/paper.md`` sections 4-6, whose equations are reconstructed (the
paper's own were not available).

Against the simulator (``tests/unit/test_theory.py``, steady Poisson load, constant lengths)
colocated, DPD and DSD agree within 1 %; DSD is 0.2-0.6 % high because an iteration is
priced at the mean batch rather than averaged over the fluctuating one (Jensen), with or
without acceptance randomness. Transfers cost no carbon here (links draw no power).

Because C_req is affine in CI and in 1/LT of each role, break-even points are closed
forms: :func:`break_even_intensity` and :func:`break_even_lifetime`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from greensim.base.errors import ConfigError
from greensim.base.units import G_PER_KG, J_PER_KWH, S_PER_YEAR

__all__ = [
    "RoleUse",
    "Mode",
    "carbon_per_request",
    "break_even_intensity",
    "break_even_lifetime",
    "savings_grid",
    "colocated",
    "dpd",
    "dsd",
    "decode_batch",
]


@dataclass(frozen=True)
class RoleUse:
    """What one request costs on one GPU role.

    Attributes
    ----------
    role : role name ("new", "old", ...).
    busy_s : instance busy time per request [s].
    busy_j : instance busy energy per request [J].
    utilization_frac : instance busy fraction of wall-clock time, in (0, 1] [-].
    idle_power_w : instance idle power [W].
    n_gpus : GPUs per instance (TP degree).
    embodied_kgco2e : embodied carbon per GPU [kgCO2e] (0 for sunk accounting).
    lifetime_years : amortisation lifetime [years].
    """

    role: str
    busy_s: float
    busy_j: float
    utilization_frac: float
    idle_power_w: float
    n_gpus: int
    embodied_kgco2e: float
    lifetime_years: float

    @property
    def provisioned_s(self) -> float:
        """Share of the instance's provisioned wall-clock time per request [s]."""
        return self.busy_s / self.utilization_frac

    @property
    def energy_j(self) -> float:
        """Busy + idle energy per request [J]."""
        return self.busy_j + self.idle_power_w * (self.provisioned_s - self.busy_s)


@dataclass(frozen=True)
class Mode:
    """A serving mode: its roles and any per-request link energy [J]."""

    name: str
    uses: Tuple[RoleUse, ...]
    link_j: float = 0.0

    def with_role(self, role: str, **changes) -> "Mode":
        """A copy with fields of one role replaced (e.g. lifetime_years, embodied_kgco2e)."""
        return dataclasses.replace(
            self, uses=tuple(dataclasses.replace(u, **changes) if u.role == role else u for u in self.uses)
        )


def _coeffs(mode: Mode, pue: float, lifetimes: Optional[Mapping[str, float]] = None, accounting: str = "provisioned"):
    """C_req = op_j x CI x PUE / 3.6e6 + emb: returns (energy per request [J], embodied [gCO2e]).

    ``accounting`` "provisioned" charges idle energy and embodied carbon over the provisioned
    time; "busy" only busy energy and embodied carbon over the busy time (results.metrics).
    """
    busy = accounting == "busy"
    energy = mode.link_j + sum(u.busy_j if busy else u.energy_j for u in mode.uses)
    emb = 0.0
    for u in mode.uses:
        lt = (lifetimes or {}).get(u.role, u.lifetime_years)
        t = u.busy_s if busy else u.provisioned_s
        emb = emb + G_PER_KG * u.embodied_kgco2e * u.n_gpus * t / (np.asarray(lt) * S_PER_YEAR)
    return energy, emb


def carbon_per_request(
    mode: Mode,
    intensity_gco2_per_kwh,
    pue: float = 1.0,
    lifetimes: Optional[Mapping[str, float]] = None,
    accounting: str = "provisioned",
):
    """Carbon per request [gCO2e] (module docstring); broadcasts over arrays of CI and lifetimes.

    Parameters
    ----------
    mode : the serving mode.
    intensity_gco2_per_kwh : grid intensity [gCO2e/kWh] (scalar or array).
    pue : power usage effectiveness [-].
    lifetimes : per-role lifetime overrides [years] (scalars or arrays).
    accounting : "provisioned" (idle and whole provisioned time charged) or "busy".
    """
    for u in mode.uses:
        if not (0 < u.utilization_frac <= 1):
            raise ConfigError(
                f"theory: role '{u.role}' of mode '{mode.name}' has utilisation "
                f"{u.utilization_frac:g}; it must be in (0, 1] (the load exceeds capacity?)."
            )
    energy, emb = _coeffs(mode, pue, lifetimes, accounting)
    return np.asarray(intensity_gco2_per_kwh) * pue * energy / J_PER_KWH + emb


def break_even_intensity(base: Mode, alt: Mode, pue: float = 1.0) -> float:
    """Intensity [gCO2e/kWh] at which ``alt`` and ``base`` emit the same per request.

    ``alt`` saves carbon below it when it uses more energy but less embodied carbon than
    ``base`` (the usual old-GPU case), above it in the opposite case; NaN if the
    difference does not depend on intensity.
    """
    e_b, m_b = _coeffs(base, pue)
    e_a, m_a = _coeffs(alt, pue)
    slope = pue * (e_b - e_a) / J_PER_KWH
    return float((m_a - m_b) / slope) if slope != 0 else float("nan")


def break_even_lifetime(base: Mode, alt: Mode, role: str, intensity_gco2_per_kwh: float, pue: float = 1.0) -> float:
    """Lifetime [years] of ``role`` at which ``alt`` and ``base`` emit the same per request.

    C_req of each mode is c + d / LT_role; the lifetime solves c_b + d_b/LT = c_a + d_a/LT.
    Returns NaN when there is no positive solution.
    """

    def cd(m: Mode):
        c = carbon_per_request(m, intensity_gco2_per_kwh, pue, {role: np.inf})
        d = carbon_per_request(m, intensity_gco2_per_kwh, pue, {role: 1.0}) - c
        return float(c), float(d)

    c_b, d_b = cd(base)
    c_a, d_a = cd(alt)
    if c_b == c_a:
        return float("nan")
    lt = (d_a - d_b) / (c_b - c_a)
    return float(lt) if lt > 0 else float("nan")


def savings_grid(
    base: Mode, alt: Mode, intensities: Sequence[float], lifetimes_years: Sequence[float], role: str, pue: float = 1.0
) -> np.ndarray:
    """Saving ``1 - C_alt / C_base`` [-] on a grid: rows = lifetimes of ``role``, columns = intensities."""
    ci = np.asarray(intensities, dtype=float)[None, :]
    lt = np.asarray(lifetimes_years, dtype=float)[:, None]
    return 1.0 - carbon_per_request(alt, ci, pue, {role: lt}) / carbon_per_request(base, ci, pue, {role: lt})


# ------------------------------------------------------------------ modes from performance models
def decode_batch(perf, rate_rps: float, n_out: int, ctx_tokens: float, t_other_s: float = 0.0, iter_time=None) -> float:
    """Mean decode batch b from Little's law (module docstring), by fixed-point iteration.

    Parameters
    ----------
    perf : bound performance model of the decoding instance.
    rate_rps : arrival rate at this instance [requests/s].
    n_out : decode iterations per request (output tokens after the first).
    ctx_tokens : mean context per decoding request [tokens].
    t_other_s : per-request time the instance spends on other work (prefill) [s].
    iter_time : optional callable b -> iteration time [s] (default: decode-only roofline).
    """
    it = iter_time or (lambda b: perf.iteration_time_s((), max(1, int(round(b))), int(round(max(1, b) * ctx_tokens))))
    free = 1.0 - rate_rps * t_other_s
    if free <= 0:
        raise ConfigError(f"theory: rate {rate_rps:g} req/s saturates the instance with prefill alone.")
    b = 1.0
    for _ in range(500):
        rho = rate_rps * n_out * it(b) / free  # mean number decoding (Little)
        nb = rho / -np.expm1(-rho) if rho > 1e-12 else 1.0  # mean batch given >= 1 decoding
        if abs(nb - b) < 1e-10:
            break
        b = 0.5 * (b + nb)
    return b


def _decode_time(perf, b: float, ctx: float) -> float:
    """Decode iteration time at a (possibly fractional) batch b [s]: linear interpolation."""
    lo = max(1, int(np.floor(b)))
    hi = lo + 1
    t_lo = perf.iteration_time_s((), lo, int(round(lo * ctx)))
    t_hi = perf.iteration_time_s((), hi, int(round(hi * ctx)))
    return t_lo + (b - lo) * (t_hi - t_lo)


def _decode_energy(perf, b: float, ctx: float) -> float:
    """Energy of one decode iteration at a (possibly fractional) batch b [J], interpolated as
    :func:`_decode_time`; the model's own power of that iteration (it may rise with batch)."""
    if not getattr(perf, "power_varies", False):
        return _decode_time(perf, b, ctx) * perf.decode_power_w
    lo = max(1, int(np.floor(b)))
    e = []
    for n in (lo, lo + 1):
        c = int(round(n * ctx))
        t = perf.iteration_time_s((), n, c)
        e.append(t * perf.iteration_power_w((), n, c, t))
    return e[0] + (b - lo) * (e[1] - e[0])


def _use(role, busy_s, busy_j, rate, perf, n_gpus, e_kg, lt):
    u = rate * busy_s
    if 1 < u <= 1 + 1e-6:  # saturated fixed point: float rounding
        u = 1.0
    if not (0 < u <= 1):
        raise ConfigError(
            f"theory: role '{role}' would be {u:.0%} busy at {rate:g} req/s per instance; "
            f"lower the rate or add instances."
        )
    return RoleUse(role, busy_s, busy_j, u, perf.idle_power_w, n_gpus, e_kg, lt)


def colocated(
    perf,
    n_in: int,
    n_out: int,
    rate_rps: float,
    n_gpus: int,
    embodied_kgco2e: float,
    lifetime_years: float,
    role: str = "new",
) -> Mode:
    """Everything on one GPU type (vLLM-style, whole-prompt prefill iterations).

    Parameters
    ----------
    perf : bound performance model of one instance.
    n_in, n_out : prompt and output tokens per request.
    rate_rps : arrival rate per instance [requests/s].
    n_gpus, embodied_kgco2e, lifetime_years : see :class:`RoleUse`.
    """
    t_pre = perf.iteration_time_s([(n_in, 0)], 0, 0)
    e_pre = t_pre * perf.power_w(n_in, 0)
    ctx = n_in + n_out / 2.0
    b = decode_batch(perf, rate_rps, n_out - 1, ctx, t_pre, lambda x: _decode_time(perf, x, ctx))
    t_dec = (n_out - 1) * _decode_time(perf, b, ctx) / b
    busy_s = t_pre + t_dec
    busy_j = e_pre + (n_out - 1) * _decode_energy(perf, b, ctx) / b
    return Mode("colocated", (_use(role, busy_s, busy_j, rate_rps, perf, n_gpus, embodied_kgco2e, lifetime_years),))


def dpd(
    perf_new,
    perf_old,
    n_in: int,
    n_out: int,
    rate_new_rps: float,
    rate_old_rps: float,
    new: Tuple[int, float, float],
    old: Tuple[int, float, float],
    kv_bytes_per_token: float = 0.0,
    link_bytes_per_s: float = 32e9,
    link_power_w: float = 0.0,
) -> Mode:
    """Prefill on the new GPU, KV moved over a link, decode on the old GPU (paper.md section 4).

    Parameters
    ----------
    new, old : (n_gpus, embodied_kgco2e, lifetime_years) of each role.
    rate_new_rps, rate_old_rps : arrival rate per instance of each role [requests/s].
    kv_bytes_per_token : KV cache size per token [bytes]; with link_bytes_per_s [bytes/s]
        (default PCIe Gen4 x16 32 GB/s, paper.md) and link_power_w [W] it gives the link energy.
    """
    t_pre = perf_new.iteration_time_s([(n_in, 0)], 0, 0)
    new_use = _use("new", t_pre, t_pre * perf_new.power_w(n_in, 0), rate_new_rps, perf_new, *new)
    ctx = n_in + n_out / 2.0
    b = decode_batch(perf_old, rate_old_rps, n_out - 1, ctx, 0.0, lambda x: _decode_time(perf_old, x, ctx))
    t_dec = (n_out - 1) * _decode_time(perf_old, b, ctx) / b
    e_dec = (n_out - 1) * _decode_energy(perf_old, b, ctx) / b
    old_use = _use("old", t_dec, e_dec, rate_old_rps, perf_old, *old)
    link_j = link_power_w * kv_bytes_per_token * n_in / link_bytes_per_s
    return Mode("DPD", (new_use, old_use), link_j)


def dsd(
    perf_target_new,
    perf_draft_old,
    n_in: int,
    n_out: int,
    rate_rps: float,
    new: Tuple[int, float, float],
    old: Tuple[int, float, float],
    gamma: int,
    alpha: float,
) -> Mode:
    """Draft model on the old GPU, target verifies on the new GPU (paper.md section 5).

    Per iteration the draft proposes ``gamma`` tokens (gamma decode iterations on old) and
    the target verifies gamma + 1 positions in one pass; each iteration yields
    ``(1 - alpha^(gamma+1)) / (1 - alpha)`` tokens in expectation. Both instances serve the
    same requests (``rate_rps`` each); batches from Little's law over the sequential loop.
    ``gamma`` and ``alpha`` are required: no cited values exist for our draft/target pairs
    (the acceptance rate depends on the pair and the data set).
    """
    if not (0 <= alpha < 1):
        raise ConfigError(f"theory.dsd: alpha {alpha} must be in [0, 1).")
    tokens_per_iter = (1 - alpha ** (gamma + 1)) / (1 - alpha)
    n_iter = (n_out - 1) / tokens_per_iter
    ctx = n_in + n_out / 2.0

    def loop_time(b):
        bi = max(1, int(round(b)))
        t_draft = gamma * _decode_time(perf_draft_old, b, ctx)
        t_ver = perf_target_new.iteration_time_s([(gamma + 1, int(ctx))] * bi, 0, 0)
        return t_draft + t_ver

    t_pre_new = perf_target_new.iteration_time_s([(n_in, 0)], 0, 0)
    t_pre_old = perf_draft_old.iteration_time_s([(n_in, 0)], 0, 0)
    b = decode_batch(None, rate_rps, n_iter, ctx, max(t_pre_new, t_pre_old), loop_time)
    # verify pass time and energy interpolated between the neighbouring whole batches (the
    # power of a pass depends on its batch: pricing the rounded mean would add a Jensen gap)
    lo = max(1, int(np.floor(b)))
    tv, ev = [], []
    for n in (lo, lo + 1):
        t_n = perf_target_new.iteration_time_s([(gamma + 1, int(ctx))] * n, 0, 0)
        tv.append(t_n)
        ev.append(t_n * perf_target_new.verify_power_w(n * (gamma + 1), int(round(n * ctx)), n, t_n))
    w = max(0.0, b - lo)
    t_ver = tv[0] + w * (tv[1] - tv[0])
    e_ver = ev[0] + w * (ev[1] - ev[0])
    t_draft = gamma * _decode_time(perf_draft_old, b, ctx)
    new_busy = t_pre_new + n_iter * t_ver / b
    old_busy = t_pre_old + n_iter * t_draft / b
    new_use = _use(
        "new",
        new_busy,
        t_pre_new * perf_target_new.power_w(n_in, 0) + n_iter * e_ver / b,
        rate_rps,
        perf_target_new,
        *new,
    )
    old_use = _use(
        "old",
        old_busy,
        t_pre_old * perf_draft_old.power_w(n_in, 0) + n_iter * gamma * _decode_energy(perf_draft_old, b, ctx) / b,
        rate_rps,
        perf_draft_old,
        *old,
    )
    return Mode("DSD", (new_use, old_use))


def build_modes(
    model: str,
    new_gpu: str,
    old_gpu: str,
    n_in: int,
    n_out: int,
    rate_rps: float,
    lifetime_new_years: float,
    lifetime_old_years: float,
    old_embodied: str = "sunk",
    draft_model: Optional[str] = None,
    gamma: Optional[int] = None,
    alpha: Optional[float] = None,
    link_bytes_per_s: float = 32e9,
    old_per_new: Optional[int] = None,
):
    """Colocated-new, DPD and (if ``draft_model``) DSD modes from the shipped catalogue and roofline.

    ``old_embodied`` = "sunk" charges the old GPU no embodied carbon, "linear" charges its
    catalogue value over ``lifetime_old_years``. Each mode gets one instance per role at
    ``rate_rps``, except that in DPD one new (prefill) instance serves ``old_per_new`` old
    (decode) instances, i.e. ``old_per_new x rate_rps``: disaggregation saves new-GPU
    time only if prefill work is consolidated. Default (None): the largest count that
    keeps the new GPU no busier than in the colocated mode.
    """
    from greensim.hardware.catalog import load_catalog
    from greensim.hardware.registry import PERFORMANCE_MODELS

    cat = load_catalog()
    perf = PERFORMANCE_MODELS.get("kernel")()
    m = cat.model(model, "model")
    g_new, g_old = cat.gpu(new_gpu, "new GPU"), cat.gpu(old_gpu, "old GPU")
    p_new, p_old = perf.bind(g_new, m, 1), perf.bind(g_old, m, 1)
    e_old = 0.0 if old_embodied == "sunk" else g_old.embodied_kgco2e
    new = (1, g_new.embodied_kgco2e, lifetime_new_years)
    old = (1, e_old, lifetime_old_years)
    base = colocated(p_new, n_in, n_out, rate_rps, *new)
    if old_per_new is None:
        t_pre = p_new.iteration_time_s([(n_in, 0)], 0, 0)
        old_per_new = max(1, int(base.uses[0].utilization_frac / (rate_rps * t_pre)))
    modes = {
        "colocated": base,
        "DPD": dpd(
            p_new,
            p_old,
            n_in,
            n_out,
            old_per_new * rate_rps,
            rate_rps,
            new,
            old,
            kv_bytes_per_token=m.kv_bytes_per_token,
            link_bytes_per_s=link_bytes_per_s,
        ),
    }
    if draft_model:
        if gamma is None or alpha is None:
            raise ConfigError(
                "theory: DSD needs gamma (draft tokens per iteration) and alpha (acceptance rate); "
                "no cited defaults exist for a draft/target pair. Pass both."
            )
        dm = cat.model(draft_model, "draft model")
        modes["DSD"] = dsd(p_new, perf.bind(g_old, dm, 1), n_in, n_out, rate_rps, new, old, gamma, alpha)
    return modes
