"""PUE per site (issue 7): each instance group's energy is priced at its site's PUE."""

import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.base.units import J_PER_KWH
from greensim.experiment.load import parse_experiment

CI = 400.0
IDLE_A100_W = 63.0  # profiles/gpus.yaml A100-80GB idle power (also used in test_carbon.py)


def _two_sites(pue_a=1.1, pue_b=1.5, **kw):
    d = make_experiment(
        **{
            "carbon.intensity": {"kind": "constant", "gco2_per_kwh": CI},
            "carbon.sites": {"hyper": {"pue": pue_a}, "colo": {"pue": pue_b}},
            "cluster.instances": [{"gpu": "A100-80GB", "site": "hyper"}, {"gpu": "A100-80GB", "site": "colo"}],
            **kw,
        }
    )
    return simulate(prepare(parse_experiment(d)))


def test_two_sites_give_the_hand_computed_split():
    """One request, round robin: the 'colo' instance idles the whole run, so its carbon is
    idle power x horizon x CI x PUE, by hand; the 'hyper' one is its energy x CI x 1.1."""
    t = _two_sites(**{"workload.n_requests": 1})
    s, inst = t.summary, t.instances.set_index("site")
    H = s["duration_s"]
    assert inst.loc["colo", "busy_s"] == 0.0
    assert inst.loc["colo", "operational_gco2"] == pytest.approx(IDLE_A100_W * H / J_PER_KWH * CI * 1.5, rel=1e-12)
    assert inst.loc["hyper", "operational_gco2"] == pytest.approx(
        inst.loc["hyper", "energy_j"] / J_PER_KWH * CI * 1.1, rel=1e-12
    )
    assert inst["pue"].to_dict() == {"hyper": 1.1, "colo": 1.5}
    assert s["operational_gco2_by_site"] == pytest.approx(inst["operational_gco2"].to_dict(), rel=1e-12)
    assert sum(s["operational_gco2_by_site"].values()) == pytest.approx(s["operational_gco2"], rel=1e-12)


@pytest.mark.parametrize("which", ["hyper", "colo"])
def test_operational_is_linear_in_each_sites_pue(which):
    """Raising one site's PUE by k scales that site's operational carbon by k and leaves the
    other site's (and every energy, latency and embodied number) unchanged."""
    base = _two_sites()
    k = 1.7
    other = "colo" if which == "hyper" else "hyper"
    scaled = _two_sites(**({"pue_a": 1.1 * k} if which == "hyper" else {"pue_b": 1.5 * k}))
    b, s = base.summary["operational_gco2_by_site"], scaled.summary["operational_gco2_by_site"]
    assert s[which] == pytest.approx(b[which] * k, rel=1e-12)
    assert s[other] == b[other]
    assert scaled.summary["energy_kwh"] == base.summary["energy_kwh"]
    assert scaled.summary["embodied_gco2"] == base.summary["embodied_gco2"]


def test_default_site_is_carbon_pue_and_unchanged():
    """Groups without a site use carbon.pue (default 1.1) and are reported as site 'default';
    naming a site with the same PUE changes nothing but the label."""
    d = make_experiment(**{"carbon.intensity": {"kind": "constant", "gco2_per_kwh": CI}})
    plain = simulate(prepare(parse_experiment(d)))
    assert set(plain.instances["site"]) == {"default"} and set(plain.instances["pue"]) == {1.1}
    assert plain.summary["operational_gco2_by_site"] == {"default": pytest.approx(plain.summary["operational_gco2"])}
    assert plain.summary["operational_gco2"] == pytest.approx(plain.summary["energy_kwh"] * CI * 1.1, rel=1e-12)
    d2 = make_experiment(
        **{
            "carbon.intensity": {"kind": "constant", "gco2_per_kwh": CI},
            "carbon.sites": {"same": {"pue": 1.1}},
            "cluster.instances.0.site": "same",
        }
    )
    named = simulate(prepare(parse_experiment(d2)))
    assert named.summary["operational_gco2"] == plain.summary["operational_gco2"]
    assert named.summary["operational_gco2_by_site"] == {"same": plain.summary["operational_gco2"]}


