"""The performance-model registry (``performance.model``)."""

from greensim.base.registry import Registry

PERFORMANCE_MODELS: Registry = Registry("performance model", entry_point_group="greensim.performance_models")
