"""Per-site grid intensity, forecasts and network round trips (carbon.sites).

A site with ``region: ZONE`` gets an hourly series that reuses carbon.intensity's start,
time zone, path, basis and gap filling (so all sites share simulated t = 0); a site with
``intensity:`` builds that source; any other site, and instance groups without a site
(``default``), use carbon.intensity. With carbon.forecast, every site whose intensity is a
series gets its own :class:`~greensim.carbon.forecast.ForecastView`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from greensim.base.errors import ConfigError
from greensim.carbon.intensity import CarbonIntensity
from greensim.carbon.registry import INTENSITY_SOURCES

__all__ = ["SiteInfo", "build_site_sources", "site_infos"]


@dataclass(frozen=True)
class SiteInfo:
    """What policies may know of a site: its intensity, forecast, PUE and round trip."""

    name: str
    intensity: CarbonIntensity  # actual intensity over simulated time
    forecast: Any  # ForecastView (carbon.forecast on a series), else None
    pue: float
    rtt_s: Optional[float]  # network round trip front end <-> site [s]; None: not modelled


def _build(spec, where: str) -> CarbonIntensity:
    cls = INTENSITY_SOURCES.get(spec.kind, field=f"{where}.kind")
    kw = {k: v for k, v in spec.model_dump().items() if k != "kind"}
    if spec.kind == "series":
        kw["where"] = where
    return cls(**kw)


def build_site_sources(exp, default: CarbonIntensity) -> Dict[str, CarbonIntensity]:
    """Intensity source of every site in carbon.sites, plus ``default`` (carbon.intensity).

    Raises :class:`ConfigError` naming ``carbon.sites.NAME.region`` / ``.intensity`` for an
    unknown zone, a start outside its series, or ``region`` without a series carbon.intensity.
    """
    from greensim.experiment.carbon import DEFAULT_SITE

    ic = exp.carbon.intensity
    out: Dict[str, CarbonIntensity] = {DEFAULT_SITE: default}
    for name, site in sorted(exp.carbon.sites.items()):
        where = f"carbon.sites.{name}"
        if site.region is not None:
            if ic.kind != "series":
                raise ConfigError(
                    f"{where}.region: a site's region reuses carbon.intensity's start and timezone, "
                    f"so carbon.intensity must be kind 'series' (got '{ic.kind}'). Make "
                    f"carbon.intensity a series, or give the site intensity: {{kind: series, region: "
                    f"{site.region}, start: ..., timezone: ...}}."
                )
            from greensim.carbon.series import SeriesIntensitySource

            out[name] = SeriesIntensitySource(
                region=site.region,
                start=ic.start,
                timezone=ic.timezone,
                path=ic.path,
                basis=ic.basis,
                gap_fill=ic.gap_fill,
                where=where,
            )
        elif site.intensity is not None:
            out[name] = _build(site.intensity, f"{where}.intensity")
        else:
            out[name] = default
    starts = {n: s.start_utc for n, s in out.items() if hasattr(s, "start_utc")}
    if len(set(starts.values())) > 1:
        items = sorted(starts.items(), key=lambda kv: (kv[0] != DEFAULT_SITE, kv[0]))  # carbon.intensity first
        a, ta = items[0]
        b, tb = next((n, t) for n, t in items if t != ta)
        a = "carbon.intensity" if a == DEFAULT_SITE else f"carbon.sites.{a}"
        raise ConfigError(
            f"carbon.sites.{b}.intensity.start: simulated t = 0 is {tb.isoformat()} there but "
            f"{ta.isoformat()} for {a}; all sites share one clock. Give every series the same "
            f"instant (start and timezone), or use region: ZONE, which reuses carbon.intensity's."
        )
    return out


def site_infos(exp, sources: Dict[str, CarbonIntensity], forecaster=None) -> Dict[str, SiteInfo]:
    """A :class:`SiteInfo` per site (and ``default``), with a forecast view per series site."""
    from greensim.experiment.carbon import DEFAULT_SITE

    out: Dict[str, SiteInfo] = {}
    for name, src in sources.items():
        site = exp.carbon.sites.get(name)
        fc = None
        if forecaster is not None and hasattr(src, "series"):
            from greensim.carbon.forecast import ForecastView

            fc = ForecastView(src, forecaster, oracle=exp.carbon.forecast.oracle)
        out[name] = SiteInfo(
            name, src, fc, site.pue if site is not None else exp.carbon.pue, site.rtt_s if site is not None else None
        )
    assert DEFAULT_SITE in out
    return out
