"""Giving freed memory back to the operating system between the runs of one process.

A run allocates and frees hundreds of megabytes of arrays (1M requests). glibc's allocator keeps
freed heap pages (its mmap threshold rises after the first large free, so later large arrays
come from the heap too), so the resident set of a process that runs the band corners and then the
nominal run grew with each run although nothing was kept: 1M requests peaked ~100 MB higher
(``benchmarks/README.md``, "Memory"). An engine's objects also form reference cycles (SimPy
processes and the instances they drive), which only the cyclic garbage collector frees.
:func:`release_free_memory` collects them and asks glibc to return free pages (``malloc_trim``;
elsewhere only the collection is done).

Arrow's default memory pool (mimalloc in the pyarrow wheels) keeps the pages it used while a
Parquet file was written: writing the requests table left RSS ~50 MB higher (300k and 1M
requests alike) against ~10 MB with the C library's allocator. :func:`prefer_system_arrow_pool`
asks for the latter in a process that has not imported pyarrow yet (the ``greensim`` command).

glibc also serves a large array from its heap once a freed large one has raised its (dynamic)
mmap threshold, and a freed heap block in the middle stays resident: building the tables of 1M
requests (many temporaries of 1-8 MB) peaked ~30 MB higher than with every array of >= 1 MiB
mapped and unmapped on its own (:func:`map_large_allocations`, which also fixes the threshold;
the same CPU time within noise, ``benchmarks/README.md``, "Memory").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import sys
from typing import Any, Optional

__all__ = ["release_free_memory", "prefer_system_arrow_pool", "map_large_allocations", "ARROW_POOL_ENV"]

#: pyarrow reads it once, when its default memory pool is first used
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


@functools.lru_cache(maxsize=1)
def _libc() -> Optional[Any]:
    if not sys.platform.startswith("linux"):
        return None
    try:  # glibc's name first: find_library runs ldconfig (tens of ms at every command's start)
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            return None
    return libc if hasattr(libc, "malloc_trim") else None  # glibc only (not musl)


def release_free_memory() -> bool:
    """Free unreachable cycles (``gc.collect()``), then return the C heap's free pages to the
    operating system (glibc ``malloc_trim(0)``).

    Changes no value; True when glibc released some memory. Call it between runs, not inside one.
    """
    gc.collect()
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def prefer_system_arrow_pool() -> bool:
    """Make Arrow allocate with the C library's ``malloc`` (``ARROW_DEFAULT_MEMORY_POOL=system``)
    instead of mimalloc, unless pyarrow is already imported or the variable is already set.

    Changes no value, only where Arrow's buffers come from and hence how much of them the process
    keeps after writing Parquet (module docstring; ``benchmarks/README.md``, "Memory"). True when
    the variable was set here. For the ``greensim`` command, which owns its process; a library
    user may set the variable themselves before importing pandas.
    """
    if "pyarrow" in sys.modules or ARROW_POOL_ENV in os.environ:
        return False
    os.environ[ARROW_POOL_ENV] = "system"
    return True


#: glibc ``mallopt`` parameter number of ``M_MMAP_THRESHOLD`` (``<malloc.h>``, mallopt(3))
_M_MMAP_THRESHOLD = -3
#: allocations of at least this many bytes get their own mapping (1 MiB: 131,072 float64)
MMAP_THRESHOLD_BYTES = 1 << 20


def map_large_allocations(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Have glibc map every allocation of ``threshold`` bytes or more on its own, so that freeing
    it gives its pages back at once (``mallopt(M_MMAP_THRESHOLD)``, which also stops glibc from
    raising the threshold after large frees). Changes no value; True when glibc accepted it,
    False elsewhere (not glibc). For the ``greensim`` command, which owns its process.
    """
    libc = _libc()
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold))) if libc is not None else False
