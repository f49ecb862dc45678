"""Assembly: from an experiment description to a running engine.

:func:`prepare` resolves catalogue names and binds every plug-in (performance model,
routers, carbon sources, workload) into a :class:`Prepared`; :func:`simulate` runs it on
the core engine and builds the result tables. Planners and the API call these; the core
never sees an experiment.
"""

from greensim.assembly.prepare import GroupInfo, Prepared, make_router, prepare, router_extras, slo_arrays
from greensim.assembly.simulate import simulate

__all__ = ["Prepared", "GroupInfo", "prepare", "simulate", "make_router", "router_extras", "slo_arrays"]
