"""Experiment schema, ``carbon`` section: intensity sources, embodied schemes, host share, forecasts, sites."""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator
from typing_extensions import Annotated

from greensim.experiment.model import StrictModel

DEFAULT_SITE = "default"  # the site of groups without ``site``: carbon.pue

#: Largest grid intensity accepted [gCO2e/kWh]: over 5x the highest life-cycle intensity of any
#: generation technology in IPCC AR5 WG3 Annex III, Table A.III.2 (coal, pulverised: max 910
#: gCO2eq/kWh). A larger value is a unit error (g/MWh, mg/kWh), not a grid.
MAX_GCO2_PER_KWH = 5000.0


class ConstantIntensity(StrictModel):
    kind: Literal["constant"]
    gco2_per_kwh: float = Field(
        ge=0, le=MAX_GCO2_PER_KWH, description="grid carbon intensity [gCO2e/kWh], at most 5000 (a unit check)"
    )


class SeriesIntensity(StrictModel):
    """Hourly (or finer) regional series; simulated t = 0 is wall-clock ``start`` in ``timezone``."""

    kind: Literal["series"]
    region: str = Field(
        description="zone code, e.g. US-CAL-CISO, FR, GB, PJM (see ../shared/data/carbon/PROVENANCE.md)"
    )
    start: str = Field(
        description="ISO 8601 wall-clock time of simulated t = 0, e.g. 2023-06-01T08:00 (naive: read in timezone)"
    )
    timezone: str = Field("UTC", description="IANA time zone of start, e.g. America/Los_Angeles")
    path: Optional[str] = Field(
        None,
        description="CSV (timestamp_utc, region, gco2_per_kwh[, gco2_per_kwh_direct]); "
        "default: the shared files in ../shared/data/carbon or $GREENSIM_DATA_DIR",
    )
    basis: Literal["lifecycle", "direct"] = Field(
        "lifecycle",
        description="life-cycle (LCA) or direct (combustion) "
        "factors; both files are average, not marginal, intensities",
    )
    gap_fill: Literal["error", "linear", "ffill"] = Field(
        "error", description="missing/NaN values: error, or fill (the count is reported as intensity_n_filled)"
    )


class DiurnalIntensity(StrictModel):
    """Synthetic daily cycle mean x (1 + amplitude_frac cos(2 pi (h - peak_hour)/24)); no defaults (not data)."""

    kind: Literal["diurnal"]
    mean_gco2_per_kwh: float = Field(
        ge=0, le=MAX_GCO2_PER_KWH / 2, description="daily mean [gCO2e/kWh]; mean x (1 + amplitude) at most 5000"
    )
    amplitude_frac: float = Field(ge=0, le=1, description="half of (max - min) / mean [-]")
    peak_hour: float = Field(ge=0, lt=24, description="hour of the daily maximum [h]")
    start_hour: float = Field(0.0, ge=0, lt=24, description="hour of day at simulated t = 0 [h]")


Intensity = Annotated[Union[ConstantIntensity, SeriesIntensity, DiurnalIntensity], Field(discriminator="kind")]


class HostShare(StrictModel):
    """The host server's embodied carbon, shared among its GPUs (no default: sources differ 4x)."""

    embodied_kgco2e: float = Field(
        gt=0,
        description="embodied carbon of one host server without GPUs [kgCO2e]; "
        "HPE PCF sheets give 848-3,880 kg (../shared/data/carbon/embodied_gpu.csv host rows)",
    )
    gpus_per_host: int = Field(ge=1, description="GPUs sharing one host (e.g. 8 in an HGX/DGX server)")


class EmbodiedScheme(StrictModel):
    """How a GPU type's embodied carbon is amortised (paper.md 6.2: same / extended / sunk)."""

    scheme: Literal["linear", "extended", "sunk"] = Field(
        "linear",
        description="linear: E x T / LT whatever the age ('as if new'); extended: E x T / (LT + "
        "extended_years) (a reused GPU's life is extended); sunk: 0 once age >= LT (already amortised)",
    )
    extended_years: Optional[float] = Field(
        None, gt=0, description="extra service years beyond the lifetime [years]; required by scheme extended"
    )


class ForecastOpts(StrictModel):
    """Carbon-intensity forecasts that policies read (never future actuals unless oracle)."""

    kind: str = Field(
        "ridge",
        description="forecaster name (ridge, seasonal_naive, persistence, ets); default ridge: direct "
        "multi-horizon ridge regression on lagged values refitted at each origin (lagged-value "
        "features after CarbonCast, Maji et al. BuildSys 2022), which beats the 24 h seasonal naive "
        "by >= 10 % mean MAPE over 1-24 h on each of the 14 shared series (README 'Forecasting'); "
        "it needs 672 h (4 weeks) of history before the start",
    )
    horizon_h: int = Field(24, ge=1, le=168, description="forecast horizon [h]")
    lag_h: int = Field(
        24, ge=1, description="seasonal lag of seasonal_naive [h] (24 = same hour yesterday, 168 = last week)"
    )
    oracle: bool = Field(False, description="give policies the future actuals instead (comparison only)")


