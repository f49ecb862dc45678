"""Prefill/decode disaggregation (DPD) and the link model on hand-checkable cases."""

import math

import numpy as np
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.core.clock import Clock
from greensim.core.link import LINK_TYPES, Link
from greensim.experiment.load import parse_experiment


def dpd(prefill="A100-80GB", decode="A100-80GB", bw=math.inf, latency=0.0, router="least_loaded", **kw):
    d = {
        "cluster.instances": [{"gpu": prefill, "role": "prefill"}, {"gpu": decode, "role": "decode"}],
        "cluster.disaggregation": {"decode_router": router, "link": {"bandwidth_gbs": bw, "latency_s": latency}},
    }
    d.update(kw)
    return make_experiment(**d)


def test_link_processor_sharing_by_hand():
    """Two equal flows, the second joining halfway: 1.5 and 2 transfer-times (+ latency)."""
    env = Clock()
    link = Link(env, bandwidth_bps=100.0, latency_s=0.5)
    done = {}
    link.send(100.0, lambda: done.setdefault("a", env.now))
    env.timeout(0.5).callbacks.append(lambda _e: link.send(100.0, lambda: done.setdefault("b", env.now)))
    env.run()
    assert done["a"] == pytest.approx(0.5 + 1.5)
    assert done["b"] == pytest.approx(1.0 + 1.0 + 0.5)  # starts using the link at 1.0
    assert link.bytes_sent == 200.0


def test_link_alone_takes_bytes_over_bandwidth_plus_latency():
    env = Clock()
    link = Link(env, bandwidth_bps=LINK_TYPES["ethernet_25g"][0], latency_s=1e-4)
    t = []
    link.send(3.125e9, lambda: t.append(env.now))
    env.run()
    assert t == [pytest.approx(1.0 + 1e-4)]


def test_infinite_bandwidth_same_gpu_single_request_equals_colocated():
    """No transfer cost, same GPU type: one request's TTFT and E2E equal colocated serving."""
    one = {
        "workload.n_requests": 1,
        "workload.input_tokens": {"dist": "constant", "value": 900},
        "workload.output_tokens": {"dist": "constant", "value": 40},
    }
    a = simulate(prepare(parse_experiment(dpd(**one)))).requests.iloc[0]
    b = simulate(
        prepare(parse_experiment(make_experiment(**one, **{"cluster.instances": [{"gpu": "A100-80GB"}]})))
    ).requests.iloc[0]
    assert a.kv_transfer_s == 0.0 and a.decode_wait_s == 0.0
    assert a.ttft_s == pytest.approx(b.ttft_s, rel=1e-12)
    assert a.e2e_s == pytest.approx(b.e2e_s, rel=1e-12)


def test_dpd_approaches_infinite_bandwidth_pools_as_bandwidth_grows():
    """TPOT with a finite link converges to the no-transfer pools as bandwidth grows."""

    def tpot(bw):
        return simulate(prepare(parse_experiment(dpd(bw=bw)))).summary["tpot_s_mean"]

    ref = tpot(math.inf)
    slow, fast = tpot(1.0), tpot(1e4)
    assert slow > ref * 1.01
    assert fast == pytest.approx(ref, rel=1e-3)


def test_decode_backpressure_shows_as_decode_wait():
    """A decode instance with ~2.5 GB of KV cannot keep up: requests wait holding prefill KV."""
    d = dpd(decode="V100-32GB", **{"workload.rate_rps": 30, "workload.n_requests": 150})
    d["cluster"]["instances"][1]["memory_reserve_frac"] = 0.5
    t = simulate(prepare(parse_experiment(d)))
    r = t.requests
    assert t.summary["n_completed"] == 150
    assert r.decode_wait_s.max() > 0.1
    assert t.summary["decode_wait_s_p99"] > 0
    assert (r.e2e_s >= r.ttft_s + r.decode_wait_s - 1e-9).all()


def test_decode_routers_spread_and_differ():
    """Each decode router is usable by name and all decode instances get work."""
    seen = {}
    for name in ("round_robin", "least_loaded", "kv_capacity_aware"):
        d = dpd(router=name, **{"workload.rate_rps": 20})
        d["cluster"]["instances"][1]["count"] = 3
        r = simulate(prepare(parse_experiment(d))).requests
        seen[name] = r.decode_instance.to_numpy()
        assert set(r.decode_instance[r.n_output_tokens > 1]) == {1, 2, 3}
    rr = seen["round_robin"][seen["round_robin"] >= 0]
    assert (np.diff(rr[:6]) != 0).all()


