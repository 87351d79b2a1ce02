"""The ingest pipeline with parts made by the caller (a line, an open store, a parsed broker configuration).

A thin front to the one composition, :func:`api.runtime.build_runtime`, for tests and benchmarks that make their
own parts: the same wiring, queue sizes and supervised restarts as ``gigatwin serve`` and ``gigatwin ingest``.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.runtime import LineRuntime, build_runtime, default_client_id
from api.settings import PipelineSettings
from connectors.ingest import Ingest
from connectors.mqtt import MqttConfig, MqttSubscriber
from connectors.stores.base import Store
from connectors.telemetry import Topics
from twin.schema import Line
from twin.state import LiveLine

__all__ = ["IngestService", "IngestSettings", "default_client_id"]


@dataclass(frozen=True)
class IngestSettings:
    """What an ingest process needs besides the line and the store."""

    mqtt: MqttConfig
    topics: Topics
    share_group: str | None = None
    """Several processes with one group split the line's stream (MQTT v5 shared subscription)."""
    batch_size: int = 1000
    batch_wait_s: float = 0.05
    max_lead_s: float = PipelineSettings.model_fields["max_lead_s"].default
    """How far a source timestamp may lie ahead of the receive clock (seconds)."""


class IngestService:
    """Subscribes to a line's telemetry, stores it, keeps its live state; ``start`` / ``stop`` (which drains and closes)."""

    def __init__(self, line: Line, store: Store, settings: IngestSettings) -> None:
        self.line = line
        self.store = store
        self.settings = settings
        # Not read from the environment: the caller made every part (model_construct fills in the defaults).
        pipeline = PipelineSettings.model_construct(
            source="mqtt",
            mqtt_url=settings.mqtt.address,
            mqtt_group=settings.share_group,
            topic_prefix=settings.topics.prefix,
            site=settings.topics.site,
            store_url=f"{type(store).__name__} (given)",
            max_lead_s=settings.max_lead_s,
        )
        self.runtime: LineRuntime = build_runtime(pipeline, line, store=store, mqtt=settings.mqtt)
        self.ingest.batch_size = min(settings.batch_size, settings.mqtt.receive_maximum)
        self.ingest.batch_wait_s = settings.batch_wait_s

    @property
    def ingest(self) -> Ingest:
        """The pipeline (its ``stats``)."""
        return self.runtime.ingest

    @property
    def subscriber(self) -> MqttSubscriber:
        """The broker subscription (opened by :meth:`start`; a benchmark opens it alone to leave a persistent session)."""
        sub = self.runtime.subscriber
        assert sub is not None  # built with an MQTT source, always
        return sub

    @property
    def live(self) -> LiveLine:
        """The line's live state."""
        return self.runtime.live.live

    def start(self, timeout_s: float = 10.0) -> None:
        """Resume the counters from the store, start the pipeline, then connect and subscribe (raises MqttError if
        the broker cannot be reached)."""
        self.runtime.start(require_source=True, timeout_s=timeout_s)

    @property
    def alive(self) -> bool:
        """Whether the pipeline runs (or waits to be restarted) rather than having failed for good or stopped."""
        return any(t.name == "ingest" and t.state in ("running", "restarting") for t in self.runtime.supervisor.status())

    def stop(self) -> None:
        """Stop taking messages, store and acknowledge what was taken, then disconnect (the session stays) and close the store."""
        self.runtime.stop()
