"""Workloads: synthetic generators, arrival processes, trace readers and fitted models, registered by name.

Registries: :data:`WORKLOADS` (``workload.kind``), :data:`TRACE_READERS` (file formats,
``workload.format``), :data:`ARRIVALS` (``arrivals.process``), :data:`TRACES` (named
public traces, ``workload.name``).
"""
from ..registry import Registry

TRACE_READERS: Registry = Registry("trace format")
WORKLOADS: Registry = Registry("workload")

from . import readers, synthetic, traces  # noqa: E402,F401  (register built-ins)
from .arrivals import ARRIVALS, arrival_times  # noqa: E402
from .build import build_workload, load_trace  # noqa: E402
from .fitted import JointLengthModel, fit_lengths, load_fit  # noqa: E402
from .named import TRACES, find_named_trace  # noqa: E402
from .stats import trace_stats  # noqa: E402

__all__ = ["TRACE_READERS", "WORKLOADS", "ARRIVALS", "TRACES", "build_workload", "load_trace", "arrival_times",
           "JointLengthModel", "fit_lengths", "load_fit", "find_named_trace", "trace_stats"]