@pytest.mark.parametrize(
    "link, field",
    [
        ({"bandwidth_gbs": 0, "latency_s": 0}, "cluster.disaggregation.link.bandwidth_gbs"),
        ({"kind": "pcie_gen9", "latency_s": 0}, "unknown link kind 'pcie_gen9'"),
        ({"kind": "pcie_gen4_x16"}, "cluster.disaggregation.link.latency_s"),
        ({"kind": "pcie_gen4_x16", "bandwidth_gbs": 3, "latency_s": 0}, "exactly one of kind or bandwidth_gbs"),
    ],
)
def test_bad_link_names_the_field(link, field):
    d = dpd()
    d["cluster"]["disaggregation"]["link"] = link
    with pytest.raises(ConfigError, match=field.replace(".", r"\.").replace("(", r"\(")):
        parse_experiment(d)


def test_roles_without_partner_or_disaggregation_section_are_errors():
    d = make_experiment(**{"cluster.instances": [{"gpu": "A100-80GB", "role": "prefill"}]})
    with pytest.raises(ConfigError, match="none with role 'decode'"):
        parse_experiment(d)
    d = make_experiment(
        **{"cluster.instances": [{"gpu": "A100-80GB", "role": "prefill"}, {"gpu": "T4", "role": "decode"}]}
    )
    with pytest.raises(ConfigError, match="add cluster.disaggregation"):
        parse_experiment(d)
    with pytest.raises(ConfigError, match="cluster.disaggregation.decode_router"):
        prepare(parse_experiment(dpd(router="fastest")))


def test_model_that_does_not_fit_the_decode_gpu_names_the_group():
    d = dpd(decode="T4", **{"model": "Llama-2-13B"})
    with pytest.raises(ConfigError, match=r"cluster\.instances\.1 .*does not fit"):
        prepare(parse_experiment(d))


def test_layerwise_transfer_overlaps_the_prefill_by_hand():
    """One request, L layers: the first L-1 layers' KV crosses during the prefill, the last
    after it: transfer = max(T_prefill, (L-1)/L B/bw) + B/(L bw) from the prefill start."""
    one = {
        "workload.n_requests": 1,
        "workload.input_tokens": {"dist": "constant", "value": 2000},
        "workload.output_tokens": {"dist": "constant", "value": 10},
    }
    bw = 2.0
    res = {}
    for lw in (False, True):
        d = dpd(bw=bw, **one)
        d["cluster"]["disaggregation"]["layerwise"] = lw
        p = prepare(parse_experiment(d))
        res[lw] = simulate(p).requests.iloc[0]
    t_pre = p.instances[0][1].iteration_time_s([(2000, 0)], 0, 0)
    B, L = 2000 * 2 * 32 * 32 * 128 * 2, 32  # Llama-2-7B KV bytes
    assert res[False].kv_transfer_s == pytest.approx(B / (bw * 1e9), rel=1e-9)
    assert res[True].kv_transfer_s == pytest.approx(
        max(t_pre, B * (L - 1) / L / (bw * 1e9)) + B / L / (bw * 1e9), rel=1e-9
    )
    assert res[True].e2e_s < res[False].e2e_s
    assert res[True].ttft_s == res[False].ttft_s


@pytest.mark.parametrize("bw", [2.0, 400.0])  # GB/s: transfer-bound, then prefill-bound overlap
def test_kv_transfer_closed_forms_with_link_latency(bw):
    """One request, link latency lam. After the prefill: kv_transfer_s = lam + B/bw from the prefill's
    end. Layer-wise: L-1 layers' bytes leave at the prefill's start, the last layer's after both the
    prefill and that flow: kv_transfer_s = max(T_prefill, lam + B(L-1)/(L bw)) + lam + B/(L bw) from
    the prefill's start (each flow pays the latency). The decode starts earlier by the difference."""
    lam = 2e-3
    one = {
        "workload.n_requests": 1,
        "workload.input_tokens": {"dist": "constant", "value": 2000},
        "workload.output_tokens": {"dist": "constant", "value": 10},
    }
    res = {}
    for lw in (False, True):
        d = dpd(bw=bw, latency=lam, **one)
        d["cluster"]["disaggregation"]["layerwise"] = lw
        p = prepare(parse_experiment(d))
        res[lw] = simulate(p).requests.iloc[0]
    t_pre = p.instances[0][1].iteration_time_s([(2000, 0)], 0, 0)
    B, L, rate = 2000 * 2 * 32 * 32 * 128 * 2, 32, bw * 1e9  # Llama-2-7B KV bytes, layers
    assert res[False].kv_transfer_bytes == res[True].kv_transfer_bytes == B
    after = lam + B / rate
    layerwise = max(t_pre, lam + B * (L - 1) / L / rate) + lam + B / L / rate
    assert res[False].kv_transfer_s == pytest.approx(after, rel=1e-9)
    assert res[True].kv_transfer_s == pytest.approx(layerwise, rel=1e-9)
    assert (t_pre > lam + B * (L - 1) / L / rate) == (bw > 100)  # both branches of the max are exercised
    assert res[True].ttft_s == pytest.approx(res[False].ttft_s, rel=1e-12) == pytest.approx(t_pre, rel=1e-12)
    assert res[False].e2e_s - res[True].e2e_s == pytest.approx(after - (layerwise - t_pre), rel=1e-6)


