"""The carbon-intensity source registry (``carbon.intensity.kind``)."""

from greensim.base.registry import Registry

INTENSITY_SOURCES: Registry = Registry("carbon-intensity source", entry_point_group="greensim.intensity_sources")
