"""Where replications run: in this process, on a pool of processes on this machine, or on a Dask cluster.

:func:`open_executor` gives a ``concurrent.futures.Executor`` (or ``None``: run in this process) for the what-ifs and
forecasts that fan replications out, and closes it on exit. Results do not depend on the executor: every task carries
its own seed.

A Dask cluster is reached through the ``distributed`` package, an optional extra (``pip install 'gigatwin[dask]'``);
it is imported only when a scheduler is named, so GigaTwin runs without it. The cluster's workers need the same
gigatwin version installed: tasks are GigaTwin's functions, pickled by reference.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from connectors.errors import ConnectorError

__all__ = ["DASK_INSTALL_HINT", "ExecutorError", "open_executor"]

DASK_INSTALL_HINT = "pip install 'gigatwin[dask]'"
"""How to install the optional Dask support (the ``distributed`` package)."""

CONNECT_TIMEOUT_S = 10.0
"""How long to wait for a Dask scheduler to answer before giving up."""


class ExecutorError(ConnectorError):
    """Replications cannot run where asked: a bad worker count, Dask not installed, or a scheduler out of reach."""


@contextlib.contextmanager
def open_executor(
    workers: int, scheduler: str | None, *, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> Iterator[Executor | None]:
    """An executor for replications, closed on exit.

    ``scheduler`` given (a Dask scheduler's address, e.g. ``tcp://host:8786``): the executor of a Dask client
    connected to it (``workers`` is then ignored: the cluster has its own). Else ``workers`` > 1: a pool of that many
    processes on this machine, started with forkserver (clean processes, never forked from this one's threads);
    ``workers`` == 1: ``None``, i.e. run in this process.

    :class:`ExecutorError` for ``workers`` < 1, a blank address, ``distributed`` not installed, or a scheduler that
    does not answer within ``connect_timeout_s`` seconds.
    """
    if scheduler is not None:
        with _dask_executor(scheduler, connect_timeout_s) as executor:
            yield executor
        return
    if workers < 1:
        raise ExecutorError(f"workers must be at least 1 (1: run in this process), got {workers}")
    if workers == 1:
        yield None
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
        yield pool


@contextlib.contextmanager
def _dask_executor(scheduler: str, connect_timeout_s: float) -> Iterator[Executor]:
    """A Dask client's executor on the cluster whose scheduler is at ``scheduler``; client and executor closed on
    exit."""
    address = scheduler.strip()
    if not address:
        raise ExecutorError("the Dask scheduler's address is empty (expected e.g. tcp://host:8786)")
    try:
        # imported by name: an optional extra, and typed loosely upstream (its client's calls are untyped)
        distributed: Any = importlib.import_module("distributed")
    except ImportError as exc:
        raise ExecutorError(
            f"a Dask scheduler ({address}) was named but the 'distributed' package is not installed; install it with: "
            f"{DASK_INSTALL_HINT}"
        ) from exc
    try:
        # set_as_default=False: this client serves our executor only, not every dask computation in the process
        client = distributed.Client(address, timeout=connect_timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        _close_half_built(exc, distributed.Client)
        raise ExecutorError(
            f"cannot reach the Dask scheduler at {address} within {connect_timeout_s:g} s: {exc} "
            "(is the scheduler running, and is the address host:port of its TCP listener, e.g. tcp://host:8786?)"
        ) from exc
    try:
        # pure=False: every task is run (a pure task would be hashed, at a cost, and identical ones merged)
        executor: Executor = client.get_executor(pure=False)
        try:
            yield executor
        finally:
            executor.shutdown(wait=True)
    finally:
        client.close()


def _close_half_built(exc: BaseException, client_type: type[Any]) -> None:
    """Close the client whose constructor raised ``exc`` (found in the traceback's frames).

    A client that failed to connect still holds an event loop reference and cycles of its own; left to the garbage
    collector it may be finalised at interpreter exit, when its loop is gone, and wait there seconds for nothing.
    """
    tb = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, client_type):
            with contextlib.suppress(Exception):
                candidate.close()
            return
        tb = tb.tb_next
