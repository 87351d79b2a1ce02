"""Helpers for the integration tests: known message streams, a recording publisher, ingest processes, waiting for a store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.mqtt import MqttPublisher
from connectors.stores.base import Store
from connectors.telemetry import BufferReading, Channel, Reading, Source, TelemetryError, Topics, decode, encode

REPO = Path(__file__).resolve().parents[2]
REFERENCE_LINE = REPO / "simulations" / "lines" / "reference_cell_line.yaml"
TOPICS = Topics("gigatwin", "plant1", "reference_cell_line")
T0_MS = 1_763_900_000_000


def buffer_stream(n: int, station: str = "COAT_C", start: int = 0) -> list[tuple[str, bytes, Reading]]:
    """``n`` buffer readings with distinct timestamps and levels ``start..start+n-1``: each one identifiable in the store."""
    src = Source(TOPICS.site, TOPICS.line, station)
    out: list[tuple[str, bytes, Reading]] = []
    for i in range(start, start + n):
        r = BufferReading(src, 0, T0_MS + i * 1000, i)
        out.append((TOPICS.topic(station, Channel.BUFFER), encode(r), r))
    return out


def stored_levels(store: Store, station: str = "COAT_C") -> list[int]:
    """Every stored buffer level of a station, in time order (duplicates would show as repeats only in SQLite/memory)."""
    points = store.range("buffer", start_ms=T0_MS - 1, end_ms=T0_MS + 10**9, station=station, limit=100_000)
    return [int(p.fields["level"]) for p in points]


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until true; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


class RecordingPublisher:
    """A real MQTT publisher that remembers every (topic, payload) it handed to the broker."""

    def __init__(self, inner: MqttPublisher) -> None:
        self.inner = inner
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish through the real client and record it."""
        self.inner.publish(topic, payload)
        self.sent.append((topic, payload))


class IngestProcess:
    """``gigatwin ingest`` as a separate process, as a user runs it."""

    def __init__(self, mqtt_url: str, store_url: str, client_id: str, *extra: str, workdir: Path) -> None:
        self.log = workdir / f"ingest-{client_id}.log"
        self.args = [
            sys.executable, "-m", "api.cli", "ingest", "--mqtt", mqtt_url, "--store", store_url,
            "--line", str(REFERENCE_LINE), "--client-id", client_id, "--status-every", "0.5", *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process and wait until it has subscribed."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        wait_for(lambda: "gigatwin ingest:" in self.log.read_text() or self._dead(), 20, "ingest to subscribe")
        if self._dead():
            raise AssertionError(f"ingest exited: {self.log.read_text()[-3000:]}")

    def _dead(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self, kill: bool = False) -> dict[str, Any]:
        """Stop it (SIGTERM: drain and flush; or SIGKILL: a crash) and return its last stats."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.proc.wait(30)
        self.proc = None
        return self.stats()

    def stats(self) -> dict[str, Any]:
        """The last status or final line it printed."""
        last: dict[str, Any] = {}
        for text in self.log.read_text().splitlines():
            if text.startswith(("status ", "final ")):
                last = json.loads(text.split(" ", 1)[1])
        return last


def readings_of(sent: list[tuple[str, bytes]]) -> tuple[list[Reading], int]:
    """The readings a list of published messages carries, and how many of them do not decode."""
    readings: list[Reading] = []
    bad = 0
    for topic, payload in sent:
        try:
            src, ch = TOPICS.parse(topic)
            readings.append(decode(src, ch, payload))
        except TelemetryError:
            bad += 1
    return readings, bad


__all__ = [
    "REFERENCE_LINE",
    "T0_MS",
    "TOPICS",
    "IngestProcess",
    "RecordingPublisher",
    "buffer_stream",
    "readings_of",
    "stored_levels",
    "wait_for",
]
