"""Closed-form carbon per request against the simulator, and break-even algebra (issue 7)."""

import numpy as np
import pytest
from conftest import make_experiment

from greensim.assembly.prepare import prepare
from greensim.assembly.simulate import simulate
from greensim.base.errors import ConfigError
from greensim.carbon import theory
from greensim.experiment.load import parse_experiment
from greensim.results.theory_plots import plot_savings_heatmap

N_IN, N_OUT = 512, 128
TOL = 0.02  # relative; measured gaps are < 1 % (Poisson fluctuation of the horizon, batching variance)


@pytest.mark.parametrize("rate", [0.5, 2.0])
def test_theory_matches_simulator_over_intensity_and_lifetime(rate):
    """Steady Poisson load, constant lengths, one A100: theory within 2 % on a (CI x LT) grid.

    The systematic part of the gap is queueing: decode batches vary with the number of
    requests in flight. The theory models it (M/G/inf batch), without which it overestimates
    busy time by ~45 % at 0.5 req/s.
    """
    for ci, lt in [(50.0, 1.0), (50.0, 7.0), (400.0, 3.0), (800.0, 1.0), (800.0, 7.0)]:
        d = make_experiment(
            **{
                "workload.rate_rps": rate,
                "workload.n_requests": 1500,
                "workload.input_tokens": {"dist": "constant", "value": N_IN},
                "workload.output_tokens": {"dist": "constant", "value": N_OUT},
                "cluster.instances.0.count": 1,
                "carbon.pue": 1.2,
                "carbon.lifetime_years": lt,
                "carbon.intensity": {"kind": "constant", "gco2_per_kwh": ci},
            }
        )
        p = prepare(parse_experiment(d))
        sim = simulate(p).summary["carbon_gco2_per_request"]
        spec = p.specs[0]
        mode = theory.colocated(p.instances[0][1], N_IN, N_OUT, rate, 1, spec.embodied_kgco2e, lt)
        th = float(theory.carbon_per_request(mode, ci, 1.2))
        assert th == pytest.approx(sim, rel=TOL), (rate, ci, lt)


GRID = [(50.0, 1.0), (50.0, 7.0), (400.0, 3.0), (800.0, 1.0), (800.0, 7.0)]  # (CI gCO2e/kWh, LT years)


def _constant_lengths(rate, ci, lt, **kw):
    return make_experiment(
        **{
            "workload.rate_rps": rate,
            "workload.n_requests": 1500,
            "workload.input_tokens": {"dist": "constant", "value": N_IN},
            "workload.output_tokens": {"dist": "constant", "value": N_OUT},
            "carbon.pue": 1.2,
            "carbon.lifetime_years": lt,
            "carbon.intensity": {"kind": "constant", "gco2_per_kwh": ci},
            **kw,
        }
    )


def _check_roles(mode, t, roles):
    """Per role, the theory's busy time and busy energy per request against the instances table."""
    n = t.summary["n_completed"]
    for u, (_, r) in zip(mode.uses, t.instances.iterrows()):
        assert r["gpu"] == roles[u.role]
        assert u.busy_s == pytest.approx(r["busy_s"] / n, rel=TOL), (u.role, "busy_s")
        assert u.busy_j == pytest.approx(r["busy_energy_j"] / n, rel=TOL), (u.role, "busy_j")


