"""Plot of an aging sweep: SLO attainment and carbon per request against GPU age."""

from __future__ import annotations


def plot_age_sweep(df, path, title: str) -> None:
    """PNG: SLO attainment and carbon per request against the age of the aged group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(df["age_years"], 100 * df["slo_attainment_frac"], marker="o")
    ax[0].set_ylabel("SLO attainment [%]")
    ax[1].plot(df["age_years"], df["carbon_gco2_per_request"], marker="o", label="total")
    ax[1].plot(df["age_years"], df["operational_gco2_per_request"], marker=".", ls="--", label="operational")
    ax[1].plot(df["age_years"], df["embodied_gco2_per_request"], marker=".", ls=":", label="embodied")
    ax[1].set_ylabel("carbon per request [gCO2e]")
    ax[1].legend()
    for a in ax:
        a.set_xlabel("age of the aged GPU group [years]")
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
