"""Regions per site (issue 8): per-site grid intensity, network delay, carbon-aware routing."""

import numpy as np
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.base.units import J_PER_KWH
from greensim.experiment.load import parse_experiment

CLEAN, DIRTY = 50.0, 400.0


def _sites(
    router="round_robin",
    rtt_clean=0.02,
    rtt_dirty=0.02,
    ci_clean=CLEAN,
    ci_dirty=DIRTY,
    pue_clean=1.1,
    pue_dirty=1.4,
    **kw,
):
    return make_experiment(
        **{
            "carbon.intensity": {"kind": "constant", "gco2_per_kwh": 300.0},
            "carbon.sites": {
                "clean": {
                    "pue": pue_clean,
                    "intensity": {"kind": "constant", "gco2_per_kwh": ci_clean},
                    "rtt_s": rtt_clean,
                },
                "dirty": {
                    "pue": pue_dirty,
                    "intensity": {"kind": "constant", "gco2_per_kwh": ci_dirty},
                    "rtt_s": rtt_dirty,
                },
            },
            "cluster.router": router,
            "cluster.instances": [{"gpu": "A100-80GB", "site": "clean"}, {"gpu": "A100-80GB", "site": "dirty"}],
            **kw,
        }
    )


def _run(d):
    return simulate(prepare(parse_experiment(d)))


# ---------------------------------------------------------------- per-site intensity accounting
def test_each_site_is_priced_at_its_own_intensity_and_pue():
    """Two sites with constant intensities a and b: each instance's operational carbon is its
    energy x its site's intensity x its site's PUE; per-site totals add up to the total, and
    requests + unattributed carbon add up to the total."""
    t = _run(_sites())
    inst, s = t.instances.set_index("site"), t.summary
    for site, ci, pue in (("clean", CLEAN, 1.1), ("dirty", DIRTY, 1.4)):
        assert inst.loc[site, "operational_gco2"] == pytest.approx(
            inst.loc[site, "energy_j"] / J_PER_KWH * ci * pue, rel=1e-12
        )
        assert inst.loc[site, "intensity_mean_gco2_per_kwh"] == pytest.approx(ci)
        assert s["intensity_mean_gco2_per_kwh_by_site"][site] == pytest.approx(ci)
        assert s["energy_kwh_by_site"][site] == pytest.approx(inst.loc[site, "energy_j"] / J_PER_KWH, rel=1e-12)
        assert s["carbon_gco2_by_site"][site] == pytest.approx(
            inst.loc[site, "operational_gco2"] + inst.loc[site, "embodied_gco2"], rel=1e-12
        )
    assert sum(s["operational_gco2_by_site"].values()) == pytest.approx(s["operational_gco2"], rel=1e-12)
    assert sum(s["carbon_gco2_by_site"].values()) == pytest.approx(s["carbon_gco2"], rel=1e-12)
    assert t.requests.carbon_gco2.sum() + s["unattributed_gco2"] == pytest.approx(s["carbon_gco2"], rel=1e-9)
    assert s["request_share_by_site"] == {"clean": 0.5, "dirty": 0.5}  # round robin over two instances
    tl = t.timeline.merge(t.instances[["instance", "site"]], on="instance")
    assert set(tl.loc[tl.site == "clean", "intensity_gco2_per_kwh"]) == {CLEAN}


