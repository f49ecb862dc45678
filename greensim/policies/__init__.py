"""In-loop policies: what the engine asks while it runs (which instance gets a request,
which decode instance takes a prefilled request, how many tokens to draft), each family
a registry of named plug-ins.

Importing the package registers the built-ins: routers (:mod:`.routers`), the greenllm
SLO-aware scheduler (:mod:`.scheduler`), DPD decode routers (:mod:`.disaggregation`),
gamma policies (:mod:`.speculation`), the cross-site carbon-aware router
(:mod:`.carbon_aware`) and carbon-aware time shifting of deferrable requests (:mod:`.defer`). Other packages add their own through entry points
(see :class:`greensim.base.registry.Registry`).
"""

from greensim.policies import carbon_aware, defer, disaggregation, routers, scheduler, speculation  # noqa: F401  (built-ins)
from greensim.policies.registry import DECODE_ROUTERS, DEFER_POLICIES, GAMMA_POLICIES, ROUTERS

__all__ = ["ROUTERS", "DECODE_ROUTERS", "GAMMA_POLICIES", "DEFER_POLICIES"]
