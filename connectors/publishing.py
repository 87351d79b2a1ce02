"""The port telemetry leaves through: a :class:`Publisher` takes a topic and a payload, and an in-memory fake.

The virtual plant publishes through this protocol and knows nothing of MQTT; the paho adapter implements it
for a real broker, :class:`CollectingPublisher` for tests and demos.
"""

from __future__ import annotations

import threading
from typing import Protocol

__all__ = ["CollectingPublisher", "Publisher"]


class Publisher(Protocol):
    """Something that sends one message: it blocks until the message is accepted and raises on failure."""

    def publish(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` on ``topic``."""


class CollectingPublisher:
    """A publisher that keeps every message in memory, in publication order (the fake for tests)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        """Every ``(topic, payload)`` published so far."""
        self._lock = threading.Lock()

    def publish(self, topic: str, payload: bytes) -> None:
        """Keep the message."""
        with self._lock:
            self.messages.append((topic, payload))

    def taken(self) -> list[tuple[str, bytes]]:
        """A copy of the messages so far (safe while another thread publishes)."""
        with self._lock:
            return list(self.messages)