def test_region_shorthand_equals_an_explicit_series(shared_data):
    """site region: FR reuses carbon.intensity's start and timezone: the same numbers as an
    explicit series intensity for FR at that instant; the other site keeps carbon.intensity."""
    start = {"kind": "series", "region": "US-CAL-CISO", "start": "2023-07-01T08:00", "timezone": "America/Los_Angeles"}
    base = {
        "carbon.intensity": start,
        "workload.n_requests": 100,
        "cluster.instances": [{"gpu": "A100-80GB", "site": "paris"}, {"gpu": "A100-80GB", "site": "la"}],
    }
    a = _run(make_experiment(**base, **{"carbon.sites": {"paris": {"pue": 1.1, "region": "FR"}, "la": {"pue": 1.1}}}))
    b = _run(
        make_experiment(
            **base,
            **{
                "carbon.sites": {
                    "paris": {"pue": 1.1, "intensity": {"kind": "series", "region": "FR", "start": "2023-07-01T15:00"}},
                    "la": {"pue": 1.1},
                }
            },
        )
    )
    assert a.summary["operational_gco2_by_site"] == b.summary["operational_gco2_by_site"]
    fr, la = (
        a.summary["intensity_mean_gco2_per_kwh_by_site"]["paris"],
        a.summary["intensity_mean_gco2_per_kwh_by_site"]["la"],
    )
    assert la == pytest.approx(a.summary["intensity_mean_gco2_per_kwh"])
    assert fr < 100 < la  # France (nuclear) vs California, July 2023


# ---------------------------------------------------------------- network delay
@pytest.mark.parametrize("n_out", [1, 50])
def test_network_delay_adds_exactly_the_round_trip_to_ttft_and_e2e(n_out):
    """One request on an idle instance: TTFT and E2E with rtt are those without plus rtt
    exactly; TPOT and the time spent at the instance are unchanged."""
    one = {
        "workload.n_requests": 1,
        "workload.output_tokens": {"dist": "constant", "value": n_out},
        "cluster.instances": [{"gpu": "A100-80GB", "site": "far"}],
    }
    r0 = _run(make_experiment(**one, **{"carbon.sites": {"far": {"pue": 1.1}}})).requests.iloc[0]
    rtt = 0.137
    r1 = _run(make_experiment(**one, **{"carbon.sites": {"far": {"pue": 1.1, "rtt_s": rtt}}})).requests.iloc[0]
    assert r1.ttft_s == pytest.approx(r0.ttft_s + rtt, abs=1e-12)
    assert r1.e2e_s == pytest.approx(r0.e2e_s + rtt, abs=1e-12)
    assert r1.network_delay_s == rtt
    assert r1.queue_delay_s == pytest.approx(r0.queue_delay_s, abs=1e-12)
    assert (np.isnan(r0.tpot_s) and np.isnan(r1.tpot_s)) or r1.tpot_s == pytest.approx(r0.tpot_s, rel=1e-9)
    assert r1.energy_j == pytest.approx(r0.energy_j + 63.0 * rtt, rel=1e-9)  # + idle power (A100 63 W) x rtt


def test_network_delay_keeps_causality_and_counts_requests_in_transit():
    """Under load every request pays its site's round trip; TTFT >= rtt + time at the instance."""
    t = _run(_sites(rtt_clean=0.3, rtt_dirty=0.05, **{"workload.rate_rps": 20}))
    r = t.requests
    assert set(r.network_delay_s) == {0.3, 0.05}
    site = r.instance.map(t.instances.set_index("instance")["site"])
    assert (r.network_delay_s[site == "clean"] == 0.3).all()
    assert (r.queue_delay_s >= 0).all()
    assert (r.ttft_s >= r.network_delay_s + r.queue_delay_s - 1e-12).all()
    assert (r.ttft_s <= r.e2e_s).all()
    assert t.summary["n_completed"] == len(r)


# ---------------------------------------------------------------- carbon_aware router
def test_carbon_aware_sends_everything_to_the_cleaner_site_when_slos_are_loose():
    loose = {"slo": {"ttft_s": 100.0, "tpot_s": 10.0}}
    ca = _run(_sites("carbon_aware", **loose))
    rr = _run(_sites("round_robin", **loose))
    assert ca.summary["request_share_by_site"] == {"clean": 1.0, "dirty": 0.0}
    assert ca.summary["operational_gco2"] < 0.7 * rr.summary["operational_gco2"]


