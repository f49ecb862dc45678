"""Plots a reader can trust (issue 18): latency tick labels that do not overlap, a carbon-breakdown
legend that covers no bar, one time unit across a run's timeline plots."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import make_experiment

import greensim
from greensim.results.carbon_plots import carbon_timeline_figure
from greensim.results.plots import carbon_breakdown_figure, latency_figure, timeline_figure
from greensim.results.timeaxis import time_unit


@pytest.fixture(scope="module")
def run():
    exp = make_experiment(**{"workload.n_requests": 120, "performance.uncertainty": "none"})
    return greensim.run(exp, write=False)


def _tables(res, **summary):
    return SimpleNamespace(
        requests=res.requests,
        instances=res.instances,
        timeline=res.timeline,
        summary={**res.summary, **summary},
        extra=res.extra,
    )


def _visible_labels(fig, ax):
    """Window boxes of the x tick labels drawn (major and minor), left to right."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    lo, hi = sorted(ax.get_xlim())
    boxes = []
    for minor in (False, True):
        for t, loc in zip(ax.get_xticklabels(minor=minor), ax.get_xticks(minor=minor)):
            if t.get_text() and t.get_visible() and lo <= loc <= hi:
                boxes.append(t.get_window_extent(r))
    return sorted(boxes, key=lambda b: b.x0)


@pytest.mark.parametrize("spread", [1.0, 10.0, 1e3, 1e6])
def test_latency_tick_labels_do_not_overlap(run, spread):
    """TTFT and TPOT on log axes over one to six decades: no two drawn x tick labels (major or
    minor) overlap, and at least two are shown."""
    rng = np.random.default_rng(1)
    n = 400
    req = pd.DataFrame(
        {
            "rejected": np.zeros(n, bool),
            "ttft_s": 0.01 * spread ** rng.random(n),
            "tpot_s": 0.02 * spread ** rng.random(n),
            "e2e_s": 5 * rng.random(n),
        }
    )
    fig = latency_figure(SimpleNamespace(requests=req, summary=run.summary), 1.0, 0.1, "t")
    try:
        for ax in fig.axes[:2]:
            boxes = _visible_labels(fig, ax)
            assert len(boxes) >= 2
            for a, b in zip(boxes, boxes[1:]):
                assert not a.overlaps(b), (ax.get_xlabel(), [t.get_text() for t in ax.get_xticklabels()])
        assert fig.axes[1].get_xlabel() == "TPOT [ms/token]"
    finally:
        plt.close(fig)


@pytest.mark.parametrize("n_inst", [1, 2, 6])
def test_carbon_breakdown_legend_covers_no_bar(run, n_inst):
    inst = pd.concat([run.instances.iloc[[0]]] * n_inst, ignore_index=True)
    inst["instance"] = range(n_inst)
    fig = carbon_breakdown_figure(SimpleNamespace(instances=inst, summary=run.summary), "t")
    try:
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        ax = fig.axes[0]
        leg = ax.get_legend().get_window_extent(r)
        bars = [p.get_window_extent(r) for p in ax.patches]
        assert len(bars) == 2 * n_inst
        assert not any(leg.overlaps(b) for b in bars)
        assert not leg.overlaps(ax.title.get_window_extent(r))
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    "duration_s, unit", [(300.0, "s"), (600.0, "s"), (601.0, "min"), (5 * 3600.0, "min"), (86400.0, "h")]
)
def test_time_unit(duration_s, unit):
    scale, u = time_unit(duration_s)
    assert u == unit and scale == {"s": 1.0, "min": 60.0, "h": 3600.0}[unit]


@pytest.mark.parametrize("duration_s", [None, 7200.0, 86400.0])
def test_timeline_plots_share_one_time_unit(run, duration_s):
    """timeline.png and carbon_timeline.png label and scale time alike (before: s and h)."""
    t = _tables(run) if duration_s is None else _tables(run, duration_s=duration_s)
    figs = [timeline_figure(t, "t"), carbon_timeline_figure(t, "t")]
    try:
        labels = {f.axes[-1].get_xlabel() for f in figs} | {f.axes[0].get_xlabel() or None for f in figs} - {None}
        (label,) = labels
        unit = time_unit(t.summary["duration_s"])[1]
        assert label == f"simulated time [{unit}]"
        ends = [max(line.get_xdata()[-1] for line in f.axes[0].get_lines()) for f in figs]
        scale = time_unit(t.summary["duration_s"])[0]
        assert ends[0] == pytest.approx(ends[1]) == pytest.approx(t.summary["duration_s"] / scale)
    finally:
        for f in figs:
            plt.close(f)
