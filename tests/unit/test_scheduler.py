"""greenllm router (per-request online scheduling) and mixed clusters of serving modes."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import greensim
from greensim.assembly.prepare import prepare, router_extras
from greensim.base.errors import ConfigError
from greensim.carbon import theory
from greensim.experiment.load import parse_experiment
from greensim.policies.scheduler import GreenLLM, build_modes, predict

LENGTHS = {"input_tokens": {"dist": "constant", "value": 900}, "output_tokens": {"dist": "constant", "value": 200}}
DSD = {
    "draft_model": "Llama-3.2-1B",
    "draft_gpu": "V100-32GB",
    "alpha": 0.7,
    "gamma": 4,
    "probabilities": "top_k",
    "top_k": 16,
    "link": {"kind": "pcie_gen3_x16", "latency_s": 1.0e-5},
}
DISAGG = {"decode_router": "kv_capacity_aware", "link": {"kind": "pcie_gen3_x16", "latency_s": 1.0e-5}}


def _exp(instances, scheduler=None, router="round_robin", rate=4.0, n=300, intensity=300.0, **extra):
    d = {
        "name": "t",
        "seed": 3,
        "model": "Llama-3.1-8B",
        "workload": {"kind": "poisson", "rate_rps": rate, "n_requests": n, **copy.deepcopy(LENGTHS)},
        "cluster": {"router": router, "instances": instances},
        "slo": {"ttft_s": 1.0, "tpot_s": 0.1},
        "carbon": {
            "intensity": {"kind": "constant", "gco2_per_kwh": intensity},
            "pue": 1.1,
            "embodied_schemes": {"V100-32GB": {"scheme": "sunk"}},
        },
        "simulation": {"progress": False},
        "output": {"plots": False},
    }
    if any(g.get("role") == "prefill" for g in instances):
        d["cluster"]["disaggregation"] = copy.deepcopy(DISAGG)
    if scheduler is not None:
        d["cluster"]["scheduler"] = scheduler
    d.update(extra)
    return d


# new-only colocated (2 A100) next to DPD (A100 prefill -> 2 old V100 decode, embodied sunk)
COLO_DPD = [
    {"gpu": "A100-80GB", "count": 2, "max_batched_tokens": 16384},
    {"gpu": "A100-80GB", "count": 1, "max_batched_tokens": 16384, "role": "prefill"},
    {"gpu": "V100-32GB", "count": 2, "max_batched_tokens": 16384, "role": "decode", "age_years": 6},
]


def test_mixed_cluster_of_every_mode_runs():
    """Colocated, DSD, DPD and colocated speculative groups in one simulation: requests reach every
    group, DPD requests decode on the decode group only, DSD requests draft on the draft GPU only,
    and request energies and carbon add up to the instances' (idle time attributed)."""
    inst = [
        {"gpu": "A100-80GB", "max_batched_tokens": 16384},
        {"gpu": "A100-80GB", "max_batched_tokens": 16384, "speculative": DSD},
        {"gpu": "A100-80GB", "max_batched_tokens": 16384, "role": "prefill"},
        {"gpu": "V100-32GB", "count": 2, "max_batched_tokens": 16384, "role": "decode"},
        {
            "gpu": "A100-80GB",
            "max_batched_tokens": 16384,
            "speculative": {"draft_model": "Llama-3.2-1B", "alpha": 0.7, "gamma": 4},
        },
    ]
    r = greensim.run(_exp(inst, n=400), write=False, progress=False)
    q = r.requests
    assert r.summary["n_rejected"] == 0 and r.summary["n_completed"] == 400
    # instances: 0 colocated, 1 DSD target, 2 prefill, 3-4 decode, 5 spec, 6 the DSD draft GPU
    assert sorted(q["instance"].unique()) == [0, 1, 2, 5]
    dpd = q[q["instance"] == 2]
    assert dpd["decode_instance"].isin([3, 4]).all()
    assert (q.loc[q["instance"] != 2, "decode_instance"] == -1).all()
    assert (q.loc[q["instance"] == 1, "draft_instance"] == 6).all()
    assert (q.loc[q["instance"] != 1, "draft_instance"] == -1).all()
    assert r.instances.loc[6, "gpu"] == "V100-32GB"
    assert q["energy_j"].sum() == pytest.approx(r.instances["energy_j"].sum(), rel=1e-9)
    assert q["carbon_gco2"].sum() == pytest.approx(r.instances["carbon_gco2"].sum(), rel=1e-9)


