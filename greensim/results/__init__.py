"""Results: tables, summary, atomic run folders and plots."""
from .metrics import InstanceCarbonSpec, Tables, build_tables
from .writer import write_run

__all__ = ["InstanceCarbonSpec", "Tables", "build_tables", "write_run"]
