"""Plots of the closed-form carbon model (:mod:`greensim.carbon.theory`)."""

from __future__ import annotations

import numpy as np

from greensim.carbon.theory import Mode, savings_grid


def plot_savings_heatmap(
    base: Mode, alt: Mode, intensities, lifetimes_years, role: str, path, pue: float = 1.0, title: str = ""
) -> None:
    """PNG heatmap of the saving over (intensity x lifetime of ``role``), with the break-even contour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = savings_grid(base, alt, intensities, lifetimes_years, role, pue) * 100
    lim = max(1e-9, float(np.nanmax(np.abs(s))))
    fig, ax = plt.subplots(figsize=(8, 5))
    im = ax.pcolormesh(intensities, lifetimes_years, s, cmap="RdBu", vmin=-lim, vmax=lim, shading="auto")
    cs = ax.contour(intensities, lifetimes_years, s, levels=[0.0], colors="k", linewidths=1.5)
    ax.clabel(cs, fmt="break-even")
    fig.colorbar(im, ax=ax, label=f"carbon saving of {alt.name} vs {base.name} [%]")
    ax.set_xlabel("grid carbon intensity [gCO2e/kWh]")
    ax.set_ylabel(f"lifetime of the {role} GPU [years]")
    ax.set_title(title or f"{alt.name} vs {base.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
