"""The live line shared between the pipeline thread, which feeds it, and the API, which reads it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from twin.events import Event
from twin.series import OutputSeries
from twin.state import LiveLine

__all__ = ["LiveView"]

T = TypeVar("T")


class LiveView:
    """A :class:`~twin.state.LiveLine` (and the line's output series) behind a lock, with a version that moves on with
    every event taken.

    The ingest pipeline calls it with each event (it is an observer); readers call :meth:`read`. Responses built
    from one version can be reused until the version moves (the status route's cache).
    """

    def __init__(self, live: LiveLine, output: OutputSeries | None = None) -> None:
        self.live = live
        self.output = output if output is not None else OutputSeries(live.line, keep_h=live.history_h)
        """Good output per minute, for the throughput chart."""
        self.lock = threading.Lock()
        self.version = 0
        self._cache: dict[str, tuple[int, object]] = {}

    def __call__(self, event: Event) -> None:
        """Take one event (the pipeline thread)."""
        with self.lock:
            self.live(event)
            self.output(event)
            self.version += 1

    def read(self, fn: Callable[[LiveLine], T]) -> T:
        """``fn(live)`` with the lock held: a consistent view while events keep coming."""
        with self.lock:
            return fn(self.live)

    def cached(self, key: str, build: Callable[[LiveLine], T]) -> T:
        """``build(live)``, reused while no event has come since it was built for ``key``."""
        with self.lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == self.version:
                return hit[1]  # type: ignore[return-value]  # stored by this method under this key, so a T
            value = build(self.live)
            self._cache[key] = (self.version, value)
            return value
