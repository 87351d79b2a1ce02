"""The bounded queue between paho's network thread and the ingest pipeline, woken once per batch, not per message.

``queue.Queue`` takes a lock and signals a condition for every ``put`` and ``get``: at ingest rates (10,000-20,000
messages a second) that is a measurable share of the work, and each signal wakes the pipeline thread for one
message, so the two threads (and the service's event loop) trade the interpreter lock once per message. Here a
``put`` is a ``deque.append`` (atomic under the interpreter lock); the consumer sleeps until ``want`` items are
there (one for the first message of a batch, a whole batch after it) or its time is up, and only the ``put``
that reaches ``want`` wakes it. The lock is taken only to sleep and to wake.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Handoff"]

T = TypeVar("T")


class Handoff(Generic[T]):
    """A bounded FIFO for producer threads (paho's, a feed's) and one consumer thread; :meth:`put` blocks while it is
    full. The bound is checked before the append, so producers putting at once may pass it by one each."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._want = 0  # > 0 while the consumer sleeps: the length that wakes it
        self._producers_waiting = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> bool:
        """Append ``item``, blocking while the queue is full; False (the item not taken) once :meth:`close` was called."""
        items = self._items
        if len(items) >= self.maxsize:
            with self._cond:
                while len(items) >= self.maxsize and not self._closed:
                    self._producers_waiting += 1
                    try:
                        self._cond.wait()
                    finally:
                        self._producers_waiting -= 1
        if self._closed:
            return False
        items.append(item)
        # Read after the append: a consumer that went to sleep before it is seen here, one that checks the length
        # after it sees the item (the interpreter lock orders the two).
        want = self._want
        if want and len(items) >= want:
            with self._cond:
                self._cond.notify_all()
        return True

    def take(self, max_items: int, first_wait_s: float, fill_wait_s: float) -> list[T]:
        """Up to ``max_items`` items, oldest first: waits up to ``first_wait_s`` for the first, then up to ``fill_wait_s``
        more for the rest of a full batch (returns early once ``max_items`` are there). Empty if none came."""
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        items = self._items
        if not items:
            if first_wait_s <= 0:
                return []
            self._sleep_until(1, time.monotonic() + first_wait_s)
            if not items:
                return []
        if len(items) < max_items and fill_wait_s > 0:
            self._sleep_until(max_items, time.monotonic() + fill_wait_s)
        # A producer that found the queue full may be on its way to wait: then it was full here too (only this
        # consumer takes items), and under the lock the producer is either waiting (and woken) or sees the room.
        was_full = len(items) >= self.maxsize
        pop = items.popleft
        batch = [pop() for _ in range(min(max_items, len(items)))]
        if was_full:
            with self._cond:
                if self._producers_waiting:
                    self._cond.notify_all()
        return batch

    def _sleep_until(self, want: int, deadline: float) -> None:
        items = self._items
        with self._cond:
            self._want = want
            try:
                while len(items) < want and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self._cond.wait(left)
            finally:
                self._want = 0

    def reopen(self) -> None:
        """Take items again after :meth:`close` (a restarted consumer)."""
        with self._cond:
            self._closed = False

    def close(self) -> None:
        """Take no more items: a blocked or later :meth:`put` returns False; what is queued can still be taken."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
