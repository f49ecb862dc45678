"""speculative.png: the per-instance numbers it draws, and when it is written."""

import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.experiment.load import parse_experiment
from greensim.results.spec_plots import SHARES, plot_speculative, spec_plot_data


def _run(spec=None, count=1, n=80):
    inst = {"gpu": "A100-80GB", "count": count}
    if spec:
        inst["speculative"] = spec
    d = make_experiment(**{"model": "Llama-2-7B", "workload.n_requests": n, "cluster.instances": [inst]})
    return simulate(prepare(parse_experiment(d)))


DSD = {
    "draft_model": "llama-68m",
    "draft_gpu": "V100-32GB",
    "acceptance": "spec-bench-sps-vicuna7b-mixed",
    "gamma": 5,
    "link": {"kind": "pcie_gen3_x16", "latency_s": 1e-5},
}


def test_dsd_rows_are_the_target_instances_with_their_ledger_ratios(tmp_path):
    res = _run(DSD, count=2)
    inst = res.instances
    d = spec_plot_data(inst)
    # two targets speculate; their two draft GPUs' rows carry no speculative iterations
    assert len(inst) == 4 and len(d) == 2
    spec = inst[inst["spec_verify_steps"] > 0].reset_index(drop=True)
    assert list(d["label"]) == [f"{n}#{i}" for n, i in zip(spec["name"], spec["instance"])]
    # acceptance and tokens/verify re-derived from the counters the instance kept
    acc = spec["spec_accepted_tokens"] / spec["spec_drafted_tokens"]
    tpv = (spec["spec_accepted_tokens"] + spec["spec_verify_steps"]) / spec["spec_verify_steps"]
    assert d["spec_acceptance"].to_numpy() == pytest.approx(acc.to_numpy(), rel=1e-12)
    assert d["spec_tokens_per_verify"].to_numpy() == pytest.approx(tpv.to_numpy(), rel=1e-12)
    # the stacked bar reaches exactly 1: draft + link + verify is the iterations' whole time
    top = sum(d[c] for c, _ in SHARES)
    assert top.to_numpy() == pytest.approx([1.0, 1.0], rel=1e-12)
    assert (d["spec_link_time_share"] > 0).all() and (d["spec_draft_time_share"] > 0).all()
    # pooled over both targets the rows give the summary's values (steps-weighted tokens/verify)
    w = d["spec_verify_steps"]
    assert (d["spec_tokens_per_verify"] * w).sum() / w.sum() == pytest.approx(
        res.summary["spec_tokens_per_verify"], rel=1e-12
    )
    # tokens per verify lies in [1, gamma + 1]
    assert ((d["spec_tokens_per_verify"] >= 1) & (d["spec_tokens_per_verify"] <= DSD["gamma"] + 1)).all()
    assert plot_speculative(tmp_path / "speculative.png", inst, "t")
    assert (tmp_path / "speculative.png").stat().st_size > 0


def test_colocated_speculation_has_no_link_share():
    spec = {"draft_model": "llama-68m", "alpha": 0.6, "gamma": 3}
    d = spec_plot_data(_run(spec).instances)
    assert len(d) == 1
    assert d["spec_link_time_share"].iloc[0] == 0.0
    assert d["spec_draft_time_share"].iloc[0] + d["spec_verify_time_share"].iloc[0] == pytest.approx(1.0)


def test_plain_run_writes_no_speculative_plot(tmp_path):
    inst = _run(None).instances
    assert spec_plot_data(inst).empty
    assert not plot_speculative(tmp_path / "speculative.png", inst, "t")
    assert not (tmp_path / "speculative.png").exists()


def test_run_plots_include_speculative_png_only_for_speculative_runs(tmp_path):
    """plot_run (results folders and Result.save_plots) writes speculative.png for a DSD run."""
    import greensim

    def names(d, sub):
        res = greensim.run(d, write=False)
        return {p.name for p in res.save_plots(tmp_path / sub)}

    inst = {"gpu": "A100-80GB", "speculative": DSD}
    dsd = make_experiment(**{"model": "Llama-2-7B", "workload.n_requests": 40, "cluster.instances": [inst]})
    assert "speculative.png" in names(dsd, "dsd")
    assert "speculative.png" not in names(make_experiment(**{"workload.n_requests": 40}), "plain")