def test_carbon_aware_never_picks_a_clean_site_beyond_the_ttft_slo():
    """rtt of the clean site above the TTFT SLO: its predicted TTFT never fits, so every
    request goes to the near, dirty site (which keeps the SLO at this load)."""
    t = _run(_sites("carbon_aware", rtt_clean=1.2, rtt_dirty=0.01))
    assert t.summary["request_share_by_site"]["clean"] == 0.0
    assert t.summary["ttft_attainment_frac"] == 1.0


def test_carbon_aware_falls_back_to_the_fastest_site():
    """No site can meet the TTFT SLO: the request goes to the lowest predicted TTFT (near site)."""
    t = _run(_sites("carbon_aware", rtt_clean=30.0, rtt_dirty=2.0))
    assert t.summary["request_share_by_site"] == {"clean": 0.0, "dirty": 1.0}


def test_carbon_aware_spills_to_the_dirty_site_under_load_and_keeps_the_slo():
    """At a rate one A100 cannot serve within the TTFT SLO, part of the load spills to the
    dirty site; SLO attainment stays at join-shortest-queue's level and carbon is lower."""
    hi = {"workload.rate_rps": 14, "workload.n_requests": 600, "slo": {"ttft_s": 0.5, "tpot_s": 0.1}}
    ca = _run(_sites("carbon_aware", **hi))
    jsq = _run(_sites("join_shortest_queue", **hi))
    share = ca.summary["request_share_by_site"]["clean"]
    assert 0.5 < share < 1.0
    assert ca.summary["operational_gco2"] < jsq.summary["operational_gco2"]
    assert ca.summary["slo_attainment_frac"] >= jsq.summary["slo_attainment_frac"] - 0.05


def test_carbon_aware_ties_share_the_load():
    """Equal sites (same intensity, PUE, rtt): lower predicted TTFT breaks the tie, so both
    sites serve requests rather than the alphabetically first taking all."""
    t = _run(_sites("carbon_aware", ci_clean=DIRTY, pue_clean=1.4, **{"workload.rate_rps": 10}))
    share = t.summary["request_share_by_site"]
    assert 0.3 < share["clean"] < 0.7


def test_carbon_aware_is_deterministic():
    a = _run(_sites("carbon_aware", **{"workload.rate_rps": 14}))
    b = _run(_sites("carbon_aware", **{"workload.rate_rps": 14}))
    assert a.requests.instance.tolist() == b.requests.instance.tolist()
    assert a.summary["carbon_gco2"] == b.summary["carbon_gco2"]


def test_carbon_aware_reads_site_forecasts(shared_data):
    """With carbon.forecast, each series site has its own forecast view and the router uses it."""
    d = make_experiment(
        **{
            "carbon.intensity": {
                "kind": "series",
                "region": "US-CAL-CISO",
                "start": "2023-07-01T08:00",
                "timezone": "America/Los_Angeles",
            },
            "carbon.forecast": {"kind": "seasonal_naive", "lag_h": 24},
            "carbon.sites": {"paris": {"pue": 1.1, "region": "FR", "rtt_s": 0.02}, "la": {"pue": 1.1, "rtt_s": 0.02}},
            "cluster.router": "carbon_aware",
            "cluster.instances": [{"gpu": "A100-80GB", "site": "paris"}, {"gpu": "A100-80GB", "site": "la"}],
        }
    )
    p = prepare(parse_experiment(d))
    assert p.sites["paris"].forecast is not None and p.sites["la"].forecast is not None
    fr_fc = float(p.sites["paris"].forecast.at(0.0, 1)[0])
    fr_yday = float(p.sites["paris"].intensity.at(-86400.0 + 3600 * 0))  # same hour yesterday
    assert fr_fc == pytest.approx(fr_yday)
    t = simulate(p)
    assert t.summary["request_share_by_site"]["paris"] > 0.9


# ---------------------------------------------------------------- bad input
def _err(d) -> str:
    with pytest.raises(ConfigError) as e:
        prepare(parse_experiment(d))
    return str(e.value)


