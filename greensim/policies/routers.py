"""Request routers: which instance serves an arriving request."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from greensim.base.errors import ConfigError
from greensim.core.interfaces import InstanceView
from greensim.policies.registry import ROUTERS

__all__ = ["RoundRobin", "JoinShortestQueue", "LeastKVUse", "PowerOfTwoChoices", "ClassAffinity", "PrefixAffinity"]


@ROUTERS.register("round_robin")
class RoundRobin:
    """Cycle through instances in order."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        k = self._next % len(instances)
        self._next = k + 1
        return k


@ROUTERS.register("join_shortest_queue")
class JoinShortestQueue:
    """Instance with the fewest requests (waiting + running); ties go to the lowest index."""

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        best, best_load = 0, None
        for i, inst in enumerate(instances):
            load = inst.n_waiting + inst.n_running
            if best_load is None or load < best_load:
                best, best_load = i, load
        return best


@ROUTERS.register("prefix_affinity")
class PrefixAffinity:
    """Instance holding the longest cached prefix of the request (prefix caching, as
    SGLang's cache-aware router); ties, and requests with no hit anywhere, go to the
    fewest requests (waiting + running), then the lowest index. Instances without a
    prefix cache count as holding nothing."""

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        best, best_key = 0, None
        for i, inst in enumerate(instances):
            peek = getattr(inst, "cached_prefix_tokens", None)
            hit = peek(request_id) if peek is not None else 0
            key = (-hit, inst.n_waiting + inst.n_running)
            if best_key is None or key < best_key:
                best, best_key = i, key
        return best


@ROUTERS.register("least_kv")
class LeastKVUse:
    """Instance with the largest free fraction of its KV cache; ties go to the fewer
    requests (waiting + running), then the lowest index. Suits mixed GPU types, whose
    KV capacities differ."""

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        best, best_key = 0, None
        for i, inst in enumerate(instances):
            key = (-inst.free_kv_blocks / inst.total_kv_blocks, inst.n_waiting + inst.n_running)
            if best_key is None or key < best_key:
                best, best_key = i, key
        return best


@ROUTERS.register("power_of_two")
class PowerOfTwoChoices:
    """Sample two distinct instances uniformly, send to the one with fewer requests
    (waiting + running); a tie goes to the first drawn. Mitzenmacher, "The power of two
    choices in randomized load balancing", IEEE TPDS 12(10), 2001."""

    def __init__(self, rng: Optional[np.random.Generator] = None) -> None:
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        n = len(instances)
        if n == 1:
            return 0
        a = int(self.rng.integers(n))
        b = int(self.rng.integers(n - 1))
        b += b >= a  # a second, distinct instance
        la = instances[a].n_waiting + instances[a].n_running
        lb = instances[b].n_waiting + instances[b].n_running
        return a if la <= lb else b


@ROUTERS.register("class_affinity")
class ClassAffinity:
    """Requests of an SLO class go to the instances reserved for it; the rest share the others.

    ``classes`` maps a class name (``slo.classes``; a request's ``slo_class``) to the GPU types
    or instance-group names that serve it, e.g. ``{batch: [V100-32GB]}``: old GPUs serving the
    requests with the looser SLO while new ones keep the interactive traffic. Requests of other
    classes (the default class ``''`` included) go to the instances no class reserves (all
    instances when every one is reserved). Within the eligible instances the ``inner`` router
    (default join_shortest_queue) picks; its choice is among the eligible ones only.
    """

    def __init__(self, classes: dict, inner: str = "join_shortest_queue") -> None:
        if not isinstance(classes, dict) or not classes:
            raise ConfigError(
                "cluster.router_options.classes: map each SLO class to the GPU types or group names "
                "that serve it, e.g. {batch: [V100-32GB]}"
            )
        self.classes = {
            str(k): [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])] for k, v in classes.items()
        }
        if inner == "class_affinity" or inner not in ROUTERS.names():
            raise ConfigError(
                f"cluster.router_options.inner: '{inner}' (valid: "
                f"{', '.join(n for n in ROUTERS.names() if n != 'class_affinity')})"
            )
        self.inner = ROUTERS.get(inner)()
        self._sc = None
        self._eligible: dict = {}

    def bind(self, ctx) -> None:
        table = ctx.extras.get("table")
        self._sc = getattr(table, "slo_class", None)
        binder = getattr(self.inner, "bind", None)
        if binder is not None:
            binder(ctx)

    def _sets(self, instances: Sequence[InstanceView]):
        def labels(inst) -> set:
            cfg = inst.cfg
            return {str(getattr(cfg, "gpu", "")), str(getattr(cfg, "name", ""))}

        known = set().union(*(labels(i) for i in instances))
        for cls, names in self.classes.items():
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ConfigError(
                    f"cluster.router_options.classes.{cls}: {unknown} match no instance's GPU type or group "
                    f"name (have: {sorted(x for x in known if x)})"
                )
        sets = {
            cls: [k for k, i in enumerate(instances) if labels(i) & set(names)] for cls, names in self.classes.items()
        }
        reserved = set().union(*map(set, sets.values()))
        rest = [k for k in range(len(instances)) if k not in reserved]
        return sets, rest or list(range(len(instances)))

    def choose(self, request_id: int, n_input_tokens: int, instances: Sequence[InstanceView]) -> int:
        key = tuple(i.index for i in instances)  # the instances offered (failed ones may be left out)
        if key not in self._eligible:
            self._eligible[key] = self._sets(instances)
        sets, rest = self._eligible[key]
        cls = str(self._sc[request_id]) if self._sc is not None else ""
        ks = sets.get(cls, rest)
        k = self.inner.choose(request_id, n_input_tokens, [instances[j] for j in ks])
        return ks[k]
