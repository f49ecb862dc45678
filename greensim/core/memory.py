"""Paged KV-cache capacity (vLLM-style blocks)."""

from __future__ import annotations

from greensim.base.errors import ConfigError
from greensim.base.units import BYTES_PER_GIB

__all__ = ["kv_capacity_blocks"]


def kv_capacity_blocks(
    gpu_memory_bytes: float,
    tp: int,
    weight_bytes: float,
    kv_bytes_per_token: float,
    block_tokens: int,
    reserve_frac: float,
    where: str = "cluster.instances",
) -> int:
    """Number of KV blocks an instance holds.

    capacity = tp * memory * (1 - reserve_frac) - weights, in blocks of
    ``block_tokens * kv_bytes_per_token`` bytes (KV heads are split across TP GPUs,
    so per-token bytes add up to the model's). Raises ConfigError if the weights do
    not fit or not even one block is left.
    """
    usable = tp * gpu_memory_bytes * (1.0 - reserve_frac)
    free = usable - weight_bytes
    blocks = int(free // (kv_bytes_per_token * block_tokens)) if free > 0 else 0
    if blocks < 1:
        raise ConfigError(
            f"{where}: the model does not fit: weights need {weight_bytes / BYTES_PER_GIB:.1f} GiB "
            f"but {tp} GPU(s) leave {usable / BYTES_PER_GIB:.1f} GiB after the "
            f"{reserve_frac:.0%} reserve. Raise tp (tensor-parallel degree), pick a GPU with "
            f"more memory or a smaller model."
        )
    return blocks
