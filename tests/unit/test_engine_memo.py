"""EngineMemo: an engine run reused under other carbon accounting or SLOs gives exactly the
tables of a fresh simulation, and runs the engine could read those inputs in are never reused."""

import pandas as pd
import pytest
from conftest import ROOT, make_experiment

from greensim.assembly.prepare import make_router, prepare
from greensim.assembly.simulate import EngineMemo, simulate
from greensim.experiment.load import load_experiment, parse_experiment

ACCOUNTING = {
    "name": "other",
    "slo.ttft_s": 0.3,
    "slo.tpot_s": 0.05,
    "carbon.intensity": {"kind": "constant", "gco2_per_kwh": 702.1},
    "carbon.pue": 1.4,
    "carbon.lifetime_years": 3,
    "carbon.accounting": "busy",
}


def _exp(**upd):
    return parse_experiment(make_experiment(**{"performance": {"model": "kernel"}, **upd}))


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    pd.testing.assert_frame_equal(a.instances, b.instances, check_exact=True)
    pd.testing.assert_frame_equal(a.timeline, b.timeline, check_exact=True)
    assert a.summary.keys() == b.summary.keys()
    for k in a.summary:
        x, y = a.summary[k], b.summary[k]
        assert x == y or (x != x and y != y), k  # equal, or both NaN


@pytest.mark.parametrize(
    "path", ["experiments/quickstart.yaml", "experiments/dpd_a100_v100.yaml", "experiments/dsd_v100_a100.yaml"]
)
def test_reused_run_equals_a_fresh_one_under_other_accounting(path) -> None:
    from greensim.experiment.overrides import apply_overrides

    raw = load_experiment(ROOT / path).model_dump(mode="json")
    raw = apply_overrides(raw, {"workload.n_requests": 300, "performance.uncertainty": "none"})
    first = parse_experiment(raw)
    other = parse_experiment(apply_overrides(raw, ACCOUNTING))
    memo = EngineMemo()
    simulate(prepare(first), memo=memo)
    reused = simulate(prepare(other), memo=memo)
    assert (memo.hits, memo.misses) == (1, 1)
    fresh = simulate(prepare(other))
    _same(reused, fresh)
    # the accounting did change the numbers (the reuse is not a stale copy of the first run)
    assert reused.summary["carbon_gco2_per_request"] != simulate(prepare(first)).summary["carbon_gco2_per_request"]


def test_tables_built_twice_from_one_run_are_equal() -> None:
    memo = EngineMemo()
    a = simulate(prepare(_exp()), memo=memo)
    b = simulate(prepare(_exp()), memo=memo)
    assert memo.hits == 1
    _same(a, b)


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 2},
        {"workload.rate_rps": 5.0},
        {"cluster.router": "join_shortest_queue"},
        {"performance.band": "pessimistic"},
        {"simulation.timeline_bin_s": 0.5},
        {"cluster.instances.0.max_batch_size": 8},
    ],
)
def test_what_the_engine_reads_changes_the_key(change) -> None:
    base, changed = prepare(_exp()), prepare(_exp(**change))
    kb = EngineMemo.key(base, make_router(base.router_factory, base.policy_seeds))
    kc = EngineMemo.key(changed, make_router(changed.router_factory, changed.policy_seeds))
    assert kb is not None and kc is not None and kb != kc


def test_accounting_alone_keeps_the_key() -> None:
    a, b = prepare(_exp()), prepare(_exp(**ACCOUNTING))
    assert EngineMemo.key(a, make_router(a.router_factory)) == EngineMemo.key(b, make_router(b.router_factory))


def test_runs_with_context_bound_policies_are_never_reused() -> None:
    p = prepare(_exp())

    class Bound:  # a router that could read intensity or SLOs through its context
        def bind(self, ctx):
            pass

    assert EngineMemo.key(p, Bound()) is None
    traced = prepare(_exp(**{"output.iterations": True}))
    assert EngineMemo.key(traced, make_router(traced.router_factory)) is None


def test_memo_is_bounded() -> None:
    memo = EngineMemo(max_entries=2)
    for seed in (1, 2, 3):
        simulate(prepare(_exp(seed=seed)), memo=memo)
    assert len(memo._runs) == 2 and memo.misses == 3
    simulate(prepare(_exp(seed=1)), memo=memo)  # the oldest went out first
    assert memo.misses == 4 and memo.hits == 0


def test_plans_sharing_a_memo_equal_plans_without_one() -> None:
    from greensim.planning import plan

    path = ROOT / "experiments/paper/chat.yaml"
    small = {"workload.n_requests": 200, "search.short_requests": 100, "performance.uncertainty": "none"}
    grids = [{"carbon.intensity": {"kind": "constant", "gco2_per_kwh": g}} for g in (49.4, 702.1)]
    memo = EngineMemo()
    shared = [plan(path, overrides={**small, **g}, memo=memo) for g in grids]
    alone = [plan(path, overrides={**small, **g}) for g in grids]
    assert shared[0].stats["n_engine_memo_hits"] == 0 and shared[1].stats["n_engine_memo_hits"] > 0
    for s, a in zip(shared, alone):
        assert s.best.name == a.best.name
        assert [c.name for c in s.candidates] == [c.name for c in a.candidates]
        for cs, ca in zip(s.candidates, a.candidates):
            assert (cs.stage, cs.reason) == (ca.stage, ca.reason), cs.name
            for x, y in ((cs.summary, ca.summary), (cs.short_summary, ca.short_summary)):
                assert (x is None) == (y is None), cs.name
                if x is not None:
                    assert x.keys() == y.keys(), cs.name
                    for k in set(x) - {"sim_wall_s"}:
                        assert x[k] == y[k] or (x[k] != x[k] and y[k] != y[k]), (cs.name, k)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "512"])
def test_memo_size_must_be_a_whole_number_from_one(bad) -> None:
    from greensim.base.errors import ConfigError

    with pytest.raises(ConfigError, match="max_entries"):
        EngineMemo(max_entries=bad)


def test_plan_names_a_memo_of_the_wrong_kind() -> None:
    from greensim.base.errors import ConfigError
    from greensim.planning import plan

    with pytest.raises(ConfigError, match=r"plan\(memo=...\): expected a greensim.planning.EngineMemo"):
        plan(ROOT / "experiments/paper/chat.yaml", memo={})