# ------------------------------------------------------------------ a driven router (no simulation)
class _Clock:
    def __init__(self, extras):
        self.t = 0.0
        self.extras = extras

    def now_s(self):
        return self.t


class _Intensity:
    def __init__(self, f):
        self.f = f

    def at(self, t):
        return np.asarray([self.f(float(x)) for x in np.atleast_1d(t)])


def _driven(instances, scheduler, intensity=lambda t: 300.0, n_out=200):
    """A greenllm router bound to a real experiment's groups, driven by hand-made arrivals."""
    p = prepare(parse_experiment(_exp(instances, scheduler, router="greenllm")))
    ex = router_extras(p)
    ex["table"] = SimpleNamespace(n_output_tokens=np.full(10**6, n_out), slo_class=None)
    ex["intensity"] = _Intensity(intensity)
    ex["forecast"] = None
    r = GreenLLM(rng=np.random.default_rng(0))
    ctx = _Clock(ex)
    r.bind(ctx)
    views = []
    for gi, g in enumerate(instances):
        if g.get("role") == "decode":
            continue
        for _ in range(g.get("count", 1)):
            views.append(
                SimpleNamespace(
                    index=len(views),
                    n_waiting=0,
                    n_running=0,
                    free_kv_blocks=100,
                    total_kv_blocks=100,
                    cfg=SimpleNamespace(group=gi),
                )
            )
    return r, ctx, views


def _feed(r, ctx, views, rates, interval, n_in=900, t0=0.0):
    """Arrivals at a constant rate per interval (deterministic spacing); returns the chosen instances."""
    out, rid, t = [], 0, t0
    for rate in rates:
        end = t + interval
        step = 1.0 / rate
        while t < end - 1e-9:
            ctx.t = t
            out.append((t, r.choose(rid, n_in, views)))
            rid += 1
            t += step
        t = end
    return out


SCHED = {"replan_interval_s": 60, "window_s": 60, "switch_s": 0, "objective": "attributed"}


def _best_at(rate, ci=300.0):
    p = prepare(parse_experiment(_exp(COLO_DPD, dict(SCHED), router="greenllm")))
    ms = build_modes(p.groups, 1.1)
    return {m: predict(mm, rate, 900, 200, ci).carbon_gps / rate for m, mm in ms.items()}


def test_rates_either_side_of_the_threshold_prefer_different_modes():
    lo, hi = _best_at(1.0), _best_at(1.6)
    assert lo["colocated"] < lo["dpd"] and hi["dpd"] < hi["colocated"]


@pytest.mark.parametrize("hysteresis, max_switches", [(0.0, None), (0.10, 0)])
def test_hysteresis_prevents_flapping(hysteresis, max_switches):
    """The rate alternates 1.0 / 1.6 req/s every replan interval: without hysteresis the plan flips at
    (almost) every replan; with hysteresis above the predicted gains (< 10 %) it never switches."""
    lo, hi = _best_at(1.0), _best_at(1.6)
    gains = [1 - lo["colocated"] / lo["dpd"], 1 - hi["dpd"] / hi["colocated"]]
    assert max(gains) < 0.10
    r, ctx, views = _driven(COLO_DPD, {**SCHED, "hysteresis_frac": hysteresis})
    _feed(r, ctx, views, [1.0, 1.6] * 10, 60.0)
    n = r.report()[1]["n_plan_switches"]
    if max_switches is None:
        assert n >= 15  # 20 intervals: a flip at nearly every replan
    else:
        assert n == max_switches


def test_min_dwell_is_respected():
    r, ctx, views = _driven(COLO_DPD, {**SCHED, "min_dwell_s": 300})
    _feed(r, ctx, views, [1.0, 1.6] * 15, 60.0)
    plans = r.report()[0]["plans"]
    t = plans.loc[plans["switched"], "time_s"].drop_duplicates().to_numpy()
    assert len(t) >= 3
    assert np.diff(np.concatenate([[0.0], t])).min() >= 300 - 1e-9
    held = plans[plans["reason"].str.contains("min_dwell_s")]
    assert len(held) > 0


