"""Giving freed memory back to the operating system between the runs of one process.

A run allocates and frees hundreds of megabytes of arrays (1M requests). glibc's allocator keeps
freed heap pages (its mmap threshold rises after the first large free, so later large arrays
come from the heap too), so the resident set of a process that runs the band corners and then the
nominal run grew with each run although nothing was kept: 1M requests peaked ~100 MB higher
(``benchmarks/README.md``, "Memory"). An engine's objects also form reference cycles (SimPy
processes and the instances they drive), which only the cyclic garbage collector frees.
:func:`release_free_memory` collects them and asks glibc to return free pages (``malloc_trim``;
elsewhere only the collection is done).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import sys
from typing import Any, Optional

__all__ = ["release_free_memory"]


@functools.lru_cache(maxsize=1)
def _libc() -> Optional[Any]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # glibc only (not musl)
    except OSError:
        return None


def release_free_memory() -> bool:
    """Free unreachable cycles (``gc.collect()``), then return the C heap's free pages to the
    operating system (glibc ``malloc_trim(0)``).

    Changes no value; True when glibc released some memory. Call it between runs, not inside one.
    """
    gc.collect()
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
