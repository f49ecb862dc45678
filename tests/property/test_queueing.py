"""The engine against queueing theory: M/D/1 mean wait (Pollaczek-Khinchine)."""

import numpy as np
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.experiment.load import parse_experiment


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_mean_wait_matches_pollaczek_khinchine(rho):
    """Batch size 1, constant lengths => deterministic service S; Poisson arrivals at rho/S.

    Wq = rho * S / (2 (1 - rho)). Tolerance: 4 standard errors from 40 batch means
    (batch means absorb the strong autocorrelation of successive waits).
    """
    base = {
        "workload.input_tokens": {"dist": "constant", "value": 200},
        "workload.output_tokens": {"dist": "constant", "value": 30},
        "cluster.instances": [{"gpu": "A100-80GB", "max_batch_size": 1}],
        "workload.n_requests": 1,
    }
    p1 = prepare(parse_experiment(make_experiment(**base)))
    S = simulate(p1).requests.e2e_s.iloc[0]
    n = 60_000
    d = make_experiment(**{**base, "workload.n_requests": n, "workload.rate_rps": rho / S, "seed": 7})
    r = simulate(prepare(parse_experiment(d))).requests
    assert np.allclose(r.e2e_s - r.queue_delay_s, S, rtol=1e-9)  # service is deterministic
    w = r.queue_delay_s.to_numpy()[n // 20 :]  # drop warm-up
    batches = np.array_split(w, 40)
    means = np.array([b.mean() for b in batches])
    se = means.std(ddof=1) / np.sqrt(len(means))
    expected = rho * S / (2 * (1 - rho))
    assert abs(w.mean() - expected) < 4 * se, (w.mean(), expected, se)
    assert 4 * se < 0.15 * expected  # the test has power: the band is narrow
