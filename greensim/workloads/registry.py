"""Registries of workload plug-ins: trace file formats (``workload.format``) and workload kinds."""

from greensim.base.registry import Registry

TRACE_READERS: Registry = Registry("trace format", entry_point_group="greensim.trace_readers")
WORKLOADS: Registry = Registry("workload", entry_point_group="greensim.workloads")