def test_kv_transfer_s_is_a_column_of_requests_parquet(tmp_path):
    """The per-request transfer time reaches the results folder, not only the summary."""
    import pandas as pd

    import greensim

    d = dpd(bw=1.0, latency=1e-3, **{"workload.n_requests": 3})
    res = greensim.run(d, out_dir=tmp_path)
    r = pd.read_parquet(res.folder / "requests.parquet")
    assert {"kv_transfer_s", "kv_transfer_bytes", "decode_wait_s"} <= set(r.columns)
    assert (r.kv_transfer_s >= r.kv_transfer_bytes / 1e9 + 1e-3 - 1e-12).all()
    np.testing.assert_array_equal(r.kv_transfer_s.to_numpy(), res.requests.kv_transfer_s.to_numpy())


def test_every_link_type_has_a_rate_and_a_source():
    for name, (bps, source) in LINK_TYPES.items():
        assert bps > 0 and math.isfinite(bps), name
        assert isinstance(source, str) and source.strip(), name


def test_pcie_generations_double_the_rate():
    """Each PCIe generation doubles the transfer rate at the same 128b/130b encoding (Gen3 8, Gen4 16, Gen5 32 GT/s)."""
    g3, g4, g5 = (LINK_TYPES[f"pcie_gen{g}_x16"][0] for g in (3, 4, 5))
    assert g4 == pytest.approx(2 * g3, rel=1e-3)
    assert g5 == pytest.approx(2 * g4, rel=1e-3)
    assert g5 == pytest.approx(32e9 * 16 * 128 / 130 / 8, rel=1e-4)


def test_link_kind_description_lists_every_link_type():
    """The experiment field's description (and so the JSON schema) names every LINK_TYPES entry."""
    from greensim.experiment.cluster import LinkConfig

    desc = LinkConfig.model_fields["kind"].description
    listed = desc.split("LINK_TYPES: ")[1].split(")")[0].split(", ")
    assert listed == list(LINK_TYPES)


@pytest.mark.parametrize("kind", ["pcie_gen5_x16", "nvlink_h100", "nvlink_b200", "infiniband_xdr"])
def test_new_link_kinds_parse(kind):
    d = dpd()
    d["cluster"]["disaggregation"]["link"] = {"kind": kind, "latency_s": 1e-5}
    parse_experiment(d)


def test_link_busy_intervals_by_hand():
    """The two flows above keep the link busy from 0.5 (first byte) to 2.5: one interval, 2 s."""
    env = Clock()
    link = Link(env, bandwidth_bps=100.0, latency_s=0.5)
    link.send(100.0, lambda: None)
    env.timeout(0.5).callbacks.append(lambda _e: link.send(100.0, lambda: None))
    env.run()
    assert link.busy_intervals(10.0) == [(pytest.approx(0.5), pytest.approx(2.5))]
    assert link.busy_s == pytest.approx(2.0)
    assert link.busy_intervals(1.0) == [(pytest.approx(0.5), 1.0)]  # clipped at the horizon


def test_link_tables_are_the_transfers_closed_form():
    """One request over a 1 GB/s link: the link is busy KV bytes / bandwidth; its table, timeline
    and summary agree with that, and with the request's kv_transfer_s less the latency."""
    d = dpd(bw=1.0, latency=1e-3, **{"workload.n_requests": 1})
    t = simulate(prepare(parse_experiment(d)))
    req = t.requests.iloc[0]
    links, tl, s = t.extra["links"], t.extra["link_timeline"], t.summary
    assert len(links) == 1
    busy = req.kv_transfer_bytes / 1e9
    assert links.busy_s[0] == pytest.approx(busy, rel=1e-9)
    assert req.kv_transfer_s == pytest.approx(busy + 1e-3, rel=1e-9)
    assert links.bytes_sent[0] == req.kv_transfer_bytes and links.n_flows[0] == 1
    width = np.minimum(t.summary["duration_s"] - tl.t_s, tl.t_s.diff().dropna().min() if len(tl) > 1 else 1e9)
    assert float((tl.busy_frac * width).sum()) == pytest.approx(busy, rel=1e-6)
    assert s["link_utilization_frac"] == pytest.approx(busy / s["duration_s"], rel=1e-9)


def test_colocated_runs_have_no_link_tables():
    t = simulate(prepare(parse_experiment(make_experiment())))
    assert "links" not in (t.extra or {}) and "link_utilization_frac" not in t.summary
