"""Workloads: synthetic generators, arrival processes, trace readers and fitted models, registered by name.

Registries: :data:`WORKLOADS` (``workload.kind``), :data:`TRACE_READERS` (file formats,
``workload.format``), :data:`ARRIVALS` (``arrivals.process``), :data:`TRACES` (named
public traces, ``workload.name``).
"""

from greensim.workloads import readers, synthetic, traces  # noqa: F401  (register built-ins)
from greensim.workloads.arrivals import ARRIVALS, arrival_times
from greensim.workloads.build import build_workload, load_trace
from greensim.workloads.fitted import JointLengthModel, fit_lengths, load_fit
from greensim.workloads.named import TRACES, find_named_trace
from greensim.workloads.registry import TRACE_READERS, WORKLOADS
from greensim.workloads.stats import trace_stats

__all__ = [
    "TRACE_READERS",
    "WORKLOADS",
    "ARRIVALS",
    "TRACES",
    "build_workload",
    "load_trace",
    "arrival_times",
    "JointLengthModel",
    "fit_lengths",
    "load_fit",
    "find_named_trace",
    "trace_stats",
]
