"""Run a prepared experiment on the engine and build its tables."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from greensim.carbon.registry import INTENSITY_SOURCES
from greensim.hardware.catalog import load_catalog
from greensim.experiment.carbon import DEFAULT_SITE
from greensim.experiment.schema import Experiment
from greensim.experiment.load import load_experiment, parse_experiment
from greensim.core.disagg import DisaggregationSpec
from greensim.core.instance import InstanceConfig
from greensim.core.link import link_bandwidth_bps
from greensim.core.spec_instance import SpecSetup
from greensim.core.memory import kv_capacity_blocks
from greensim.core.requests import RequestTable
from greensim.core.simulation import Simulation
from greensim.base.errors import ConfigError, TraceError
from greensim.hardware.registry import PERFORMANCE_MODELS
from greensim.policies.registry import DECODE_ROUTERS, GAMMA_POLICIES, ROUTERS
from greensim.results import InstanceCarbonSpec, Tables, build_tables, write_run
from greensim.workloads import build_workload
from greensim.assembly.prepare import Prepared, make_router, router_extras

__all__ = ["simulate"]


def simulate(p: Prepared, progress: Optional[Callable[[float], None]] = None,
             max_run_iterations: Optional[int] = None) -> Tables:
    """Run a prepared experiment and build its tables."""
    router = make_router(p.router_factory, p.policy_seeds, p.experiment.cluster.router_options)
    sim = Simulation(p.table, p.instances, router, p.bin_s, progress=progress,
                     max_run_iterations=max_run_iterations, failures=p.failures,
                     disaggregation=p.disaggregation() if p.disaggregation is not None else None,
                     speculative=p.speculative() if p.speculative is not None else None,
                     router_extras=router_extras(p))
    out = sim.run()
    tables = build_tables(out, p.specs, p.intensity, p.experiment.carbon.pue, p.ttft_slo_s, p.tpot_slo_s)
    if p.experiment.carbon.compare_regions:
        from greensim.carbon.regions import add_region_totals
        add_region_totals(tables, p.experiment, out.bin_s)
    report = getattr(router, "report", None)    # optional: a policy's own tables and summary values
    if report is not None:
        extra_tables, extra_summary = report()
        tables.extra = dict(extra_tables)
        tables.summary.update(extra_summary)
    return tables
