"""Ingest: telemetry messages in, typed readings stored, events out to the live state; nothing lost.

The path of a message: the broker delivers it on paho's thread, which puts it on a bounded queue (:meth:`Ingest.submit`);
the pipeline thread (:meth:`Ingest.run`) takes batches (at most ``batch_size`` messages or ``batch_wait_s``
seconds), decodes and validates each message against the line, drops exact duplicates, writes the batch
and its rejects durably (the store writes or spools to disk), and only then acknowledges the messages to
the broker. Last, the batch's readings, in source-timestamp order, become twin events for the observers
(the live state, a stream to dashboards).

Back-pressure, the policy when full: the consumer's MQTT v5 Receive Maximum (set no larger than the queue)
bounds the unacknowledged messages the broker sends, so the queue cannot overflow and the broker holds the
backlog (mosquitto's ``max_queued_messages`` must be deep: see connectors/mosquitto/mosquitto.conf). If it
ever fills anyway, ``submit`` blocks paho's thread (TCP back-pressure) rather than drop. A message is
acknowledged only after it is stored or dead-lettered, so a crash at any point loses nothing acknowledged:
the broker redelivers the rest, and the duplicates that redelivery makes are dropped here and idempotent in
the stores (same point, same key).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

from connectors.errors import ConnectorError
from connectors.mqtt import Delivery
from connectors.stores.base import DeadLetter, Store, WriteOutcome, WriteRefused
from connectors.telemetry import (
    Channel,
    InputReading,
    Reading,
    StoreReading,
    TelemetryError,
    Topics,
    decode,
    reading_events,
)
from twin.counters import CumulativeCounters
from twin.events import Event
from twin.schema import Line

__all__ = ["Ingest", "IngestStats", "LoopbackPublisher"]

log = logging.getLogger("gigatwin.ingest")

EventObserver = Callable[[Event], None]


@dataclass
class IngestStats:
    """What the pipeline has done so far (monotonic counters, plus the queue depth now)."""

    received: int = 0
    stored: int = 0
    """Readings written (or spooled) to the store."""
    rejected: int = 0
    """Messages kept as dead letters, with their reason."""
    duplicates: int = 0
    spooled_batches: int = 0
    batches: int = 0
    acked: int = 0
    events: int = 0
    observer_errors: int = 0
    store_failures: int = 0
    """Batches the store could neither write nor spool (retried until it can)."""
    counter_resets: int = 0
    queue_depth: int = 0
    max_clock_skew_ms: int = 0
    """The largest |receive time - source timestamp| seen: a gateway clock that is off shows here."""
    last_error: str = ""

    def as_dict(self) -> dict[str, int | str]:
        """The counters as plain data."""
        return asdict(self)


class _Recent:
    """The last ``size`` readings taken, to recognise exact duplicates (redeliveries, a gateway sending twice)."""

    __slots__ = ("_seen", "size")

    def __init__(self, size: int) -> None:
        self._seen: OrderedDict[Reading, None] = OrderedDict()
        self.size = size

    def __contains__(self, reading: Reading) -> bool:
        return reading in self._seen

    def remember(self, readings: Iterable[Reading]) -> None:
        """Remember readings that were stored, forgetting the oldest beyond ``size``."""
        seen = self._seen
        for r in readings:
            seen[r] = None
        while len(seen) > self.size:
            seen.popitem(last=False)


class Ingest:
    """Decodes, validates, deduplicates, stores, acknowledges and hands on telemetry of one line.

    ``ack`` acknowledges a batch of deliveries to the broker, in order (``MqttSubscriber.ack``); ``observers``
    take the twin events (e.g. a ``twin.state.LiveLine``). ``line`` lets messages be checked against the line's stations and
    machines; without it any station is accepted.
    """

    def __init__(
        self,
        topics: Topics,
        store: Store,
        *,
        line: Line | None = None,
        observers: Iterable[EventObserver] = (),
        ack: Callable[[Sequence[tuple[int, int]]], None] | None = None,
        batch_size: int = 1000,
        batch_wait_s: float = 0.05,
        queue_size: int = 10_000,
        dedup_size: int = 200_000,
        max_future_s: float = 24 * 3600.0,
    ) -> None:
        if batch_size < 1 or queue_size < batch_size:
            raise ValueError(f"need 1 <= batch_size <= queue_size, got batch_size={batch_size}, queue_size={queue_size}")
        self.topics = topics
        self.store = store
        self.line = line
        self.observers = list(observers)
        self.ack = ack
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.queue_size = queue_size
        self.max_future_ms = int(max_future_s * 1000)
        self.stats = IngestStats()
        self.counters = CumulativeCounters()
        self._recent = _Recent(dedup_size)
        self._queue: queue.Queue[Delivery] = queue.Queue(maxsize=queue_size)
        self._accepting = threading.Event()
        self._accepting.set()
        # Per station of the line: its machine count and kind, to check messages against (empty: no line given).
        self._machines: dict[str, tuple[int, str]] = {}
        self._first = line.stations[0].id if line is not None else ""
        for st in line.stations if line is not None else ():
            self._machines[st.id] = (1 if st.kind == "delay" else st.machines, st.kind)

    # -- the paho side ----------------------------------------------------------------------------------------
    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery (paho's thread). Blocks while the queue is full; ignored once stopping (left unacknowledged,
        so the broker delivers it again next time)."""
        if self._accepting.is_set():
            self._queue.put(delivery)

    def queue_depth(self) -> int:
        """Messages waiting in the queue now."""
        return self._queue.qsize()

    # -- startup ----------------------------------------------------------------------------------------------
    def resume_counters(self) -> None:
        """Take the last stored counters of this line (its site and line: a store may hold several lines) as the
        baseline, so that a restarted ingest counts on from where it stopped."""
        for channel in (Channel.COUNTS, Channel.INPUT):
            for p in self.store.last(channel.value, site=self.topics.site, line=self.topics.line):
                if channel is Channel.COUNTS:
                    self.counters.seed((p.station, p.machine), p.ts_ms, (int(p.fields["processed"]), int(p.fields["defective"])))
                else:
                    self.counters.seed((p.station, "input"), p.ts_ms, (int(p.fields["consumed"]),))

    # -- the pipeline -----------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Process batches until ``stop`` is set, then stop accepting and drain what is queued."""
        while not stop.is_set():
            batch = self._take(self.batch_wait_s)
            if batch:
                self._process_until_done(batch, stop)
        self._accepting.clear()
        while True:
            batch = self._take(0.0)
            if not batch:
                break
            self._process_until_done(batch, None)

    def _take(self, wait_s: float) -> list[Delivery]:
        q = self._queue
        try:
            first = q.get(timeout=wait_s) if wait_s > 0 else q.get_nowait()
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + wait_s
        while len(batch) < self.batch_size:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(q.get(timeout=min(left, 0.005)))
                except queue.Empty:
                    continue
        self.stats.queue_depth = q.qsize()
        return batch

    def _process_until_done(self, batch: list[Delivery], stop: threading.Event | None) -> None:
        delay = 0.1
        while True:
            try:
                self.process(batch)
                return
            except ConnectorError as exc:
                # Neither written nor spooled: keep the batch unacknowledged and try again; the broker holds the rest.
                self.stats.store_failures += 1
                self.stats.last_error = str(exc)
                log.warning("store failed, retrying in %.1f s: %s", delay, exc)
                if stop is not None and stop.wait(delay):
                    stop = None  # stopping: keep trying to store what was taken, but no longer wait on stop
                elif stop is None:
                    time.sleep(delay)
                delay = min(delay * 2, 10.0) * random.uniform(0.8, 1.2)

    def process(self, batch: Sequence[Delivery]) -> None:
        """Decode, store durably, acknowledge and hand on one batch of deliveries (raises ConnectorError if the store
        can neither write nor spool; nothing is then acknowledged)."""
        stats = self.stats
        recent = self._recent
        readings: list[Reading] = []
        sources: list[Delivery] = []
        letters: list[DeadLetter] = []
        in_batch: set[Reading] = set()
        duplicates = 0
        for d in batch:
            try:
                reading = self._decode(d)
            except TelemetryError as exc:
                letters.append(DeadLetter(d.received_ms, d.topic, d.payload, exc.reason))
                continue
            if reading in recent or reading in in_batch:
                duplicates += 1
            else:
                in_batch.add(reading)
                readings.append(reading)
                sources.append(d)
        # Store first; count and remember only once that succeeded, so a retried batch is processed the same way.
        if readings:
            try:
                outcome = self.store.write(readings)
            except WriteRefused:
                outcome, readings = self._write_one_by_one(readings, sources, letters)
            if outcome is WriteOutcome.SPOOLED:
                stats.spooled_batches += 1
        if letters:
            self.store.write_dead_letters(letters)
        recent.remember(readings)
        stats.received += len(batch)
        stats.stored += len(readings)
        stats.rejected += len(letters)
        stats.duplicates += duplicates
        stats.batches += 1
        if self.ack is not None:
            self.ack([d.token for d in batch])
            stats.acked += len(batch)
        if self.observers and readings:
            self._hand_on(readings)

    def _write_one_by_one(
        self, readings: list[Reading], sources: list[Delivery], letters: list[DeadLetter]
    ) -> tuple[WriteOutcome, list[Reading]]:
        """The store refused part of a batch for good (a field type conflict, say): write the readings one by one
        and keep the refused ones as dead letters with the store's reason, rather than retry the batch forever."""
        outcome = WriteOutcome.WRITTEN
        taken: list[Reading] = []
        for reading, d in zip(readings, sources, strict=True):
            try:
                if self.store.write([reading]) is WriteOutcome.SPOOLED:
                    outcome = WriteOutcome.SPOOLED
                taken.append(reading)
            except WriteRefused as exc:
                letters.append(DeadLetter(d.received_ms, d.topic, d.payload, f"the store refused it: {exc}"))
        return outcome, taken

    def _decode(self, d: Delivery) -> Reading:
        source, channel = self.topics.parse(d.topic)
        reading = decode(source, channel, d.payload)
        skew = d.received_ms - reading.ts_ms
        if -skew > self.max_future_ms:
            raise TelemetryError(
                f"payload.ts: {reading.ts_ms} is {-skew / 1000:.0f} s ahead of the receive clock (a gateway clock?)"
            )
        if abs(skew) > self.stats.max_clock_skew_ms:
            self.stats.max_clock_skew_ms = abs(skew)
        if self._machines:
            known = self._machines.get(source.station)
            if known is None:
                raise TelemetryError(f"topic {d.topic!r}: no station {source.station!r} in line {self.topics.line!r}")
            machines, kind = known
            if reading.machine >= machines:
                raise TelemetryError(f"payload.machine: {reading.machine} but station {source.station} has {machines} machine(s)")
            if isinstance(reading, StoreReading) and kind != "delay":
                raise TelemetryError(f"topic {d.topic!r}: the store channel is for storage steps; {source.station} is not one")
            if isinstance(reading, InputReading) and source.station != self._first:
                raise TelemetryError(f"topic {d.topic!r}: the input channel belongs to the first station {self._first}")
        return reading

    def _hand_on(self, readings: list[Reading]) -> None:
        # Within a batch, put readings in source-time order: gateways and QoS 1 redelivery reorder messages.
        readings.sort(key=_ts)
        counters = self.counters
        before = counters.resets
        n = 0
        for reading in readings:
            for ev in reading_events(reading, counters):
                n += 1
                for observer in self.observers:
                    try:
                        observer(ev)
                    except Exception as exc:  # an observer's bug must not stop the consumer
                        self.stats.observer_errors += 1
                        self.stats.last_error = f"observer {observer!r} failed on {ev!r}: {exc}"
                        log.exception("observer failed")
        self.stats.events += n
        self.stats.counter_resets += counters.resets - before


def _ts(reading: Reading) -> int:
    return reading.ts_ms


class LoopbackPublisher:
    """A publisher (``connectors.publishing.Publisher``) that hands each message straight to an :class:`Ingest`, as if
    a broker had delivered it: an in-process virtual plant feeds the same pipeline as a plant does, with no broker.

    Blocks while the ingest queue is full, so a fast producer is held back rather than losing messages.
    """

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest
        self.published = 0

    def publish(self, topic: str, payload: bytes) -> None:
        """Deliver the message to the pipeline now."""
        self.ingest.submit(Delivery(topic, payload, time.time_ns() // 1_000_000, (0, 0)))
        self.published += 1
