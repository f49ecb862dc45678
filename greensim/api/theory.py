"""Closed-form carbon per request of colocated-new vs DPD vs DSD serving, break-even points
and savings heatmaps, as ``greensim theory heatmap`` computes them::

    from greensim.api.theory import savings_heatmap, break_even_intensity
    hm = savings_heatmap(new_gpu="A100-80GB", old_gpu="V100-32GB", mode="DPD", out_dir="results/theory")
    break_even_intensity(hm.base, hm.alt, hm.pue)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from greensim.base.errors import ConfigError
from greensim.carbon.theory import (
    Mode,
    break_even_intensity,
    break_even_lifetime,
    build_modes,
    carbon_per_request,
    savings_grid,
)
from greensim.results.theory_plots import plot_savings_heatmap

__all__ = [
    "Heatmap",
    "savings_heatmap",
    "build_modes",
    "carbon_per_request",
    "break_even_intensity",
    "break_even_lifetime",
    "savings_grid",
    "INTENSITIES",
    "LIFETIMES",
]

#: Axes of the heatmap: grid intensity [gCO2e/kWh] and new-GPU lifetime [years].
INTENSITIES = np.linspace(0, 800, 81)
LIFETIMES = np.linspace(1, 10, 46)


@dataclass
class Heatmap:
    """The two modes compared (``base``: colocated on the new GPU; ``alt``: ``mode``), the PUE
    used and the PNG written."""

    base: Mode
    alt: Mode
    mode: str
    pue: float
    path: Path


def savings_heatmap(
    model: str = "Llama-2-7B",
    new_gpu: str = "A100-80GB",
    old_gpu: str = "V100-32GB",
    mode: str = "DPD",
    draft_model: Optional[str] = None,
    gamma: Optional[int] = None,
    alpha: Optional[float] = None,
    in_tokens: int = 512,
    out_tokens: int = 128,
    rate: float = 1.0,
    old_embodied: str = "sunk",
    lifetime_old: float = 5.0,
    pue: float = 1.1,
    old_per_new: Optional[int] = None,
    out_dir: str | Path = "results/theory",
) -> Heatmap:
    """Saving of ``mode`` (``DPD`` or ``DSD``) over colocated-new across (intensity x new-GPU
    lifetime); writes ``<out_dir>/savings_<mode>_<new>_<old>.png``.

    Parameters are those of :func:`greensim.carbon.theory.build_modes` (``rate`` per instance
    [req/s], ``lifetime_old`` [years] for ``old_embodied="linear"``); DSD needs ``draft_model``,
    ``gamma`` and ``alpha``.
    """
    if mode not in ("DPD", "DSD"):
        raise ConfigError(f"theory: mode '{mode}' unknown (valid: DPD, DSD).")
    if mode == "DSD" and not draft_model:
        raise ConfigError("theory: mode DSD needs a draft model (the small model run on the old GPU).")
    modes = build_modes(
        model,
        new_gpu,
        old_gpu,
        in_tokens,
        out_tokens,
        rate,
        5.0,
        lifetime_old,
        old_embodied,
        draft_model if mode == "DSD" else None,
        gamma,
        alpha,
        old_per_new=old_per_new,
    )
    base, alt = modes["colocated"], modes[mode]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"savings_{mode}_{new_gpu}_{old_gpu}.png"
    plot_savings_heatmap(
        base,
        alt,
        INTENSITIES,
        LIFETIMES,
        "new",
        path,
        pue,
        f"{mode} ({new_gpu} + {old_gpu}, old embodied {old_embodied}) vs {new_gpu} only, {model}, {rate:g} req/s",
    )
    return Heatmap(base, alt, mode, pue, path)
