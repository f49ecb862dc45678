"""Automatic prefix caching: requests that share a prompt prefix reuse its KV blocks.

Modelled on vLLM's automatic prefix caching (block-level hashing of full blocks, a block
shared by reference counts, unreferenced blocks kept and evicted least-recently-used
first) with SGLang's eviction rule (only under memory pressure).

**Prefix identity.** Each request carries a sequence of *prefix keys*, one per
``H``-token block of its token stream (``RequestTable.prefix_ids``, ``H`` =
``RequestTable.prefix_block_tokens``); key ``j`` stands for the content of tokens
``[0, (j+1) H)``, so two requests with equal leading keys share that prefix (Mooncake's
``hash_ids``: 512-token blocks). A cache entry is one key; it occupies ``H / B`` of the
instance's ``B``-token KV blocks (``H`` must be a multiple of ``B``), so a hit always
covers whole ``H``-token blocks.

**Lookup** (at admission): the longest run of leading keys present, capped so at least
one prompt token is computed (vLLM recomputes the last token for its logits): at most
``(need - 1) // H`` keys of a request whose prefill target is ``need`` tokens. The
prefill then computes only the suffix: chunk ``(need - hit, hit)`` (the attention still
reads the cached ``hit`` tokens).

**Insertion.** When a request's prefill ends, its full ``H``-blocks become entries
(referenced by it); when it ends (or is preempted from decode) the full blocks of its
whole KV (prompt and output: the next turn of a chat hits them) are inserted too and
its references are dropped, last block first, so a chain's tail is evicted before its
head. A block another request cached meanwhile is shared from then on (the request's
own copy is freed; vLLM keeps it until the request ends).

**Memory.** The instance keeps counting every request's KV blocks as its own; the
cache reports ``shared_blocks``, the blocks counted more than once (an entry referenced
by ``n`` requests is counted ``n - 1`` times too often), which the instance adds back
to its free blocks. Unreferenced entries count as free (as in vLLM's free-block queue);
:meth:`PrefixCache.fit` evicts them least-recently-used first whenever the instance's
free blocks no longer cover them (an allocation, prompt or decode growth, took their
place).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from greensim.base.errors import SimulationInvariantError

__all__ = ["PrefixCache"]


class PrefixCache:
    """The prefix cache of one instance (see module docstring).

    Parameters
    ----------
    keys : per request id, its prefix keys (a sequence of ints), or None.
    hash_tokens : tokens per prefix key ``H``.
    block_tokens : the instance's KV block size ``B`` (``H`` a multiple of it).
    hit_tokens : per request id, prompt tokens found cached at its first admission
        (written here; shared by all instances of a run).
    """

    __slots__ = (
        "keys",
        "H",
        "bpk",
        "ref",
        "lru",
        "held",
        "shared_blocks",
        "hit_tokens",
        "n_lookups",
        "lookup_tokens",
        "cached_tokens",
        "n_hits",
        "evicted_blocks",
    )

    def __init__(self, keys: Sequence[Any], hash_tokens: int, block_tokens: int, hit_tokens: np.ndarray):
        if hash_tokens % block_tokens:
            raise SimulationInvariantError(
                f"prefix block of {hash_tokens} tokens is not a multiple of the KV block ({block_tokens})"
            )
        self.keys = keys
        self.H = hash_tokens
        self.bpk = hash_tokens // block_tokens  # KV blocks per entry
        self.ref: Dict[int, int] = {}  # cached key -> requests referencing it
        self.lru: "OrderedDict[int, None]" = OrderedDict()  # unreferenced keys, least recent first
        self.held: Dict[int, int] = {}  # request id -> leading keys it references
        self.shared_blocks = 0  # KV blocks counted by more than one request
        self.hit_tokens = hit_tokens
        self.n_lookups = 0  # admissions that looked up the cache
        self.lookup_tokens = 0  # their prefill targets [tokens]
        self.cached_tokens = 0  # tokens of those found cached [tokens]
        self.n_hits = 0  # admissions with a hit
        self.evicted_blocks = 0  # KV blocks evicted

    # ------------------------------------------------------------------ lookup
    def match(self, rid: int, need: int) -> Tuple[int, int]:
        """(keys hit, KV blocks the hit adds to the free count) for request ``rid`` with a
        prefill target of ``need`` tokens. The second is the blocks of hit entries already
        referenced by another request (their admission counts them twice)."""
        k = self.keys[rid]
        if k is None:
            return 0, 0
        ref = self.ref
        m = shared = 0
        for key in k[: (need - 1) // self.H]:
            n = ref.get(key)
            if n is None:
                break
            m += 1
            if n:
                shared += self.bpk
        return m, shared

    def acquire(self, rid: int, m: int, need: int, first: bool) -> int:
        """Request ``rid`` is admitted with its ``m`` leading keys hit: reference them.
        Returns the change of :attr:`shared_blocks`."""
        self.n_lookups += 1
        self.lookup_tokens += need
        if first:
            self.hit_tokens[rid] = m * self.H
        if not m:
            self.held[rid] = 0
            return 0
        self.n_hits += 1
        self.cached_tokens += m * self.H
        return self._ref_keys(rid, 0, m)

    def _ref_keys(self, rid: int, lo: int, hi: int) -> int:
        ref, lru, bpk = self.ref, self.lru, self.bpk
        delta = 0
        for key in self.keys[rid][lo:hi]:
            n = ref.get(key)
            if n is None:
                ref[key] = 1
            elif n == 0:
                ref[key] = 1
                del lru[key]
            else:
                ref[key] = n + 1
                delta += bpk
        self.held[rid] = hi
        self.shared_blocks += delta
        return delta

    def insert(self, rid: int, tokens: int) -> int:
        """Request ``rid``'s KV now covers ``tokens`` tokens: its full prefix blocks become
        entries it references. Returns the change of :attr:`shared_blocks`."""
        k = self.keys[rid]
        lo = self.held.get(rid, 0)
        if k is None:
            return 0
        hi = min(len(k), tokens // self.H)
        if hi <= lo:
            return 0
        return self._ref_keys(rid, lo, hi)

    def release(self, rid: int, tokens: int = 0) -> int:
        """Request ``rid`` frees its KV (done or preempted), whose first ``tokens`` tokens
        are valid: their full blocks are inserted, then every reference is dropped, last
        block first. Returns the change of :attr:`shared_blocks`."""
        delta = self.insert(rid, tokens) if tokens else 0
        m = self.held.pop(rid, 0)
        if not m:
            return delta
        ref, lru, bpk = self.ref, self.lru, self.bpk
        keys = self.keys[rid]
        drop = 0
        for j in range(m - 1, -1, -1):
            key = keys[j]
            n = ref[key] - 1
            ref[key] = n
            if n == 0:
                lru[key] = None
            else:
                drop += bpk
        self.shared_blocks -= drop
        return delta - drop

    # ------------------------------------------------------------------ memory
    def fit(self, free_blocks: int) -> None:
        """Evict unreferenced entries, least recently used first, until the instance's
        ``free_blocks`` (which count them as free) hold them all."""
        lru, bpk = self.lru, self.bpk
        if bpk * len(lru) <= free_blocks:
            return
        ref = self.ref
        while lru and bpk * len(lru) > free_blocks:
            key, _ = lru.popitem(last=False)
            del ref[key]
            self.evicted_blocks += bpk

    def clear(self) -> None:
        """Drop every entry (the instance failed: its memory is lost)."""
        self.ref.clear()
        self.lru.clear()
        self.held.clear()
        self.shared_blocks = 0

    def cached_prefix_tokens(self, rid: int) -> int:
        """Tokens of request ``rid``'s prompt prefix cached here now (for routers)."""
        k = self.keys[rid]
        if k is None:
            return 0
        m = 0
        ref = self.ref
        for key in k:
            if key not in ref:
                break
            m += 1
        return m * self.H

    @property
    def n_cached_blocks(self) -> int:
        """KV blocks held by cache entries (referenced or not)."""
        return self.bpk * len(self.ref)

    def check(self) -> None:
        """Invariants: references match the requests holding keys; the LRU holds exactly
        the unreferenced keys; :attr:`shared_blocks` is the overcount."""
        count: Dict[int, int] = {}
        for rid, m in self.held.items():
            for key in self.keys[rid][:m]:
                count[key] = count.get(key, 0) + 1
        for key, n in self.ref.items():
            if count.get(key, 0) != n:
                raise SimulationInvariantError(f"prefix cache: key {key} has {n} references, {count.get(key, 0)} held")
        if set(self.lru) != {key for key, n in self.ref.items() if n == 0}:
            raise SimulationInvariantError("prefix cache: LRU list differs from the unreferenced entries")
        over = self.bpk * sum(n - 1 for n in self.ref.values() if n > 0)
        if over != self.shared_blocks:
            raise SimulationInvariantError(f"prefix cache: shared blocks {self.shared_blocks}, recount {over}")

    def stats(self) -> Dict[str, float]:
        """Per-instance totals for the results (instances table)."""
        return {
            "prefix_lookups": self.n_lookups,
            "prefix_hits": self.n_hits,
            "prefix_lookup_tokens": self.lookup_tokens,
            "prefix_cached_tokens": self.cached_tokens,
            "prefix_hit_tokens_frac": self.cached_tokens / self.lookup_tokens if self.lookup_tokens else 0.0,
            "prefix_evicted_blocks": self.evicted_blocks,
        }
