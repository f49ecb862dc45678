"""Results: tables, summary, atomic run folders and plots."""

from greensim.results.metrics import InstanceCarbonSpec, Tables, build_tables
from greensim.results.writer import check_writable, write_run

__all__ = ["InstanceCarbonSpec", "Tables", "build_tables", "write_run", "check_writable"]
