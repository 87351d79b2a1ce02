"""The ingest service: a broker subscription, the pipeline thread, the store and the live state, started and stopped together.

The command line runs it in the foreground (``gigatwin ingest``); the API's lifespan will own one the same way.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass

from connectors.ingest import Ingest
from connectors.mqtt import MqttConfig, MqttSubscriber
from connectors.stores.base import Store
from connectors.telemetry import Topics
from twin.schema import Line
from twin.state import LiveLine

__all__ = ["IngestService", "IngestSettings", "default_client_id"]

log = logging.getLogger("gigatwin.ingest")


def default_client_id(line: str, group: str | None) -> str:
    """A client id stable across restarts on this host (a persistent session is found again by its id)."""
    return f"gigatwin-ingest-{line}-{group or 'solo'}-{socket.gethostname()}"


@dataclass(frozen=True)
class IngestSettings:
    """What an ingest process needs besides the line and the store."""

    mqtt: MqttConfig
    topics: Topics
    share_group: str | None = None
    """Several processes with one group split the line's stream (MQTT v5 shared subscription)."""
    batch_size: int = 1000
    batch_wait_s: float = 0.05


class IngestService:
    """Subscribes to a line's telemetry, stores it, keeps its live state; ``start`` / ``stop`` (which drains and closes)."""

    def __init__(self, line: Line, store: Store, settings: IngestSettings, live: LiveLine | None = None) -> None:
        self.line = line
        self.store = store
        self.settings = settings
        self.live = live if live is not None else LiveLine(line)
        cfg = settings.mqtt
        # The queue must hold everything the broker may have in flight to us, so paho's thread never blocks.
        queue_size = max(2 * cfg.receive_maximum, settings.batch_size)
        self.ingest = Ingest(
            settings.topics,
            store,
            line=line,
            observers=[self.live],
            batch_size=min(settings.batch_size, cfg.receive_maximum),
            batch_wait_s=settings.batch_wait_s,
            queue_size=queue_size,
        )
        self.subscriber = MqttSubscriber(cfg, settings.topics.subscription(settings.share_group), self.ingest.submit)
        self.ingest.ack = self.subscriber.ack
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gigatwin-ingest", daemon=True)

    def _run(self) -> None:
        try:
            self.ingest.run(self._stop)
        except Exception:
            log.exception("the ingest pipeline died")
            raise

    def start(self, timeout_s: float = 10.0) -> None:
        """Resume the counters from the store, start the pipeline, then connect and subscribe."""
        self.ingest.resume_counters()
        self._thread.start()
        self.subscriber.start(timeout_s)

    @property
    def alive(self) -> bool:
        """Whether the pipeline thread runs."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop taking messages, store and acknowledge what was taken, then disconnect (the session stays) and close the store."""
        self._stop.set()
        self._thread.join()
        self.subscriber.stop()
        self.store.close()
