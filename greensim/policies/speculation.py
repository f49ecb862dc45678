"""Gamma policies for speculative decoding: draft tokens per iteration.

A policy returns ``g`` in ``[0, gamma_max]`` for the next iteration of a batch; the
engine caps each request at its remaining tokens minus one.
"""

from __future__ import annotations

from typing import Callable

from greensim.policies.registry import GAMMA_POLICIES

__all__ = ["FixedGamma", "GoodputGamma"]


@GAMMA_POLICIES.register("fixed")
class FixedGamma:
    """Always ``gamma_max`` (the experiment's ``gamma``)."""

    #: choose() always returns gamma_max: the engine may plan each request's run ahead
    always_gamma_max = True

    def choose(
        self,
        n_batch: int,
        gamma_max: int,
        expected_tokens: Callable[[int], float],
        iteration_time_s: Callable[[int], float],
    ) -> int:
        return gamma_max


@GAMMA_POLICIES.register("goodput")
class GoodputGamma:
    """Per batch, the ``g`` maximising expected tokens per second.

    ``argmax_g  E[n](g) / T(g)`` with ``E[n](g)`` the mean tokens per iteration
    (``(1 - alpha^(g+1)) / (1 - alpha)``, Leviathan et al. 2023, or the per-position
    model) and ``T(g)`` the engine's estimate of the iteration time;
    the proposal-length rule of SmartSpec (Liu et al., "Optimizing speculative decoding
    for serving large language models using goodput", arXiv 2406.14066). Ties go to the
    smaller ``g``.
    """

    def choose(
        self,
        n_batch: int,
        gamma_max: int,
        expected_tokens: Callable[[int], float],
        iteration_time_s: Callable[[int], float],
    ) -> int:
        best, best_rate = 0, -1.0
        for g in range(gamma_max + 1):
            rate = expected_tokens(g) / iteration_time_s(g)
            if rate > best_rate * (1 + 1e-12):
                best, best_rate = g, rate
        return best