@pytest.mark.parametrize("rate", [0.25, 1.0])
def test_theory_matches_simulator_dpd(rate):
    """DPD (prefill on one A100, KV over PCIe Gen4, decode on one V100), steady Poisson load,
    constant lengths: theory within 2 % of the simulator on the (CI x LT) grid.

    Measured gaps (this test's points): -0.04 % at 0.25 req/s, -0.01 % at 1 req/s (V100 98 %
    busy); 0.5 req/s +0.2 %, 2 req/s -0.35 %. The prefill role is exact (one whole-prompt
    prefill per request, same roofline); the rest is the M/G/inf decode batch on the V100 and
    the Poisson horizon (the simulator's horizon is the last completion, the theory's n/rate).
    KV transfer time costs no carbon in either: the link draws no power in the simulator
    (theory link_power_w = 0) and at this load the transfer (~0.3 ms for 512 tokens of
    Llama-2-7B KV at 32 GB/s) does not change the decode batch.
    """
    from greensim.hardware.catalog import load_catalog

    kv = load_catalog().model("Llama-2-7B", "model").kv_bytes_per_token
    for ci, lt in GRID:
        d = _constant_lengths(
            rate,
            ci,
            lt,
            **{
                "cluster.instances": [{"gpu": "A100-80GB", "role": "prefill"}, {"gpu": "V100-32GB", "role": "decode"}],
                "cluster.disaggregation": {
                    "decode_router": "least_loaded",
                    "link": {"kind": "pcie_gen4_x16", "latency_s": 1e-5},
                },
            },
        )
        p = prepare(parse_experiment(d))
        t = simulate(p)
        new, old = p.specs
        mode = theory.dpd(
            p.instances[0][1],
            p.instances[1][1],
            N_IN,
            N_OUT,
            rate,
            rate,
            (1, new.embodied_kgco2e, lt),
            (1, old.embodied_kgco2e, lt),
            kv_bytes_per_token=kv,
        )
        _check_roles(mode, t, {"new": "A100-80GB", "old": "V100-32GB"})
        th = float(theory.carbon_per_request(mode, ci, 1.2))
        assert th == pytest.approx(t.summary["carbon_gco2_per_request"], rel=TOL), (rate, ci, lt)


@pytest.mark.parametrize("rate, alpha, gamma", [(0.5, 0.7, 4), (2.0, 0.7, 4), (1.0, 0.85, 6), (1.0, 0.0, 1)])
def test_theory_matches_simulator_dsd(rate, alpha, gamma):
    """DSD (Llama-3.2-1B draft on a V100, Llama-3.1-8B target on an A100, PCIe Gen3 link),
    steady Poisson load, constant lengths: theory within 2 % on (CI x LT) corners.

    Measured gaps (under the roofline, before issue 15): +0.19 % (0.5 req/s), +0.19 % (2 req/s), +0.61 % (alpha 0.85, gamma 6),
    +0.63 % (alpha 0, gamma 1), theory above the simulator by overestimating busy time of both
    GPUs by 0.2-1.1 %. It is not acceptance sampling: alpha = 0 (one token per iteration, no
    randomness) shows the same gap. It is the batch: the theory prices the verify pass and the
    draft steps at the mean batch (interpolated between whole batches), where the simulator
    averages over the fluctuating batch (Jensen). The draft/target transfers (top-16
    probabilities, ~0.1 ms per iteration) add no GPU busy time or energy in either; they only
    lengthen the loop, i.e. the batch, slightly.

    The low-load points carry the check of the acceptance model: at 0.5 req/s a wrong alpha
    (0.6 for 0.7) puts the theory 5.5 % off (fails); at 2 req/s only 0.6 % (fewer tokens per
    iteration mean proportionally larger batches, so busy time per request barely moves).
    """
    corners = [(50.0, 1.0), (800.0, 7.0)] if (rate, alpha) != (0.5, 0.7) else [(400.0, 3.0)]
    for ci, lt in corners:
        d = _constant_lengths(
            rate,
            ci,
            lt,
            **{
                "model": "Llama-3.1-8B",
                "cluster.instances": [
                    {
                        "gpu": "A100-80GB",
                        "speculative": {
                            "draft_model": "Llama-3.2-1B",
                            "draft_gpu": "V100-32GB",
                            "alpha": alpha,
                            "gamma": gamma,
                            "probabilities": "top_k",
                            "top_k": 16,
                            "link": {"kind": "pcie_gen3_x16", "latency_s": 1e-5},
                        },
                    }
                ],
            },
        )
        p = prepare(parse_experiment(d))
        t = simulate(p)
        target, draft = p.specs
        mode = theory.dsd(
            p.instances[0][1],
            p.speculative()[0].draft_perf,
            N_IN,
            N_OUT,
            rate,
            (1, target.embodied_kgco2e, lt),
            (1, draft.embodied_kgco2e, lt),
            gamma,
            alpha,
        )
        _check_roles(mode, t, {"new": "A100-80GB", "old": "V100-32GB"})
        th = float(theory.carbon_per_request(mode, ci, 1.2))
        assert th == pytest.approx(t.summary["carbon_gco2_per_request"], rel=TOL), (rate, alpha, gamma, ci, lt)


