"""The store's health as routes read it: probed in the background, never on the event loop.

A probe is a real write (``Store.health``) and can take as long as the store's timeout while it is down (10 s
for InfluxDB). :class:`StoreHealthCache` keeps the latest probe; a reader gets it at once, and when it is older
than ``max_age_s`` a background thread probes again (one at a time), so the value is a few seconds old at most
while anyone asks. Only the very first reading waits for a probe, in a worker thread (:meth:`StoreHealthCache.first`).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from api.served import ServedLine
from connectors.stores.base import Health

__all__ = ["StoreHealthCache", "store_health"]


class StoreHealthCache:
    """The latest result of ``probe``, refreshed in a background thread when older than ``max_age_s``."""

    def __init__(self, probe: Callable[[], Health], max_age_s: float = 5.0) -> None:
        self._probe = probe
        self.max_age_s = max_age_s
        self._latest: tuple[float, Health] | None = None
        self._lock = threading.Lock()  # only for starting one probe at a time
        self._probing = False
        self.probes = 0
        """Probes made (each one a write to the store)."""

    def latest(self) -> Health | None:
        """The latest probe's result (None before the first), starting a background probe if it is stale. Never waits."""
        latest = self._latest
        if latest is None or time.monotonic() - latest[0] > self.max_age_s:
            self._refresh_in_background()
        return None if latest is None else latest[1]

    async def first(self) -> Health:
        """The latest result; the first call waits for a probe in a worker thread (not on the event loop)."""
        health = self.latest()
        if health is None:
            health = await run_in_threadpool(self.probe_now)
        return health

    def probe_now(self) -> Health:
        """Probe the store now (the calling thread waits for it) and keep the result."""
        try:
            health = self._probe()
        except Exception as exc:  # a closed or broken store is unhealthy, not an error of the reader
            health = Health(False, f"the health probe failed: {exc}", 0)
        self.probes += 1
        self._latest = (time.monotonic(), health)
        return health

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._probing:
                return
            self._probing = True

        def run() -> None:
            try:
                self.probe_now()
            finally:
                self._probing = False

        threading.Thread(target=run, name="gigatwin-store-health", daemon=True).start()


_caches: dict[int, tuple[weakref.ref[ServedLine], StoreHealthCache]] = {}
_caches_lock = threading.Lock()


def store_health(rt: ServedLine) -> StoreHealthCache:
    """The health cache of ``rt``'s store (one per runtime, shared by the readiness route and the metrics)."""
    with _caches_lock:
        entry = _caches.get(id(rt))
        if entry is not None and entry[0]() is rt:
            return entry[1]
        for key, (ref, _) in list(_caches.items()):
            if ref() is None:
                del _caches[key]
        cache = StoreHealthCache(rt.store.health)  # holds the store, not the runtime
        _caches[id(rt)] = (weakref.ref(rt), cache)
        return cache