def test_mixed_default_and_named_site():
    d = make_experiment(
        **{
            "carbon.intensity": {"kind": "constant", "gco2_per_kwh": CI},
            "carbon.pue": 1.2,
            "carbon.sites": {"colo": {"pue": 1.57}},
            "cluster.instances": [{"gpu": "A100-80GB"}, {"gpu": "A100-80GB", "site": "colo"}],
        }
    )
    t = simulate(prepare(parse_experiment(d)))
    for _, r in t.instances.iterrows():
        assert r["operational_gco2"] == pytest.approx(r["energy_j"] / J_PER_KWH * CI * r["pue"], rel=1e-12)
    assert t.instances["pue"].tolist() == [1.2, 1.57]
    assert set(t.summary["operational_gco2_by_site"]) == {"default", "colo"}


def test_unknown_site_names_the_closest():
    d = make_experiment(**{"carbon.sites": {"hyperscale": {"pue": 1.1}}, "cluster.instances.0.site": "hyperscal"})
    with pytest.raises(
        ConfigError,
        match=r"cluster\.instances\.0\.site: unknown site 'hyperscal'.*"
        r"Did you mean 'hyperscale'",
    ):
        parse_experiment(d)
    d = make_experiment(**{"cluster.instances.0.site": "x"})
    with pytest.raises(ConfigError, match="defines: none"):
        parse_experiment(d)


def test_pue_below_one_and_reserved_name_are_errors():
    with pytest.raises(ConfigError, match=r"carbon\.sites\.bad\.pue.*PUE 0\.9 is below 1"):
        parse_experiment(make_experiment(**{"carbon.sites": {"bad": {"pue": 0.9}}}))
    with pytest.raises(ConfigError, match=r"carbon\.sites\.bad\.pue: required"):
        parse_experiment(make_experiment(**{"carbon.sites": {"bad": {}}}))
    with pytest.raises(ConfigError, match="reserved"):
        parse_experiment(make_experiment(**{"carbon.sites": {"default": {"pue": 1.3}}}))


def test_dsd_draft_gpu_is_at_its_groups_site():
    d = make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "workload.n_requests": 20,
            "carbon.sites": {"colo": {"pue": 1.57}},
            "cluster.instances": [
                {
                    "gpu": "A100-80GB",
                    "site": "colo",
                    "speculative": {
                        "draft_model": "Llama-3.2-1B",
                        "draft_gpu": "V100-32GB",
                        "alpha": 0.7,
                        "gamma": 4,
                        "link": {"kind": "pcie_gen3_x16", "latency_s": 1e-5},
                    },
                }
            ],
        }
    )
    t = simulate(prepare(parse_experiment(d)))
    assert t.instances["gpu"].tolist() == ["A100-80GB", "V100-32GB"]
    assert t.instances["site"].tolist() == ["colo", "colo"] and t.instances["pue"].tolist() == [1.57, 1.57]


def test_region_totals_use_each_instances_site_pue(shared_data):
    """compare_regions re-prices the energy timeline per instance at its own site's PUE, so the
    run's own region reproduces the run's operational carbon (a single PUE would not)."""
    d = make_experiment(
        **{
            "carbon.intensity": {
                "kind": "series",
                "region": "GB",
                "start": "2023-07-01T12:00",
                "timezone": "Europe/London",
            },
            "carbon.compare_regions": ["FR"],
            "carbon.sites": {"colo": {"pue": 1.57}},
            "cluster.instances": [{"gpu": "A100-80GB"}, {"gpu": "A100-80GB", "site": "colo"}],
        }
    )
    s = simulate(prepare(parse_experiment(d))).summary
    assert s["operational_gco2_by_region"]["GB"] == pytest.approx(s["operational_gco2"], rel=1e-9)
    assert s["operational_gco2_by_region"]["GB"] != pytest.approx(
        s["energy_kwh"] * 1.1 * s["intensity_mean_gco2_per_kwh"], rel=1e-3
    )
