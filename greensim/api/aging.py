"""Aging sweeps: one experiment run once per age of a GPU group."""

from __future__ import annotations

import logging
from typing import Any, Sequence

from greensim.api.run import run, to_experiment
from greensim.base.errors import ConfigError
from greensim.experiment.overrides import apply_overrides
from greensim.results.bands import band_columns

log = logging.getLogger(__name__)


def age_sweep(experiment: Any, group: int, ages: Sequence[float], overrides: Any = None, progress: bool = False):
    """Run an experiment once per age of instance group ``group``; one row per age.

    ``progress`` shows each run's progress bar.

    Returns
    -------
    DataFrame: ``age_years``, ``slo_attainment_frac``, ``carbon_gco2_per_request``,
    ``operational_gco2_per_request``, ``embodied_gco2_per_request``, ``n_failures``,
    ``n_requeues``, ``down_s``, ``ttft_s_p90``, ``tpot_s_p90``; with ``performance.uncertainty:
    corners`` (the default) also ``<metric>_low`` / ``<metric>_high`` of those with a band.
    """
    import pandas as pd

    base = to_experiment(experiment, overrides).model_dump(mode="json")
    if not (0 <= group < len(base["cluster"]["instances"])):
        raise ConfigError(
            f"aging sweep: group {group} does not exist (cluster.instances has "
            f"{len(base['cluster']['instances'])} groups)."
        )
    rows = []
    for a in ages:
        d = apply_overrides(base, {f"cluster.instances.{group}.age_years": float(a)})
        log.info("aging sweep: group %d at %g years", group, float(a))
        res = run(d, write=False, progress=progress)
        s = res.summary
        rows.append(
            {
                "age_years": float(a),
                "slo_attainment_frac": s["slo_attainment_frac"],
                "carbon_gco2_per_request": s["carbon_gco2_per_request"],
                "operational_gco2_per_request": s["operational_gco2_per_request"],
                "embodied_gco2_per_request": s["embodied_gco2_per_request"],
                "n_failures": s["n_failures"],
                "n_requeues": s["n_requeues"],
                "down_s": float(res.instances["down_s"].sum()),
                "ttft_s_p90": s["ttft_s_p90"],
                "tpot_s_p90": s["tpot_s_p90"],
            }
        )
        rows[-1].update(band_columns(s, list(rows[-1])))  # <metric>_low / _high (performance.uncertainty)
    return pd.DataFrame(rows)