def _modes(**kw):
    return theory.build_modes("Llama-2-7B", "A100-80GB", "V100-32GB", N_IN, N_OUT, 1.0, 5.0, 5.0, **kw)


def test_break_even_points_equalise_carbon():
    m = _modes(old_embodied="linear", old_per_new=1)
    base, alt = m["colocated"], m["DPD"]
    ci = theory.break_even_intensity(base, alt, 1.1)
    if np.isfinite(ci) and ci > 0:
        assert theory.carbon_per_request(base, ci, 1.1) == pytest.approx(theory.carbon_per_request(alt, ci, 1.1))
    for c in (100.0, 400.0, 800.0):
        lt = theory.break_even_lifetime(base, alt, "new", c, 1.1)
        if np.isfinite(lt):
            assert theory.carbon_per_request(base, c, 1.1, {"new": lt}) == pytest.approx(
                theory.carbon_per_request(alt, c, 1.1, {"new": lt})
            )


def test_break_even_on_a_hand_made_pair():
    """Alt uses 2x the energy but no embodied: CI* = embodied_base / extra energy, by hand."""
    u = theory.RoleUse("new", 1.0, 1000.0, 1.0, 0.0, 1, 100.0, 5.0)
    base = theory.Mode("base", (u,))
    alt = theory.Mode("alt", (theory.RoleUse("old", 1.0, 2000.0, 1.0, 0.0, 1, 0.0, 5.0),))
    emb = 100e3 / (5 * 365 * 24 * 3600.0)  # gCO2e per request (1 s of one GPU)
    assert theory.break_even_intensity(base, alt) == pytest.approx(emb / (1000.0 / 3.6e6))
    # at 10 g/kWh alt (no embodied) wins; the new GPU's lifetime must exceed LT* for base to win
    lt = theory.break_even_lifetime(base, alt, "new", 10.0)
    assert lt == pytest.approx(100e3 / (365 * 24 * 3600.0) / (10.0 * 1000.0 / 3.6e6))
    # half that lifetime doubles base's embodied (3 units vs alt's 2): saving 1/3; double it: -1/3
    assert theory.savings_grid(base, alt, [10.0], [lt * 0.5, lt * 2.0], "new")[:, 0].tolist() == pytest.approx(
        [1 / 3, -1 / 3], rel=1e-9
    )


def test_savings_properties_from_the_paper_brief():
    """Saving rises as the new GPU's lifetime shortens; sunk old-GPU accounting saves the most."""
    sunk, lin = _modes(old_embodied="sunk"), _modes(old_embodied="linear")
    s = theory.savings_grid(sunk["colocated"], sunk["DPD"], [300.0], [1.0, 3.0, 7.0], "new")[:, 0]
    assert s[0] > s[1] > s[2]
    s_lin = theory.savings_grid(lin["colocated"], lin["DPD"], [300.0], [3.0], "new")[0, 0]
    assert s[1] > s_lin


def test_heatmap_png(tmp_path):
    with pytest.raises(ConfigError, match="gamma.*alpha"):
        _modes(draft_model="Llama-2-7B")
    m = _modes(draft_model="Llama-2-7B", gamma=4, alpha=0.6)
    assert set(m) == {"colocated", "DPD", "DSD"}
    plot_savings_heatmap(
        m["colocated"], m["DSD"], np.linspace(0, 800, 9), np.linspace(1, 8, 8), "new", tmp_path / "h.png"
    )
    assert (tmp_path / "h.png").stat().st_size > 10_000


def test_overload_is_an_error():
    with pytest.raises(ConfigError, match="saturates|busy at"):
        theory.build_modes("Llama-2-7B", "A100-80GB", "V100-32GB", N_IN, N_OUT, 50.0, 5.0, 5.0)
