"""Carbon saved by time shifting: an experiment with its ``defer.policy`` against the same without.

The honest counterfactual of deferral is the same run (same seed, same requests, same
deadlines) with ``defer.policy: none``: it includes what shifting changes besides the hour's
intensity (batching, energy per request). :func:`compare_deferral` runs both.

Common window. A run lasts until its last request completes, so deferral lengthens a run
whose last requests are held (into the next day's clean hours, say), and the provisioned
GPUs' idle power over that tail would count against it although they draw it in both cases
(they stay provisioned). Both runs are therefore compared over the same window
``[0, max(duration_s))``: the shorter run is charged its instances' idle power over the
missing tail, at the tail's grid intensity and the instances' PUE
(``operational_gco2_window``). Embodied carbon, linear in the window, is left out.
From the command line: ``greensim run EXP.yaml`` and ``greensim run EXP.yaml --set
defer.policy=none --set defer.options={}``.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import pandas as pd

from greensim.api.run import run
from greensim.assembly.prepare import prepare
from greensim.base.errors import ConfigError
from greensim.base.units import J_PER_KWH
from greensim.experiment.load import parse_experiment, to_experiment

__all__ = ["compare_deferral", "DEFERRAL_METRICS"]

#: summary values reported per run by :func:`compare_deferral`
DEFERRAL_METRICS = (
    "operational_gco2_window",
    "operational_gco2",
    "duration_s",
    "carbon_gco2",
    "energy_kwh",
    "n_deferrable",
    "n_deferred",
    "defer_s_mean",
    "defer_s_p90",
    "deadline_miss_frac",
    "slo_attainment_frac",
    "interactive_slo_attainment_frac",
    "interactive_ttft_s_p99",
    "deferral_carbon_saved_est_gco2",
)


def compare_deferral(experiment: Any, overrides: Any = None) -> Dict[str, Any]:
    """Run an experiment with its ``defer.policy`` and with ``none``; report carbon saved.

    Parameters
    ----------
    experiment : path, dict or :class:`~greensim.experiment.schema.Experiment`; its
        ``defer.policy`` must not be ``none``.
    overrides : ``--set``-style overrides applied to both runs.

    Returns
    -------
    dict with ``table`` (DataFrame, one row per run: ``deferred``, ``none``; columns
    :data:`DEFERRAL_METRICS`), ``carbon_saved_gco2`` (operational carbon over the common window
    of the run without deferral minus that with it [gCO2e]), ``carbon_saved_frac`` (of the run
    without) and ``deadline_miss_frac`` (with deferral). No results folder is written.
    """
    exp = to_experiment(experiment, overrides)
    if exp.defer.policy == "none":
        raise ConfigError(
            "defer.policy: compare_deferral compares a deferral policy with none, but the experiment's is "
            "'none'. Set defer.policy (e.g. carbon_aware)."
        )
    data = exp.model_dump(mode="json")
    data["defer"] = {"policy": "none", "options": {}}
    base_exp = parse_experiment(data)
    rows = {}
    for label, e in (("deferred", exp), ("none", base_exp)):
        s = run(e, write=False, progress=False).summary
        rows[label] = {k: s.get(k, float("nan")) for k in DEFERRAL_METRICS}
    end = max(r["duration_s"] for r in rows.values())
    p = prepare(base_exp)
    for r in rows.values():
        r["operational_gco2_window"] = r["operational_gco2"] + _idle_tail_gco2(p, r["duration_s"], end)
    table = pd.DataFrame.from_dict(rows, orient="index")[list(DEFERRAL_METRICS)]
    base = float(table.loc["none", "operational_gco2_window"])
    saved = base - float(table.loc["deferred", "operational_gco2_window"])
    return {
        "table": table,
        "carbon_saved_gco2": saved,
        "carbon_saved_frac": saved / base if base > 0 else float("nan"),
        "deadline_miss_frac": float(table.loc["deferred", "deadline_miss_frac"]),
    }


def _idle_tail_gco2(p: Any, start_s: float, end_s: float) -> float:
    """Operational carbon of every serving instance idling over ``[start_s, end_s)`` [gCO2e] (the draft
    GPUs of split speculative pairs are left out)."""
    if not (end_s > start_s):
        return 0.0
    total = 0.0
    for (_, perf), spec in zip(p.instances, p.specs):
        src = spec.intensity if spec.intensity is not None else p.intensity
        pue = spec.pue if spec.pue is not None else p.experiment.carbon.pue
        ci = float(np.asarray(src.mean_over(np.array([start_s]), np.array([end_s])))[0])
        total += perf.idle_power_w * (end_s - start_s) / J_PER_KWH * ci * pue
    return total