def test_intensity_below_break_even_switches_to_the_old_gpus():
    """Objective 'attributed': DPD (old V100s, embodied sunk) saves new-GPU embodied carbon but uses more
    energy, so it wins below the break-even intensity of greensim.carbon.theory. The intensity drops from 2x
    to 0.5x the break-even at t = 600 s: the plan is colocated before and DPD after."""
    p = prepare(parse_experiment(_exp(COLO_DPD, dict(SCHED), router="greenllm")))
    g = p.groups
    rate = 1.0
    spec_a, spec_v = g[0].carbon, g[2].carbon
    from greensim.base.units import S_PER_YEAR
    from greensim.policies.scheduler import _emb_rate

    # theory modes: per-instance rates, embodied as kg per GPU over the lifetime (sunk V100: 0)
    emb_a = _emb_rate(spec_a) * spec_a.lifetime_years * S_PER_YEAR / 1000
    base = theory.colocated(g[0].perf, 900, 200, rate / 2, 1, emb_a, spec_a.lifetime_years)
    alt = theory.dpd(
        g[1].perf,
        g[2].perf,
        900,
        200,
        rate,
        rate / 2,
        (1, emb_a, spec_a.lifetime_years),
        (1, 0.0, spec_v.lifetime_years),
    )
    # per request: one A100 at rate/2 vs the prefill A100 at rate and one of two V100s at rate/2
    ci_star = theory.break_even_intensity(base, alt, pue=1.1)
    assert 5 < ci_star < 1000
    r, ctx, views = _driven(COLO_DPD, dict(SCHED), intensity=lambda t: 2 * ci_star if t < 600 else 0.5 * ci_star)
    _feed(r, ctx, views, [rate] * 20, 60.0)
    plans = r.report()[0]["plans"]
    before = plans[(plans["time_s"] >= 120) & (plans["time_s"] < 600)]
    after = plans[plans["time_s"] >= 600]
    assert (before["mode"] == "colocated").all()
    assert (after["mode"] == "dpd").all()


# ------------------------------------------------------------------ in simulation
TWO_SIZES = [
    {"gpu": "A100-80GB", "count": 1, "max_batched_tokens": 16384},
    {"gpu": "A100-80GB", "count": 2, "max_batched_tokens": 16384},
]


def _stepped(scheduler, rates=(1.0, 14.0, 1.0), bin_s=200.0, instances=TWO_SIZES, lengths=None):
    d = _exp(instances, scheduler, router="greenllm")
    d["slo"]["tpot_s"] = 0.02  # one A100 is predicted to miss it at 14 req/s, two are not
    d["workload"] = {
        "kind": "synthetic",
        "duration_s": bin_s * len(rates),
        "arrivals": {"process": "rate_series", "rates_rps": list(rates), "bin_s": bin_s},
        "lengths": lengths or {"kind": "independent", **copy.deepcopy(LENGTHS)},
    }
    return greensim.run(d, write=False, progress=False)


def test_warm_up_is_respected():
    """The rate steps up: the plan moves to the (cold) two-A100 mode; no request reaches it before
    switch_s has passed, some do after; the plan history records it."""
    sched = {"modes": {"one": [0], "two": [1]}, "replan_interval_s": 20, "window_s": 20, "switch_s": 30}
    r = _stepped(sched)
    plans, q = r.extra["plans"], r.requests
    sw = plans[plans["switched"] & (plans["mode"] == "two")]
    assert len(sw) >= 1
    t_sw = float(sw["time_s"].iloc[0])
    on_two = q[q["instance"].isin([1, 2])]
    assert len(on_two) > 0
    assert not ((on_two["arrival_s"] > t_sw) & (on_two["arrival_s"] < t_sw + 30)).any()
    assert ((on_two["arrival_s"] >= t_sw + 30) & (on_two["arrival_s"] < t_sw + 60)).any()


def test_class_routing_follows_the_plan():
    """Two classes by input length; every request lands on an instance of the mode the plan in force
    at its arrival assigns its class (switch_s 0)."""
    sched = {
        "modes": {"one": [0], "two": [1]},
        "replan_interval_s": 20,
        "window_s": 20,
        "switch_s": 0,
        "classes": [{"name": "short", "max_input_tokens": 600}, {"name": "long"}],
    }
    lengths = {
        "kind": "independent",
        "input_tokens": {"dist": "uniform", "low": 100, "high": 1500},
        "output_tokens": {"dist": "constant", "value": 200},
    }
    r = _stepped(sched, lengths=lengths)
    plans, q = r.extra["plans"], r.requests
    assert plans["mode"].nunique() == 2  # the plan used both modes
    insts = {"one": {0}, "two": {1, 2}}
    for cls, sel in (("short", q["n_input_tokens"] <= 600), ("long", q["n_input_tokens"] > 600)):
        p = plans[plans["class"] == cls].sort_values("time_s", kind="stable")
        k = np.searchsorted(p["time_s"].to_numpy(), q.loc[sel, "arrival_s"].to_numpy(), side="right") - 1
        assert (k >= 0).all()
        mode = p["mode"].to_numpy()[k]
        ok = [inst in insts[m] for inst, m in zip(q.loc[sel, "instance"], mode)]
        assert all(ok)


