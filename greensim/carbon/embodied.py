"""Embodied carbon amortisation schemes, for new and reused (old) GPUs.

The paper's analysis turns on how a reused old GPU's embodied carbon is charged
(``../shared/research/paper.md`` section 6.2). With E the embodied carbon per GPU
[kgCO2e] (plus, optionally, its share of the host server), LT the service lifetime
[years], a the GPU's age at the start [years] and T the provisioned time [s]:

- ``linear`` ("as if new"): E x T / LT, whatever the age (ACT: CF = OP + T/LT x E);
- ``extended``: E x T / (LT + LT_ext): the reused GPU's life is extended by LT_ext years;
- ``sunk``: only the part of T before the GPU reaches LT is charged, at E / LT; an old
  GPU past its lifetime costs nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from greensim.base.errors import ConfigError
from greensim.base.units import BYTES_PER_GB, G_PER_KG, S_PER_YEAR
from greensim.carbon.act import chip_embodied_kgco2e

if TYPE_CHECKING:
    from greensim.hardware.catalog import GPUSpec

__all__ = ["SCHEMES", "SCOPES", "embodied_charge_gco2", "embodied_by_scheme", "scoped_embodied_kgco2e"]

SCHEMES = ("linear", "extended", "sunk")

#: What a GPU's embodied carbon covers (``carbon.embodied_scope``):
#: ``chip``: die + memory + packages, ACT-style from die area and memory (greensim.carbon.act);
#: ``board``: the catalogue's board LCA value (``embodied_kgco2e``, the default);
#: ``server``: the board plus a per-GPU share of the host server (CPU, DRAM, SSD, chassis).
SCOPES = ("chip", "board", "server")


def scoped_embodied_kgco2e(
    gpu: "GPUSpec",
    scope: str = "board",
    override_kgco2e: Optional[float] = None,
    host_kgco2e: Optional[float] = None,
    gpus_per_host: Optional[int] = None,
    where: str = "carbon.embodied_scope",
) -> Tuple[float, float]:
    """(the GPU's own embodied carbon, its share of the host server) [kgCO2e per GPU] in a scope.

    ``override_kgco2e`` replaces the GPU's own part (chip or board value; a user's
    ``carbon.gpu_embodied_kgco2e``); ``host_kgco2e`` / ``gpus_per_host`` replace the catalogue's
    host server (``carbon.host_share``). The host share is 0 outside the ``server`` scope.
    """
    if scope not in SCOPES:
        raise ConfigError(f"{where}: unknown embodied scope '{scope}' (valid: {', '.join(SCOPES)}).")
    if override_kgco2e is not None:
        own = float(override_kgco2e)
    elif scope == "chip":
        if gpu.die_area_mm2 is None or gpu.process_node is None:
            raise ConfigError(
                f"{where}: scope 'chip' needs GPU '{gpu.name}''s die_area_mm2 and process_node in the "
                f"catalogue (with sources), or carbon.gpu_embodied_kgco2e.{gpu.name}. Add them or use scope board."
            )
        own = chip_embodied_kgco2e(
            gpu.die_area_mm2, gpu.process_node, gpu.memory_bytes / BYTES_PER_GB, gpu.memory_packages
        )
    else:
        own = gpu.embodied_kgco2e
    if scope != "server":
        return own, 0.0
    host = host_kgco2e if host_kgco2e is not None else gpu.host_embodied_kgco2e
    per = gpus_per_host if gpus_per_host is not None else gpu.gpus_per_host
    if host is None or not per:
        raise ConfigError(
            f"{where}: scope 'server' needs the host server of GPU '{gpu.name}': the catalogue has none; "
            f"set carbon.host_share (embodied_kgco2e, gpus_per_host)."
        )
    return own, float(host) / int(per)


def embodied_charge_gco2(
    embodied_kgco2e: float,
    n_gpus: int,
    provisioned_s: float,
    lifetime_years: float,
    scheme: str = "linear",
    age_years: float = 0.0,
    extended_years: Optional[float] = None,
    where: str = "carbon",
) -> float:
    """Embodied carbon charged to ``provisioned_s`` of ``n_gpus`` GPUs under a scheme [gCO2e].

    Parameters
    ----------
    embodied_kgco2e : embodied carbon per GPU (incl. any host share) [kgCO2e].
    n_gpus : GPUs charged.
    provisioned_s : wall-clock time the GPUs are provisioned [s].
    lifetime_years : service lifetime LT [years] (> 0).
    scheme : "linear", "extended" or "sunk" (module docstring).
    age_years : age at the start of the provisioned time [years].
    extended_years : extra years of service (scheme "extended" only) [years].

    Raises
    ------
    ConfigError
        for a non-positive lifetime, an unknown scheme, or "extended" without extended_years.
    """
    if not (lifetime_years > 0) or not math.isfinite(lifetime_years):
        raise ConfigError(
            f"{where}: lifetime {lifetime_years!r} years; a lifetime must be > 0 "
            f"(embodied carbon is amortised over it). Set a positive lifetime."
        )
    if not (embodied_kgco2e >= 0):
        raise ConfigError(f"{where}: embodied carbon {embodied_kgco2e!r} kgCO2e must be >= 0.")
    rate = embodied_kgco2e * G_PER_KG * n_gpus / (lifetime_years * S_PER_YEAR)  # [gCO2e/s]
    if scheme == "linear":
        return rate * provisioned_s
    if scheme == "extended":
        if extended_years is None or not (extended_years > 0):
            raise ConfigError(
                f"{where}: scheme 'extended' needs extended_years > 0 (got {extended_years!r}). "
                f"Set carbon.embodied_schemes.<GPU>.extended_years."
            )
        return rate * lifetime_years / (lifetime_years + extended_years) * provisioned_s
    if scheme == "sunk":
        left_s = max(0.0, (lifetime_years - age_years) * S_PER_YEAR)
        return rate * min(provisioned_s, left_s)
    raise ConfigError(f"{where}: unknown embodied scheme '{scheme}' (valid: {', '.join(SCHEMES)}).")


def embodied_by_scheme(
    embodied_kgco2e: float,
    n_gpus: int,
    provisioned_s: float,
    lifetime_years: float,
    age_years: float = 0.0,
    extended_years: Optional[float] = None,
) -> Dict[str, float]:
    """The charge under every scheme [gCO2e].

    Without ``extended_years`` (a GPU whose life is not extended) ``extended`` equals ``linear``.
    """
    out = {}
    for s in SCHEMES:
        if s == "extended" and extended_years is None:
            out[s] = embodied_charge_gco2(embodied_kgco2e, n_gpus, provisioned_s, lifetime_years)
            continue
        out[s] = embodied_charge_gco2(
            embodied_kgco2e, n_gpus, provisioned_s, lifetime_years, s, age_years, extended_years
        )
    return out
