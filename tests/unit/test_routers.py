"""Load balancers: least KV use and power-of-two choices."""

from dataclasses import dataclass

import numpy as np
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.experiment.load import parse_experiment
from greensim.policies.routers import LeastKVUse, PowerOfTwoChoices


@dataclass
class View:
    index: int
    n_waiting: int
    n_running: int
    free_kv_blocks: int
    total_kv_blocks: int


def test_least_kv_picks_largest_free_fraction_then_fewest_requests():
    v = [View(0, 0, 5, 50, 100), View(1, 3, 9, 900, 1000), View(2, 0, 1, 90, 100), View(3, 0, 0, 90, 100)]
    assert LeastKVUse().choose(0, 10, v) == 3  # 90% free like #1 and #2, but fewest requests


def test_power_of_two_picks_the_less_loaded_of_two_distinct_draws():
    loads = [7, 0, 3, 9, 4]
    views = [View(i, 0, l, 1, 1) for i, l in enumerate(loads)]
    r, ref = PowerOfTwoChoices(np.random.default_rng(5)), np.random.default_rng(5)
    for _ in range(200):
        a = int(ref.integers(5))
        b = int(ref.integers(4))
        b += b >= a
        assert a != b
        assert r.choose(0, 1, views) == (a if loads[a] <= loads[b] else b)


def test_power_of_two_beats_round_robin_on_mixed_gpus_and_is_deterministic():
    """2 x A100 + 2 x V100: round robin overloads the slow V100s; p2c sees their queues and
    sends them less. Same seed, same routing."""
    upd = {
        "workload.n_requests": 1500,
        "workload.rate_rps": 20,  # round robin must overload the V100s (kernel model: they keep up at 16)
        "cluster.instances": [{"gpu": "A100-80GB", "count": 2}, {"gpu": "V100-32GB", "count": 2}],
    }
    rr = simulate(prepare(parse_experiment(make_experiment(**upd)))).summary
    p2 = lambda: simulate(prepare(parse_experiment(make_experiment(**upd, **{"cluster.router": "power_of_two"}))))
    a, b = p2(), p2()
    assert a.summary["ttft_s_p99"] < 0.5 * rr["ttft_s_p99"]
    assert a.summary["slo_attainment_frac"] > rr["slo_attainment_frac"] + 0.1
    assert (a.requests.instance >= 2).mean() < 0.45  # the V100s get less than their 50%
    assert (a.requests.instance == b.requests.instance).all()


def test_router_randomness_does_not_shift_arrivals():
    base = simulate(prepare(parse_experiment(make_experiment()))).requests
    p2 = simulate(prepare(parse_experiment(make_experiment(**{"cluster.router": "power_of_two"})))).requests
    assert (base.arrival_s == p2.arrival_s).all() and (base.n_input_tokens == p2.n_input_tokens).all()


def test_router_bind_sees_the_clock_labels_and_extras():
    """A router with bind() gets the simulated clock and the runner's extras; instances
    carry their group, site and mode labels."""
    from greensim.assembly.prepare import router_extras
    from greensim.core.simulation import Simulation

    seen = []

    class Spy:
        def bind(self, ctx):
            self.ctx = ctx

        def choose(self, request_id, n_input_tokens, instances):
            seen.append((self.ctx.now_s(), tuple((v.cfg.group, v.cfg.site, v.cfg.mode) for v in instances)))
            return request_id % len(instances)

    exp = parse_experiment(make_experiment(**{"workload.n_requests": 20}))
    p = prepare(exp)
    spy = Spy()
    Simulation(p.table, p.instances, spy, p.bin_s, router_extras=router_extras(p)).run()
    assert spy.ctx.extras["experiment"] is exp and spy.ctx.extras["intensity"] is p.intensity
    assert [t for t, _ in seen] == list(p.table.arrival_s)  # the clock at each arrival
    n = len(p.instances)
    assert seen[0][1] == tuple((0, "default", "colocated") for _ in range(n))


def _class_split(router_options, **extra):
    from conftest import make_experiment

    return make_experiment(
        **{
            "model": "Llama-3.1-8B",
            "workload.slo_class_frac": {"batch": 0.3},
            "slo.classes": {"batch": {"ttft_s": 10.0, "tpot_s": 0.5}},
            "cluster.router": "class_affinity",
            "cluster.router_options": router_options,
            "cluster.instances": [{"gpu": "A100-80GB", "count": 2}, {"gpu": "V100-32GB", "age_years": 6}],
            **extra,
        }
    )


def test_class_affinity_sends_each_class_to_its_gpus():
    """Old GPUs serve the looser-SLO class, new ones everything else (JSQ among each set)."""
    from greensim.assembly.prepare import prepare
    from greensim.assembly.simulate import simulate
    from greensim.experiment.load import parse_experiment

    t = simulate(prepare(parse_experiment(_class_split({"classes": {"batch": ["V100-32GB"]}})))).requests
    batch = t.slo_class == "batch"
    assert 0.2 < batch.mean() < 0.4
    assert (t.loc[batch, "instance"] == 2).all()
    assert t.loc[~batch, "instance"].isin([0, 1]).all() and t.loc[~batch, "instance"].nunique() == 2


def test_class_affinity_bad_options_name_the_field():
    from greensim.assembly.prepare import prepare
    from greensim.assembly.simulate import simulate
    from greensim.base.errors import ConfigError
    from greensim.experiment.load import parse_experiment

    with pytest.raises(ConfigError, match="router_options.classes.batch"):
        simulate(prepare(parse_experiment(_class_split({"classes": {"batch": ["P100"]}}))))
    with pytest.raises(ConfigError, match="router_options"):
        simulate(prepare(parse_experiment(_class_split({"classes": {}}))))
