"""Deployment planning, offline and online, as ``greensim plan`` and ``greensim replan`` run it.

- :func:`plan`: the lowest-carbon deployment of a plan file's GPUs that meets the SLO
  attainment target (:mod:`greensim.planning.search`); :func:`write_plan` writes its folder.
- :func:`run_windows`: the per-window online scheduler of an experiment's ``reconfigure``
  section against static deployments (:mod:`greensim.planning.online`).
"""

from __future__ import annotations

from greensim.planning import PlanResult, PlanSpec, load_plan_spec, plan
from greensim.planning.online import WindowsResult, run_windows
from greensim.planning.report import write_plan

__all__ = ["plan", "write_plan", "run_windows", "load_plan_spec", "PlanResult", "PlanSpec", "WindowsResult"]
