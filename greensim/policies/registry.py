"""Registries of the in-loop policies: routers (``cluster.router``), DPD decode routers
(``cluster.disaggregation.decode_router``), speculative gamma policies and release
policies (``defer.policy``: when a deferrable request is handed to the router)."""

from greensim.base.registry import Registry

ROUTERS: Registry = Registry("router", entry_point_group="greensim.routers")
DECODE_ROUTERS: Registry = Registry("decode router", entry_point_group="greensim.decode_routers")
GAMMA_POLICIES: Registry = Registry("gamma policy", entry_point_group="greensim.gamma_policies")
DEFER_POLICIES: Registry = Registry("defer policy", entry_point_group="greensim.defer_policies")
