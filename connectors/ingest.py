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

No message stops the pipeline. Anything that goes wrong while decoding or checking one message makes that
message a dead letter with its reason. If the store refuses a batch for a reason that is not an outage
(:class:`WriteRefused`, or any exception that is not a :class:`ConnectorError`, such as a driver's
``OverflowError``), the batch is written reading by reading and only the refused readings become dead
letters; a :class:`ConnectorError` (an outage the store could not even spool) keeps the batch unacknowledged
and retries it. Reasons are storable text whatever the payload held (lone surrogates and control characters
escaped). Should the pipeline die all the same (a bug), ``stats.last_error`` names the exception.

A dead letter carries two clocks (:class:`~connectors.stores.base.DeadLetter`): its receive time and the line
clock, the newest source timestamp of the readings stored so far, which the live state's clock follows (a
message refused, one from a clock far ahead included, never moves it; a late one does not move it back). Each
letter gets the line clock as of the messages before it in receive order: the readings stored from earlier
batches and those of its own batch received before it (a reading the store refuses for good does not count).
A new ``Ingest`` has none (``None``) until it stores its first reading.

Checks against the clock and the line:

- A source timestamp more than ``max_lead_s`` (default 300 s, setting ``GIGATWIN_MAX_LEAD_S``; ``math.inf``: no
  limit) ahead of the receive clock is refused: one gateway clock far ahead must not move the live state's clock.
  Late timestamps are accepted (the store and the live state place them by time).
- With a line: the station must be one of the line's, the machine one of the station's, ``store`` messages only
  from storage steps and ``input`` only from the first station. A process value must name a signal the station
  declares in the line file (``signals``), so that a gateway cannot grow the store's series and the live state
  without bound. A station that declares no signals accepts up to ``max_undeclared_signals`` (default 32)
  distinct names, the first ones seen since the process started, and refuses the others: enough for a line file
  written before its signals were, bounded against a flood of new names.

Duplicates are recognised by a 64-bit hash of the reading over a window of the last ``dedup_size`` readings
taken (a hash collision, about one in 10^14 per reading at the default window, would drop a reading as a
duplicate).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

