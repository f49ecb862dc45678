"""The timeline's queue and batch per bin are the states held through the bin (issue 18): a bin
inside one long iteration shows that iteration's batch, not 0; batch_mean is time-weighted."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_experiment

import greensim
from greensim.core.ledger import Ledger


def test_one_iteration_spanning_several_bins():
    """Batch 8 from 0.5 s to 3.5 s (an arrival at 1.7 s in between), idle after; 1 s bins to 5 s."""
    led = Ledger(1.0)
    led.sample(0.5, 2, 8)  # iteration starts: 2 waiting, 8 running
    led.sample(1.7, 3)  # an arrival during the iteration: the batch is unchanged
    led.busy(0.5, 3.0, 300.0)
    led.sample(3.5, 0, 0)  # done, idle
    q, b, area = led.series(5, 5.0)
    assert b == [8, 8, 8, 8, 0]
    assert area == pytest.approx([4.0, 8.0, 8.0, 4.0, 0.0])  # 8 x overlap of [0.5, 3.5) with each bin
    assert q == [2, 3, 3, 3, 0]
    # the ledger itself is left as it was (series is a view to the horizon)
    assert led.series(5, 5.0) == (q, b, area)


def test_the_last_state_is_carried_to_the_horizon_and_not_the_bins_maximum():
    """A short batch of 8 then idle with 1 waiting: the following empty bins show the idle state
    (batch 0, queue 1), not the earlier maximum."""
    led = Ledger(1.0)
    led.sample(0.1, 0, 8)
    led.sample(0.2, 1, 0)
    q, b, area = led.series(4, 3.5)
    assert b == [8, 0, 0, 0] and q == [1, 1, 1, 1]
    assert area == pytest.approx([0.8, 0.0, 0.0, 0.0])


def test_coarsening_keeps_area_and_maxima():
    led = Ledger(1.0, max_bins=4)
    led.sample(0.5, 0, 4)
    led.sample(2.5, 0, 2)
    led.sample(9.0, 0, 0)  # past 4 bins: width 1 -> 4
    assert led.bin_s == 4.0
    q, b, area = led.series(3, 12.0)
    assert b == [4, 2, 2]
    assert area == pytest.approx([4 * 2.0 + 2 * 1.5, 2 * 4.0, 2 * 1.0])
    assert sum(area) == pytest.approx(4 * 2.0 + 2 * 6.5)  # the integral of the batch over time


def test_a_simulated_long_decode_run_shows_its_batch_in_every_bin(tmp_path):
    """One request decoding 1000 tokens alone (max batch 1), a second arriving 1 s into it and
    waiting: bins fully inside the first's busy time show batch 1 (max and time-weighted mean),
    also the bin of the arrival (it showed 0 before issue 18), and the mean integrates to the busy time."""
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_time_s,input_tokens,output_tokens\n0.0,100,1000\n1.0,100,10\n")
    exp = make_experiment(
        **{
            "workload": {"kind": "trace", "path": str(trace)},
            "cluster.instances.0.count": 1,
            "cluster.instances.0.max_batch_size": 1,
            "simulation.timeline_bin_s": 0.5,
            "performance.uncertainty": "none",
        }
    )
    res = greensim.run(exp, write=False)
    tl, rq = res.timeline, res.requests.sort_values("arrival_s")
    spans = [(a + q, a + e) for a, q, e in zip(rq["arrival_s"], rq["queue_delay_s"], rq["e2e_s"])]
    assert spans[0][1] > 5.0 and spans[1][0] == pytest.approx(spans[0][1])  # the second waited
    w = 0.5
    t = tl["t_s"].to_numpy()
    inside = np.zeros(len(tl), bool)
    for s0, s1 in spans:
        inside |= (t >= s0) & (t + w <= s1)
    assert inside[(t <= 1.0) & (t + w > 1.0)].all()  # the arrival's bin is inside the first's run
    assert (tl.loc[inside, "batch_max"] == 1).all()
    assert np.allclose(tl.loc[inside, "batch_mean"], 1.0)
    assert (tl.loc[(t >= 1.0) & (t + w <= spans[0][1]), "queue_max"] == 1).all()  # the second waits
    after = t >= spans[1][1]
    assert (tl.loc[after, "batch_max"] == 0).all() and (tl.loc[after, "batch_mean"] == 0).all()
    width = np.minimum(w, res.summary["duration_s"] - t)
    busy = sum(s1 - s0 for s0, s1 in spans)
    assert float((tl["batch_mean"] * width).sum()) == pytest.approx(busy, rel=1e-6)
