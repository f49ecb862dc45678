"""Planning: decisions that run whole simulations, so this layer sits above the assembly.

:func:`plan` (:mod:`.search`, :mod:`.spec`, :mod:`.report`) finds the lowest-carbon
deployment of an inventory of GPUs that meets the SLO attainment target (GreenLLM's
SLO-aware scheduler, offline); :mod:`.online` re-plans per time window
(``greensim replan``). The in-loop greenllm router is a policy
(:mod:`greensim.policies.scheduler`).

    from greensim.planning import plan
    res = plan("experiments/plans/chat_a100_v100.yaml")
    res.frontier, res.best, res.baseline, res.saving_frac
"""

from greensim.assembly.simulate import EngineMemo
from greensim.planning.search import (
    Candidate,
    PlanResult,
    candidate_experiments,
    enumerate_candidates,
    plan,
    steady_state,
)
from greensim.planning.spec import PlanSpec, load_plan_spec, parse_plan_spec

__all__ = [
    "plan",
    "EngineMemo",
    "load_plan_spec",
    "parse_plan_spec",
    "PlanSpec",
    "PlanResult",
    "Candidate",
    "enumerate_candidates",
    "candidate_experiments",
    "steady_state",
]
