"""SLO-aware, carbon-minimising deployment planner (issue 8; paper.md section 7).

    from greensim.planning import plan
    res = plan("experiments/plans/chat_a100_v100.yaml")
    res.frontier, res.best, res.baseline, res.saving_frac
"""
from greensim.planning.search import Candidate, PlanResult, enumerate_candidates, plan
from greensim.planning.spec import PlanSpec, load_plan_spec, parse_plan_spec

__all__ = ["plan", "load_plan_spec", "parse_plan_spec", "PlanSpec", "PlanResult", "Candidate",
           "enumerate_candidates"]
