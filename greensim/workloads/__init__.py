"""Workloads: synthetic generators and trace readers, registered by name."""
from ..registry import Registry

TRACE_READERS: Registry = Registry("trace format")
WORKLOADS: Registry = Registry("workload")

from . import synthetic, traces  # noqa: E402,F401  (register built-ins)
from .build import build_workload  # noqa: E402

__all__ = ["TRACE_READERS", "WORKLOADS", "build_workload"]