def test_unknown_site_region_names_the_field(shared_data):
    d = make_experiment(
        **{
            "carbon.intensity": {"kind": "series", "region": "GB", "start": "2023-07-01T08:00"},
            "carbon.sites": {"x": {"pue": 1.1, "region": "FRANCE"}},
            "cluster.instances": [{"gpu": "A100-80GB", "site": "x"}],
        }
    )
    msg = _err(d)
    assert "carbon.sites.x.region" in msg and "FRANCE" in msg


def test_site_region_needs_a_series_carbon_intensity():
    d = make_experiment(
        **{
            "carbon.sites": {"x": {"pue": 1.1, "region": "FR"}},
            "cluster.instances": [{"gpu": "A100-80GB", "site": "x"}],
        }
    )
    assert "carbon.sites.x.region" in _err(d)


def test_region_and_intensity_together_are_an_error():
    d = make_experiment(
        **{"carbon.sites": {"x": {"pue": 1.1, "region": "FR", "intensity": {"kind": "constant", "gco2_per_kwh": 1}}}}
    )
    with pytest.raises(ConfigError, match="carbon.sites.x"):
        parse_experiment(d)


def test_negative_rtt_names_the_field():
    with pytest.raises(ConfigError, match=r"carbon.sites.clean.rtt_s"):
        parse_experiment(_sites(rtt_clean=-0.01))


def test_rtt_on_one_site_requires_it_everywhere():
    d = _sites()
    d["carbon"]["sites"]["dirty"].pop("rtt_s")
    with pytest.raises(ConfigError, match=r"carbon.sites.dirty.rtt_s: required"):
        parse_experiment(d)
    d = _sites()
    d["cluster"]["instances"].append({"gpu": "A100-80GB"})
    with pytest.raises(ConfigError, match=r"cluster.instances.2.site"):
        parse_experiment(d)


def test_carbon_aware_needs_two_sites():
    d = _sites("carbon_aware")
    d["cluster"]["instances"] = [{"gpu": "A100-80GB", "site": "clean", "count": 2}]
    msg = _err(d)
    assert "cluster.router" in msg and "two or more" in msg


def test_carbon_aware_needs_sites_with_rtt():
    d = make_experiment(**{"cluster.router": "carbon_aware"})
    assert "cluster.instances.0.site" in _err(d)
    d = make_experiment(
        **{
            "cluster.router": "carbon_aware",
            "carbon.sites": {"a": {"pue": 1.1}, "b": {"pue": 1.1}},
            "cluster.instances": [{"gpu": "A100-80GB", "site": "a"}, {"gpu": "A100-80GB", "site": "b"}],
        }
    )
    assert "carbon.sites.a.rtt_s" in _err(d)


def test_carbon_aware_without_slo_data_names_what_is_missing():
    """Used outside the runner (no router extras), bind() says what it needs."""
    from greensim.core.interfaces import RouterContext
    from greensim.policies.carbon_aware import CarbonAware

    with pytest.raises(ConfigError, match="ttft_slo_s"):
        CarbonAware().bind(
            RouterContext(
                env=None, extras={"sites": {}, "instance_perf": [], "mean_output_tokens": 100.0, "tpot_slo_s": [1.0]}
            )
        )


def test_unknown_router_option_is_named():
    d = _sites("carbon_aware", **{"cluster.router_options": {"iner": "round_robin"}})
    msg = _err(d)
    assert "cluster.router_options.iner" in msg and "inner" in msg
    d = _sites("carbon_aware", **{"cluster.router_options": {"inner": "nope"}})
    assert "cluster.router_options.inner" in _err(d)


def test_series_sites_must_share_the_clock(shared_data):
    d = make_experiment(
        **{
            "carbon.intensity": {"kind": "series", "region": "GB", "start": "2023-07-01T08:00"},
            "carbon.sites": {
                "x": {"pue": 1.1, "intensity": {"kind": "series", "region": "FR", "start": "2023-07-02T08:00"}}
            },
            "cluster.instances": [{"gpu": "A100-80GB", "site": "x"}],
        }
    )
    assert "carbon.sites.x.intensity.start" in _err(d)