def test_results_are_deterministic_and_written(tmp_path):
    sched = {
        "modes": {"one": [0], "two": [1]},
        "replan_interval_s": 20,
        "window_s": 20,
        "switch_s": 10,
        "inner_router": "power_of_two",
    }
    a = _stepped(sched)
    b = _stepped(sched)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.extra["plans"], b.extra["plans"])
    assert a.summary["n_plan_switches"] == b.summary["n_plan_switches"] >= 1
    d = _exp(TWO_SIZES, sched, router="greenllm", n=50)
    res = greensim.run(d, write=True, out_dir=tmp_path, progress=False)
    assert (res.folder / "plans.parquet").is_file() and (res.folder / "scheduler_requests.parquet").is_file()


# ------------------------------------------------------------------ errors
def _err(d):
    with pytest.raises(ConfigError) as e:
        greensim.run(d, write=False, progress=False)
    return str(e.value)


def test_scheduler_needs_greenllm_router():
    assert "set router: greenllm" in _err(_exp(TWO_SIZES, dict(SCHED), router="round_robin"))
    assert "needs cluster.scheduler" in _err(_exp(TWO_SIZES, None, router="greenllm"))


def test_missing_switch_s():
    s = {k: v for k, v in SCHED.items() if k != "switch_s"}
    assert "cluster.scheduler.switch_s: required field is missing" in _err(_exp(TWO_SIZES, s, router="greenllm"))


def test_bad_modes_and_classes():
    m = _err(_exp(TWO_SIZES, {**SCHED, "modes": {"one": [0], "two": [5]}}, router="greenllm"))
    assert "cluster.scheduler.modes.two" in m and "not an index" in m
    m = _err(_exp(TWO_SIZES, {**SCHED, "modes": {"one": [0]}}, router="greenllm"))
    assert "[1] are in no mode" in m
    m = _err(_exp(COLO_DPD, {**SCHED, "modes": {"a": [0], "b": [1, 2]}}, router="greenllm"))
    assert "role decode" in m
    m = _err(_exp(TWO_SIZES, {**SCHED, "classes": [{"name": "x", "slo_class": "chat"}]}, router="greenllm"))
    assert "'chat' is not in slo.classes" in m
    m = _err(_exp(TWO_SIZES, {**SCHED, "classes": [{"name": "short", "max_input_tokens": 100}]}, router="greenllm"))
    assert "matches no class" in m and "catch-all" in m


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_predicted_carbon_is_the_theory_per_request_carbon(rate):
    """A one-instance colocated mode: predicted carbon rate / rate = theory.carbon_per_request (its
    idle and embodied share over its utilisation), and at rate 0 the mode costs its idle power and
    embodied carbon."""
    inst = [{"gpu": "A100-80GB", "max_batched_tokens": 16384}]
    p = prepare(parse_experiment(_exp(inst, dict(SCHED), router="greenllm")))
    m = build_modes(p.groups, 1.1)["colocated"]
    g = p.groups[0]
    from greensim.base.units import S_PER_YEAR
    from greensim.policies.scheduler import _emb_rate

    emb_kg = _emb_rate(g.carbon) * g.carbon.lifetime_years * S_PER_YEAR / 1000
    th = theory.colocated(g.perf, 900, 200, rate, 1, emb_kg, g.carbon.lifetime_years)
    for ci in (0.0, 300.0):
        want = float(theory.carbon_per_request(th, ci, pue=1.1))
        assert predict(m, rate, 900, 200, ci).carbon_gps / rate == pytest.approx(want, rel=1e-9)
    idle = predict(m, 0.0, 0, 0, 300.0).carbon_gps
    assert idle == pytest.approx(300 * 1.1 * g.perf.idle_power_w / 3.6e6 + _emb_rate(g.carbon), rel=1e-12)
