"""Carbon accounting (provisioned | busy) and embodied scope (chip | board | server)."""

import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.carbon.act import chip_embodied_kgco2e
from greensim.carbon.embodied import scoped_embodied_kgco2e
from greensim.experiment.load import parse_experiment
from greensim.hardware.catalog import load_catalog

YEAR_S = 365 * 24 * 3600.0


def _run(**updates):
    return simulate(prepare(parse_experiment(make_experiment(**updates))))


@pytest.mark.parametrize("accounting", ["provisioned", "busy"])
def test_parts_sum_to_totals(accounting):
    """Instances sum to the summary, requests plus unattributed to the total, in each accounting."""
    t = _run(**{"carbon.accounting": accounting, "cluster.instances": [{"gpu": "A100-80GB", "count": 3}]})
    s = t.summary
    assert s["accounting"] == accounting
    for part in ("operational_gco2", "embodied_gco2", "carbon_gco2"):
        assert t.instances[part].sum() == pytest.approx(s[part], rel=1e-12)
        assert s[part] == pytest.approx(s[f"{part}_{accounting}"], rel=1e-12)
    assert t.requests.carbon_gco2.sum() + s["unattributed_gco2"] == pytest.approx(s["carbon_gco2"], rel=1e-9)
    assert t.timeline.operational_gco2.sum() == pytest.approx(s["operational_gco2"], rel=1e-9)


def test_busy_charges_busy_energy_and_busy_time():
    """Hand computation: busy operational = busy kWh x CI x PUE, busy embodied = E x busy time / LT."""
    t = _run(
        **{
            "carbon": {
                "accounting": "busy",
                "intensity": {"kind": "constant", "gco2_per_kwh": 400.0},
                "pue": 1.25,
                "lifetime_years": 4.0,
                "gpu_embodied_kgco2e": {"A100-80GB": 100.0},
            }
        }
    )
    s, inst = t.summary, t.instances
    assert s["operational_gco2"] == pytest.approx(inst.busy_energy_j.sum() / 3.6e6 * 400.0 * 1.25, rel=1e-9)
    assert s["embodied_gco2"] == pytest.approx(100.0 * 1000 * inst.busy_s.sum() / (4 * YEAR_S), rel=1e-9)
    # the provisioned view of the same run charges idle energy and the whole horizon
    assert s["embodied_gco2_provisioned"] == pytest.approx(2 * 100.0 * 1000 * s["duration_s"] / (4 * YEAR_S))
    assert s["operational_gco2_provisioned"] == pytest.approx(s["energy_kwh"] * 400.0 * 1.25, rel=1e-9)
    assert s["carbon_gco2_busy"] < s["carbon_gco2_provisioned"]  # the GPUs idle between requests at 4 req/s
    # per-request energy under busy accounting is the busy energy only
    assert t.requests.energy_j.sum() == pytest.approx(inst.busy_energy_j.sum(), rel=1e-9)


def test_busy_equals_provisioned_when_never_idle(tmp_path):
    """All requests at t = 0 on one GPU: it is busy the whole run, so the two accountings agree."""
    p = tmp_path / "t.csv"
    p.write_text(
        "arrival_time_s,input_tokens,output_tokens\n"
        + "".join(f"0,{n},{m}\n" for n, m in [(500, 100), (300, 50), (800, 200)])
    )
    t = _run(**{"workload": {"kind": "trace", "path": str(p)}, "cluster.instances": [{"gpu": "A100-80GB", "count": 1}]})
    s = t.summary
    assert t.instances.busy_s.iloc[0] == pytest.approx(s["duration_s"], rel=1e-12)
    assert s["carbon_gco2_busy"] == pytest.approx(s["carbon_gco2_provisioned"], rel=1e-9)


def test_act_chip_value_by_hand():
    """A100-80GB, ACT defaults: 8.26 cm^2 x (583 x 2.15 + 275 + 500) / 0.875 + 80 GB x 65 / 0.875 + 6 x 150 g."""
    die = 8.26 * (583 * 2.15 + (350 + 200) / 2 + 500) / 0.875
    mem = 80 * 65 / 0.875
    hand = (die + mem + 6 * 150) / 1000
    assert chip_embodied_kgco2e(826, "7nm", 80, 5) == pytest.approx(hand, rel=1e-12)
    assert 25 < hand < 27  # research/paper_claims.md section 1: ~26 kg
    a100 = load_catalog().gpu("A100-80GB", "gpu")
    assert scoped_embodied_kgco2e(a100, "chip") == (pytest.approx(hand, rel=1e-12), 0.0)


def test_scopes_order_and_host_share():
    cat = load_catalog()
    for name in ("A100-80GB", "H100-SXM", "V100-32GB", "T4", "L4"):
        g = cat.gpu(name, "gpu")
        chip, _ = scoped_embodied_kgco2e(g, "chip")
        board, host0 = scoped_embodied_kgco2e(g, "board")
        own, host = scoped_embodied_kgco2e(g, "server")
        assert chip < board == own and host0 == 0.0
        assert host == pytest.approx(g.host_embodied_kgco2e / g.gpus_per_host)
    g = cat.gpu("A100-80GB", "gpu")
    assert scoped_embodied_kgco2e(g, "server", host_kgco2e=1600.0, gpus_per_host=4) == (111.3, 400.0)
    assert scoped_embodied_kgco2e(g, "chip", override_kgco2e=30.0) == (30.0, 0.0)


@pytest.mark.parametrize("scope", ["chip", "board", "server"])
def test_scope_reaches_the_run(scope):
    cat = load_catalog()
    own, host = scoped_embodied_kgco2e(cat.gpu("A100-80GB", "gpu"), scope)
    s = _run(**{"carbon.embodied_scope": scope}).summary
    assert s["embodied_gco2"] == pytest.approx(2 * (own + host) * 1000 * s["duration_s"] / (5 * YEAR_S), rel=1e-9)


def test_host_share_alone_selects_server_scope():
    """Experiments written before embodied_scope existed keep their meaning: host_share adds the host."""
    hs = {"embodied_kgco2e": 1650.0, "gpus_per_host": 8}
    e = parse_experiment(make_experiment(**{"carbon.host_share": hs}))
    assert e.carbon.embodied_scope == "server"
    e = parse_experiment(make_experiment(**{"carbon.host_share": hs, "carbon.embodied_scope": "board"}))
    assert e.carbon.embodied_scope == "board"


def test_bad_scope_and_missing_inputs_are_clear():
    with pytest.raises(Exception, match="embodied_scope"):
        parse_experiment(make_experiment(**{"carbon.embodied_scope": "rack"}))
    with pytest.raises(Exception, match="accounting"):
        parse_experiment(make_experiment(**{"carbon.accounting": "sometimes"}))
    g = load_catalog().gpu("A100-80GB", "gpu")
    import dataclasses

    bare = dataclasses.replace(g, die_area_mm2=None, host_embodied_kgco2e=None)
    with pytest.raises(ConfigError, match="die_area_mm2"):
        scoped_embodied_kgco2e(bare, "chip")
    with pytest.raises(ConfigError, match="host_share"):
        scoped_embodied_kgco2e(bare, "server")