from connectors.errors import ConnectorError
from connectors.handoff import Handoff
from connectors.mqtt import Delivery
from connectors.stores.base import DeadLetter, Store, WriteOutcome, WriteRefused
from connectors.telemetry import (
    Channel,
    InputReading,
    ProcessReading,
    Reading,
    StoreReading,
    TelemetryError,
    Topics,
    decode,
    reading_events,
    storable_text,
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
    data_seen_at: dict[str, float] = field(default_factory=dict)
    """Per station, when (wall clock, seconds since the epoch) the pipeline last took a reading of it: how old each
    station's newest data is, whatever its own timestamps say."""

    def as_dict(self) -> dict[str, int | str]:
        """The counters as plain data."""
        out = asdict(self)
        del out["data_seen_at"]
        return out


class _Recent:
    """The last ``size`` readings taken, to recognise exact duplicates (redeliveries, a gateway sending twice).

    Kept as 64-bit hashes: a dict from hash to its latest place in a ring of hashes (an array of machine
    integers), so the garbage collector walks one container of untracked ints, not ``size`` reading tuples.
    """

    __slots__ = ("_at", "_next", "_ring", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"dedup_size must be at least 1, got {size}")
        self._at: dict[int, int] = {}
        self._ring = array("q", bytes(8 * size))
        self._next = 0  # the ring slot the next reading takes; it counts up forever, the slot is its remainder
        self.size = size

    def __contains__(self, key: int) -> bool:
        return key in self._at

    def remember(self, keys: Iterable[int]) -> None:
        """Remember the hashes of readings that were stored, forgetting the oldest beyond ``size``."""
        at, ring, size = self._at, self._ring, self.size
        n = self._next
        for key in keys:
            slot = n % size
            if n >= size:
                old = ring[slot]
                if at.get(old) == n - size:  # still the latest place of that hash: it leaves the window now
                    del at[old]
            ring[slot] = key
            at[key] = n
            n += 1
        self._next = n

    def __len__(self) -> int:
        return len(self._at)


class Ingest:
    """Decodes, validates, deduplicates, stores, acknowledges and hands on telemetry of one line.

    ``ack`` acknowledges a batch of deliveries to the broker, in order (``MqttSubscriber.ack``); ``observers``
    take the twin events (e.g. a ``twin.state.LiveLine``). After each batch's events were handed to the
    observers, every observer that has an ``end_batch()`` method is called once (a reader can publish what the
    batch changed in one step); an exception there is counted as an observer error and never stops the
    pipeline. ``line`` lets messages be checked against the line's stations, machines and signals; without it
    any station and signal is accepted. ``max_lead_s`` is how far a source timestamp may run ahead of the
    receive clock (``math.inf``: no limit); ``max_undeclared_signals`` how many distinct signal names a station
    that declares none may send.
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
        max_lead_s: float = 300.0,
        max_undeclared_signals: int = 32,
    ) -> None:
        if batch_size < 1 or queue_size < batch_size:
            raise ValueError(f"need 1 <= batch_size <= queue_size, got batch_size={batch_size}, queue_size={queue_size}")
        if not max_lead_s >= 0:  # NaN too
            raise ValueError(f"max_lead_s must be >= 0 seconds (math.inf: no limit), got {max_lead_s}")
        if max_undeclared_signals < 0:
            raise ValueError(f"max_undeclared_signals must be >= 0, got {max_undeclared_signals}")
        self.topics = topics
        self.store = store
        self.line = line
        self.observers = list(observers)
        self.ack = ack
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.queue_size = queue_size
        self.max_lead_s = max_lead_s
        self._max_lead_ms = max_lead_s * 1000.0  # a float, so that math.inf compares as "no limit"
        self.max_undeclared_signals = max_undeclared_signals
        self.stats = IngestStats()
        self.counters = CumulativeCounters()
        self._recent = _Recent(dedup_size)
        self._line_ms: int | None = None  # the line clock: the newest source timestamp of the readings stored so far
        self._queue: Handoff[Delivery] = Handoff(queue_size)
        # Per station of the line: its machine count and kind, to check messages against (empty: no line given). A
        # store's "machines" are its failure modes: its faults come as state messages numbered by mode (at least 1).
        self._machines: dict[str, tuple[int, str]] = {}
        self._first = line.stations[0].id if line is not None else ""
        # Per station: the signal names it declares; for stations that declare none, the names taken so far.
        self._signals: dict[str, frozenset[str]] = {}
        self._undeclared: dict[str, set[str]] = {}
        for st in line.stations if line is not None else ():
            self._machines[st.id] = (max(1, len(st.failures)) if st.kind == "delay" else st.machines, st.kind)
            if st.signals:
                self._signals[st.id] = frozenset(st.signals)
            else:
                self._undeclared[st.id] = set()

    # -- the paho side ----------------------------------------------------------------------------------------
    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery (paho's thread). Blocks while the queue is full; ignored once stopping (left unacknowledged,
        so the broker delivers it again next time)."""
        self._queue.put(delivery)

    def queue_depth(self) -> int:
        """Messages waiting in the queue now."""
        return len(self._queue)

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
        """Process batches until ``stop`` is set, then stop accepting and drain what is queued.

        Should it raise all the same (a bug), ``stats.last_error`` names the exception first and no more
        messages are queued (those not acknowledged are delivered again to the next consumer).
        """
        q = self._queue
        q.reopen()  # a restarted pipeline (what was queued before it died is still there, unacknowledged)
        try:
            while not stop.is_set():
                batch = self._take(self.batch_wait_s)
                if batch:
                    self._process_until_done(batch, stop)
            q.close()
            while True:
                batch = q.take(self.batch_size, 0.0, 0.0)
                if not batch:
                    break
                self._process_until_done(batch, None)
        except BaseException as exc:
            q.close()  # paho's thread must not block on a queue no one takes from any more
            self.stats.last_error = f"the pipeline stopped: {type(exc).__name__}: {storable_text(str(exc))}"
            raise

    def _take(self, wait_s: float) -> list[Delivery]:
        # Up to wait_s for a first message, then up to wait_s more to fill the batch: one wake-up per batch.
        batch = self._queue.take(self.batch_size, wait_s, wait_s)
        self.stats.queue_depth = len(self._queue)
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
                self.stats.last_error = storable_text(f"{type(exc).__name__}: {exc}")
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
        keys: list[int] = []
        sources: list[Delivery] = []
        letters: list[DeadLetter] = []
        marks: list[int] = []  # per letter made here: how many readings were taken before it (letters[i]: marks[i])
        in_batch: set[int] = set()
        duplicates = 0
        # The line clock as of each message: that of the batches stored before, then of this batch's readings so far
        # (so far as the store takes them all: if it refuses some, _write_one_by_one stamps the letters again).
        clock = self._line_ms
        for d in batch:
            try:
                reading = self._decode(d)
            except TelemetryError as exc:
                marks.append(len(readings))
                letters.append(_letter(d, exc.reason, clock))
                continue
            except Exception as exc:  # a check's bug must cost one message, not the pipeline
                log.exception("decoding a message on %r failed", d.topic)
                marks.append(len(readings))
                letters.append(_letter(d, f"cannot be taken: {type(exc).__name__}: {exc}", clock))
                continue
            key = hash(reading)
            if key in recent or key in in_batch:
                duplicates += 1  # stored before (in an earlier batch or this one): the clock has its time already
            else:
                in_batch.add(key)
                keys.append(key)
                readings.append(reading)
                sources.append(d)
                ts = reading.ts_ms
                if clock is None or ts > clock:
                    clock = ts
        # Store first; count and remember only once that succeeded, so a retried batch is processed the same way.
        if readings:
            try:
                outcome = self.store.write(readings)
            except WriteRefused:
                outcome, readings, keys, clock = self._write_one_by_one(readings, keys, sources, letters, marks)
            except ConnectorError:
                raise  # an outage: retry the batch
            except Exception as exc:  # a driver refusing a value (OverflowError, UnicodeEncodeError ...): not an outage
                log.warning("the store refused a batch (%s: %s): writing it reading by reading", type(exc).__name__, exc)
                outcome, readings, keys, clock = self._write_one_by_one(readings, keys, sources, letters, marks)
            if outcome is WriteOutcome.SPOOLED:
                stats.spooled_batches += 1
        if letters:
            self.store.write_dead_letters(letters)
        recent.remember(keys)
        self._line_ms = clock
        stats.received += len(batch)
        stats.stored += len(readings)
        stats.rejected += len(letters)
        stats.duplicates += duplicates
        stats.batches += 1
        if self.ack is not None:
            self.ack([d.token for d in batch])
            stats.acked += len(batch)
        if readings:
            now = time.time()
            seen = stats.data_seen_at
            for reading in readings:
                seen[reading.source.station] = now
        if self.observers:
            if readings:
                self._hand_on(readings)
            self._end_batch()

    def _write_one_by_one(
        self,
        readings: list[Reading],
        keys: list[int],
        sources: list[Delivery],
        letters: list[DeadLetter],
        marks: list[int],
    ) -> tuple[WriteOutcome, list[Reading], list[int], int | None]:
        """The store refused part of a batch for good (a field type conflict, a value its driver cannot bind): write
        the readings one by one and keep the refused ones as dead letters with the store's reason, rather than
        retry the batch forever. An outage (another ConnectorError) still raises: the whole batch is retried.

        Returns the outcome, the readings taken and their keys, and the line clock after them. The batch's first
        ``len(marks)`` letters, stamped with the clock of the readings decoded before them, are stamped again with
        that of the readings stored before them (``marks[i]``: how many readings came before ``letters[i]``).
        """
        outcome = WriteOutcome.WRITTEN
        taken: list[Reading] = []
        taken_keys: list[int] = []
        clock = self._line_ms
        clocks: list[int | None] = []  # clocks[i]: the line clock before readings[i], of the readings stored before it
        for reading, key, d in zip(readings, keys, sources, strict=True):
            clocks.append(clock)
            try:
                if self.store.write([reading]) is WriteOutcome.SPOOLED:
                    outcome = WriteOutcome.SPOOLED
            except WriteRefused as exc:
                letters.append(_letter(d, f"the store refused it: {exc}", clock))
                continue
            except ConnectorError:
                raise
            except Exception as exc:
                letters.append(_letter(d, f"the store refused it: {type(exc).__name__}: {exc}", clock))
                continue
            taken.append(reading)
            taken_keys.append(key)
            if clock is None or reading.ts_ms > clock:
                clock = reading.ts_ms
        clocks.append(clock)
        for i, before in enumerate(marks):
            letters[i] = letters[i]._replace(line_ms=clocks[before])
        return outcome, taken, taken_keys, clock

    def _decode(self, d: Delivery) -> Reading:
        source, channel = self.topics.parse(d.topic)
        reading = decode(source, channel, d.payload)
        skew = d.received_ms - reading.ts_ms
        if -skew > self._max_lead_ms:
            raise TelemetryError(
                f"payload.ts: {reading.ts_ms} is {-skew / 1000:.1f} s ahead of the receive clock, more than the accepted"
                f" lead of {self.max_lead_s:g} s (setting max_lead_s, GIGATWIN_MAX_LEAD_S; a gateway clock?)"
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
            if isinstance(reading, ProcessReading):
                self._check_signals(source.station, reading)
        return reading

    def _check_signals(self, station: str, reading: ProcessReading) -> None:
        declared = self._signals.get(station)
        if declared is not None:
            for i, (name, _value, _unit) in enumerate(reading.values):
                if name not in declared:
                    raise TelemetryError(
                        f"payload.values[{i}].name: station {station} declares no signal {name!r}"
                        f" (it declares {', '.join(sorted(declared))})"
                    )
            return
        taken = self._undeclared[station]
        new = {name for name, _value, _unit in reading.values if name not in taken}
        if len(taken) + len(new) > self.max_undeclared_signals:
            names = ", ".join(repr(n) for n in sorted(new))
            raise TelemetryError(
                f"payload.values: station {station} declares no signals and already sends {len(taken)} distinct ones;"
                f" new {names} would pass the limit of {self.max_undeclared_signals} (declare them in the line file)"
            )
        taken |= new

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
                        self._observer_failed(observer, f"on {ev!r}", exc)
        self.stats.events += n
        self.stats.counter_resets += counters.resets - before

    def _end_batch(self) -> None:
        for observer in self.observers:
            end_batch = getattr(observer, "end_batch", None)
            if end_batch is None or not callable(end_batch):
                continue
            try:
                end_batch()
            except Exception as exc:  # as for events: counted, never stops the consumer
                self._observer_failed(observer, "at the end of a batch", exc)

    def _observer_failed(self, observer: object, where: str, exc: Exception) -> None:
        self.stats.observer_errors += 1
        self.stats.last_error = storable_text(f"observer {observer!r} failed {where}: {type(exc).__name__}: {exc}")
        log.exception("observer failed")


def _letter(d: Delivery, reason: str, line_ms: int | None) -> DeadLetter:
    """A dead letter whose text any store can hold, whatever the message carried, stamped with the line clock."""
    return DeadLetter(d.received_ms, storable_text(d.topic, 1000), bytes(d.payload), storable_text(reason, 1000), line_ms)


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
