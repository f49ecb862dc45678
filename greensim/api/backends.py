"""Execution backends for sweeps: where independent runs execute.

A backend maps a picklable function over a list of picklable items and yields
``(index, result)`` pairs as they finish (any order). Two are provided:

- ``local``: a :class:`concurrent.futures.ProcessPoolExecutor` on this machine, all
  cores by default; one worker runs in this process (no pool, easiest to debug).
- ``dask``: a Dask distributed cluster, given a scheduler address, a scheduler file or
  a ready ``distributed.Client`` (install with ``pip install 'greensim[dask]'``).

Ray is not provided: Dask already covers "a cluster when one laptop is not enough", and a
second engine would double the test matrix for no new capability. A backend is any object
with ``name`` and ``map_unordered``; pass one to :func:`greensim.sweep` directly.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence, Tuple

from greensim.base.errors import GreensimError

__all__ = ["Backend", "BackendError", "LocalBackend", "DaskBackend", "make_backend", "BACKEND_NAMES"]

BACKEND_NAMES = ("local", "dask")


class BackendError(GreensimError):
    """An execution backend cannot be used (not installed, unreachable, bad option)."""


class Backend(Protocol):
    """Runs independent tasks; yields ``(index, result)`` in completion order."""

    name: str

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Tuple[int, Any]]: ...

    def close(self) -> None: ...


class LocalBackend:
    """Processes on this machine.

    Parameters
    ----------
    workers : int, optional
        Number of worker processes; default ``os.cpu_count()``. ``1`` runs every task in
        the calling process, in order.

    Notes
    -----
    Workers are started with ``spawn``: a script calling this must guard its entry
    point with ``if __name__ == "__main__":`` (notebooks need nothing).
    """

    name = "local"

    def __init__(self, workers: Optional[int] = None):
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise BackendError(
                f"workers: must be a positive integer, got {workers!r}. Omit it to use all {os.cpu_count()} cores."
            )
        self.workers = workers or os.cpu_count() or 1

    def map_unordered(self, fn, items):
        if self.workers == 1 or len(items) <= 1:
            for i, item in enumerate(items):
                yield i, fn(item)
            return
        # spawn: workers start clean (no inherited threads or locks from a notebook kernel),
        # and behave the same on Linux, macOS and Windows.
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(items)), mp_context=ctx)
        try:
            pending = {pool.submit(fn, item): i for i, item in enumerate(items)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield pending.pop(fut), fut.result()
        finally:
            # On an interrupt (Ctrl-C in a notebook), drop the queued runs instead of finishing them.
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass


class DaskBackend:
    """A Dask distributed cluster (an existing engine: scheduling, retries, dashboards).

    Parameters
    ----------
    address : str, optional
        Scheduler address, e.g. ``"tcp://10.0.0.5:8786"``.
    scheduler_file : str, optional
        JSON file written by ``dask scheduler --scheduler-file``.
    client : distributed.Client, optional
        A connected client (e.g. of a ``LocalCluster``); it is not closed by :meth:`close`.
    timeout_s : float
        How long to wait for the scheduler before giving up [s].

    Raises
    ------
    BackendError
        When ``distributed`` is not installed, no target is given, or the scheduler does
        not answer within ``timeout_s``.
    """

    name = "dask"

    def __init__(
        self,
        address: Optional[str] = None,
        scheduler_file: Optional[str] = None,
        client: Any = None,
        timeout_s: float = 10.0,
    ):
        try:
            import distributed
        except ImportError:
            raise BackendError(
                "backend 'dask': the 'distributed' package is not installed. "
                "Install it with: pip install 'greensim[dask]'."
            ) from None
        self._own = client is None
        if client is not None:
            self.client = client
            return
        if (address is None) == (scheduler_file is None):
            raise BackendError(
                "backend 'dask': give exactly one of a scheduler address "
                "(--scheduler tcp://host:8786) or a scheduler file (--scheduler-file)."
            )
        if scheduler_file is not None and not os.path.isfile(scheduler_file):
            raise BackendError(
                f"backend 'dask': scheduler file {scheduler_file!r} does not exist. "
                f"Start a scheduler with `dask scheduler --scheduler-file {scheduler_file}`."
            )
        target = address if address is not None else f"file {scheduler_file}"
        try:
            self.client = distributed.Client(
                address=address, scheduler_file=scheduler_file, timeout=timeout_s, set_as_default=False
            )
        except (OSError, TimeoutError) as exc:
            raise BackendError(
                f"backend 'dask': no scheduler answered at {target} within {timeout_s:g} s "
                f"({type(exc).__name__}). Check the address, or start one with "
                f"`dask scheduler` and `dask worker <address>`."
            ) from None
        except ValueError as exc:  # malformed address
            raise BackendError(
                f"backend 'dask': bad scheduler address {address!r}: {exc}. Use the form tcp://host:8786."
            ) from None

    def map_unordered(self, fn, items):
        from distributed import as_completed

        # pure=False: every item is its own task even if two items happen to be equal.
        futures = self.client.map(fn, list(items), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            yield index[fut.key], fut.result()
            fut.release()

    def close(self) -> None:
        if self._own:
            self.client.close()


def make_backend(
    backend: Any = "local",
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    scheduler_file: Optional[str] = None,
    timeout_s: float = 10.0,
):
    """Build a backend from a name (``"local"``/``"dask"``), or return a backend object as is.

    Parameters
    ----------
    backend : str or Backend or distributed.Client
        ``"local"``, ``"dask"``, a backend object, or a Dask ``Client``.
    workers : int, optional
        Local worker processes (``local`` only); default all cores.
    scheduler, scheduler_file : str, optional
        Dask scheduler address or scheduler file (``dask`` only).
    timeout_s : float
        Dask connection timeout [s].
    """
    if not isinstance(backend, str):
        if hasattr(backend, "map_unordered"):
            return backend
        if type(backend).__name__ == "Client" and hasattr(backend, "submit"):
            return DaskBackend(client=backend)
        raise BackendError(f"backend: expected 'local', 'dask', a backend object or a dask Client, got {backend!r}.")
    if backend == "local":
        if scheduler or scheduler_file:
            raise BackendError("backend 'local': --scheduler/--scheduler-file apply to --backend dask only.")
        return LocalBackend(workers)
    if backend == "dask":
        if workers is not None:
            raise BackendError(
                "backend 'dask': the cluster decides the number of workers; "
                "drop --workers (start more `dask worker` processes instead)."
            )
        return DaskBackend(address=scheduler, scheduler_file=scheduler_file, timeout_s=timeout_s)
    import difflib

    close = difflib.get_close_matches(backend, BACKEND_NAMES, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise BackendError(f"backend: unknown backend {backend!r} (valid: {', '.join(BACKEND_NAMES)}).{hint}")