class Site(StrictModel):
    """A data-centre site: its PUE, optionally its own grid intensity and its network round trip.

    Grid intensity: ``region: ZONE`` (a series reusing carbon.intensity's start, timezone, path,
    basis and gap_fill, so every site shares simulated t = 0), or ``intensity:`` (any
    carbon.intensity kind), or neither (carbon.intensity).
    """

    pue: float = Field(
        description="power usage effectiveness of the site [-], >= 1; no default (sites differ): "
        "Google fleet 1.10 (2021), Meta 1.08 (2023), industry average 1.57 (Uptime 2021), "
        "../shared/data/carbon/pue_lifetime.csv"
    )
    region: Optional[str] = Field(
        None,
        description="grid zone of the site (e.g. FR, GB, US-CAL-CISO): an hourly "
        "series with carbon.intensity's start, timezone, path, basis and gap_fill "
        "(carbon.intensity must be kind series); default: carbon.intensity",
    )
    intensity: Optional[Intensity] = Field(
        None,
        description="the site's own grid intensity (constant, series or "
        "diurnal), instead of region; default: carbon.intensity",
    )
    rtt_s: Optional[float] = Field(
        None,
        ge=0,
        description="network round trip between the users' front end and "
        "the site [s]; no default (it depends on where users and sites are): Azure "
        "measured monthly mean inter-region round trips of 3-28 ms within Europe and "
        "5-72 ms within North America (Oct 2019, learn.microsoft.com/azure/networking/"
        "azure-network-latency). A request pays rtt_s/2 before it reaches the instance "
        "and rtt_s/2 after its first and last tokens. If any site sets it, every instance "
        "group needs a site that sets it",
    )

    @model_validator(mode="after")
    def _one_intensity(self):
        if self.region is not None and self.intensity is not None:
            raise ValueError("set region (a zone reusing carbon.intensity's start/timezone) or intensity, not both")
        return self

    @field_validator("pue")
    @classmethod
    def _pue_at_least_one(cls, v: float):
        if not (v >= 1.0):
            raise ValueError(
                f"PUE {v} is below 1, but PUE = facility power / IT power >= 1. Use e.g. 1.1 "
                f"(hyperscale) or 1.57 (industry average, Uptime 2021)"
            )
        return v


class Carbon(StrictModel):
    accounting: Literal["provisioned", "busy"] = Field(
        "provisioned",
        description="how GPU time is charged: provisioned = every provisioned GPU's energy (idle "
        "included) and embodied carbon for the whole run (what an operator of dedicated GPUs pays); "
        "busy = energy and embodied carbon only while busy (embodied x busy time / lifetime, ACT's "
        "CF = OP + T/LT x E with T the execution time: idle capacity is assumed to serve other work). "
        "Both are always reported (summary *_provisioned / *_busy)",
    )
    embodied_scope: Literal["chip", "board", "server"] = Field(
        "board",
        description="what a GPU's embodied carbon covers: chip = die + memory + packages, ACT-style "
        "from die area and memory size (greensim/carbon/act.py); board = the catalogue's board LCA "
        "value (ADEME/Hubblo); server = board + a per-GPU share of the host server (catalogue "
        "host_embodied_kgco2e / gpus_per_host, or carbon.host_share). Default board; server when "
        "carbon.host_share is set",
    )
    intensity: Intensity = Field(
        default_factory=lambda: ConstantIntensity(kind="constant", gco2_per_kwh=260.7),
        description="default: US-CAL-CISO 2023 mean LCA intensity, Electricity Maps",
    )
    pue: float = Field(
        1.1, ge=1.0, description="power usage effectiveness; default 1.1 (Chien et al. HotCarbon'23; LLMCarbon)"
    )
    lifetime_years: float = Field(
        5.0, gt=0, description="GPU service lifetime [years]; default 5 (Meta, Amazon 10-K FY2022)"
    )
    gpu_lifetime_years: Dict[str, float] = Field(default_factory=dict, description="per-GPU lifetime overrides [years]")
    gpu_embodied_kgco2e: Dict[str, float] = Field(
        default_factory=dict,
        description="per-GPU embodied overrides of the GPU's own part in the chosen scope [kgCO2e] "
        "(the host share is added on top under scope server)",
    )
    embodied_schemes: Dict[str, EmbodiedScheme] = Field(
        default_factory=dict, description="per-GPU amortisation scheme (default linear for every GPU)"
    )
    host_share: Optional[HostShare] = Field(
        None,
        description="the host server for scope server, instead of the catalogue's (setting it "
        "without embodied_scope selects scope server)",
    )
    compare_regions: List[str] = Field(
        default_factory=list,
        description="also report operational carbon of the same "
        "energy timeline under these regions' series (same start/timezone/basis)",
    )
    forecast: Optional[ForecastOpts] = Field(None, description="intensity forecasts offered to policies")
    sites: Dict[str, Site] = Field(
        default_factory=dict,
        description="named sites with their own PUE; an instance "
        "group picks one with site: NAME (groups without one use carbon.pue)",
    )

    @model_validator(mode="before")
    @classmethod
    def _host_share_means_server(cls, data):
        if isinstance(data, dict) and data.get("host_share") is not None and "embodied_scope" not in data:
            data = dict(data, embodied_scope="server")
        return data

    @field_validator("gpu_lifetime_years", "gpu_embodied_kgco2e")
    @classmethod
    def _positive(cls, v: Dict[str, float]):
        for k, x in v.items():
            if not (x >= 0) or x != x:
                raise ValueError(f"value for '{k}' must be a non-negative number, got {x}")
        return v
