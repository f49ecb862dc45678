"""Synthetic workloads with prefix identity: shared system prompts and multi-turn chat sessions.

Each request gets prefix keys (:attr:`greensim.core.requests.RequestTable.prefix_ids`), one
per ``prefix_block_tokens``-token block of its token stream, for prefix caching
(:mod:`greensim.core.prefix_cache`):

* ``prefix: {shared_tokens: N, n_prefixes: K}``: a request's stream starts with one of K
  system prompts of N tokens (picked uniformly); its ``N // H`` whole blocks carry that
  prompt's keys. The rest of the prompt is the request's own (its blocks get no key: no
  other request could hit them).
* ``sessions: {turns: T, think_time_s: d}``: the arrival process starts sessions; turn
  ``t`` (0-based) arrives at ``start + t d``; its prompt is ``N`` + every earlier user
  input and output + its own user input (``lengths.input_tokens``), so the whole earlier
  conversation is a prefix it shares with the previous turn. A session's stream (after
  the system prompt's whole blocks) has keys of its own, covering prompt and output.
"""

from __future__ import annotations

import math
from typing import Callable, Tuple

import numpy as np

from greensim.base.errors import ConfigError, TraceError
from greensim.core.requests import RequestTable
from greensim.workloads.arrivals import arrival_times

__all__ = ["synthetic_with_prefixes"]


def synthetic_with_prefixes(
    cfg,
    rng_arr: np.random.Generator,
    rng_len: np.random.Generator,
    rng_pick: np.random.Generator,
    lengths: Callable[[object, int, np.random.Generator], Tuple[np.ndarray, np.ndarray]],
) -> RequestTable:
    """The synthetic workload ``cfg`` (with ``prefix`` and/or ``sessions``) as a table with prefix ids."""
    H = cfg.prefix_block_tokens
    T = cfg.sessions.turns if cfg.sessions is not None else 1
    think = cfg.sessions.think_time_s if cfg.sessions is not None else 0.0
    N = cfg.prefix.shared_tokens if cfg.prefix is not None else 0
    K = cfg.prefix.n_prefixes if cfg.prefix is not None else 1
    Np = N // H
    if cfg.prefix is not None and Np == 0:
        raise ConfigError(
            f"workload.prefix.shared_tokens: {N} tokens is less than one prefix block "
            f"(workload.prefix_block_tokens {H}); no whole block is shared, so nothing could hit a cache. "
            f"Raise shared_tokens or lower prefix_block_tokens."
        )
    n_sess = None if cfg.n_requests is None else math.ceil(cfg.n_requests / T)
    starts = arrival_times(cfg.arrivals, rng_arr, n=n_sess, duration_s=cfg.duration_s)
    S = starts.size
    if S == 0:
        raise TraceError(
            "workload: the arrival process produced no request before duration_s; raise the rate or the duration."
        )
    user, out = lengths(cfg.lengths, S * T, rng_len)
    user = np.asarray(user, dtype=np.int64).reshape(S, T)
    out = np.asarray(out, dtype=np.int64).reshape(S, T)
    pick = rng_pick.integers(0, K, size=S) if cfg.prefix is not None else np.zeros(S, dtype=np.int64)
    prompt = N + np.cumsum(user + out, axis=1) - out  # N + users up to t + outputs before t
    arrival = starts[:, None] + think * np.arange(T)[None, :]
    sess = np.repeat(np.arange(S), T)
    turn = np.tile(np.arange(T), S)
    a = arrival.ravel()
    order = np.lexsort((turn, sess, a))  # by arrival; ties: session, then turn
    if cfg.duration_s is not None:
        order = order[a[order] < cfg.duration_s]
    if cfg.n_requests is not None:
        order = order[: cfg.n_requests]
    # keys: system prompt p, block j < Np -> p Np + j; session s, block j >= Np -> base_s + j - Np
    span = (prompt + out) // H  # whole blocks of a turn's prompt and output
    own = np.maximum(span[:, -1] - Np, 0) if cfg.sessions is not None else np.zeros(S, dtype=np.int64)
    base = K * Np + np.concatenate(([0], np.cumsum(own)[:-1]))
    ids = []
    for i in order:
        s, t = int(sess[i]), int(turn[i])
        p0 = int(pick[s]) * Np
        if cfg.sessions is None:
            ids.append(range(p0, p0 + Np))
            continue
        nb = int(span[s, t])
        b0 = int(base[s])
        mine = range(b0, b0 + max(0, nb - Np))
        ids.append(tuple(range(p0, p0 + min(Np, nb))) + tuple(mine) if Np else mine)
    table = RequestTable.from_arrays(a[order], prompt.ravel()[order], out.ravel()[order], where="workload")
    what = []
    if cfg.prefix is not None:
        what.append(f"{K} shared prompt(s) of {N} tokens prepended")
    if cfg.sessions is not None:
        what.append(f"{S} session(s) of {T} turn(s), {think:g} s apart")
    note = "prefix identity: " + "; ".join(what) + f" ({len(order)} requests, {H}-token prefix blocks)."
    return RequestTable(
        table.arrival_s,
        table.n_input_tokens,
        table.n_output_tokens,
        notes=(note,),
        prefix_ids=ids,
        prefix_block_tokens=H,
    )
