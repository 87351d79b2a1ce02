"""The ingest pipeline without a broker: decoding, dead letters, duplicates, acknowledgement after storing, retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pytest

from connectors.ingest import Ingest
from connectors.linefile import read_line
from connectors.mqtt import Delivery
from connectors.stores.base import StoreError, WriteOutcome, WriteRefused
from connectors.stores.memory import MemoryStore
from connectors.telemetry import Channel, Reading, Topics
from tests.conftest import LINES
from twin.events import Event, MachineState, StateChanged, UnitsCompleted

LINE = read_line(LINES / "reference_cell_line.yaml")
TOPICS = Topics("gigatwin", "plant1", LINE.name)
T0 = 1_763_900_000_000


def _msg(station: str, channel: Channel, mid: int, **payload: object) -> Delivery:
    body = json.dumps({"v": 1, **payload}).encode()
    return Delivery(TOPICS.topic(station, channel), body, T0, (mid, 1))


def _ingest(store: MemoryStore, events: list[Event], acks: list[tuple[int, int]]) -> Ingest:
    return Ingest(TOPICS, store, line=LINE, observers=[events.append], ack=acks.extend, batch_size=10, queue_size=100)


def test_messages_are_stored_acknowledged_and_handed_on_in_source_time_order() -> None:
    store, events, acks = MemoryStore(), [], []
    ingest = _ingest(store, events, acks)
    batch = [
        _msg("COAT", Channel.STATE, 1, ts=T0 + 2000, state="HELD", reason="web_break"),
        _msg("COAT", Channel.COUNTS, 2, ts=T0, ProdProcessedCount=1000, ProdDefectiveCount=10),
        _msg("COAT", Channel.COUNTS, 3, ts=T0 + 1000, ProdProcessedCount=1500, ProdDefectiveCount=12),
    ]
    ingest.process(batch)
    assert acks == [(1, 1), (2, 1), (3, 1)]
    assert len(store.range("counts", start_ms=T0, end_ms=T0 + 10_000)) == 2
    assert events == [
        UnitsCompleted((T0 + 1000) / 3_600_000, "COAT", 0, 498, 2),
        StateChanged((T0 + 2000) / 3_600_000, "COAT", 0, MachineState.DOWN, "web_break"),
    ]


def test_a_bad_message_becomes_a_dead_letter_with_its_reason_and_is_acknowledged() -> None:
    store, events, acks = MemoryStore(), [], []
    ingest = _ingest(store, events, acks)
    bad = [
        Delivery(TOPICS.topic("COAT", Channel.STATE), b"{oops", T0, (1, 1)),
        _msg("NOPE", Channel.STATE, 2, ts=T0, state="EXECUTE"),
        _msg("COAT", Channel.STATE, 3, ts=T0, state="EXECUTE", machine=1),
        _msg("COAT", Channel.STORE, 4, ts=T0, dwelling=1, held=0),
        _msg("COAT", Channel.STATE, 5, ts=T0 + 3 * 86_400_000, state="EXECUTE"),
    ]
    ingest.process(bad)
    letters = store.dead_letters()
    assert len(letters) == 5
    assert store.dead_letter_count() == 5
    reasons = " | ".join(dl.reason for dl in letters)
    for says in ("not JSON", "no station 'NOPE'", "payload.machine: 1", "store channel", "ahead of the receive clock"):
        assert says in reasons
    assert {dl.payload for dl in letters} == {d.payload for d in bad}
    assert len(acks) == 5
    assert events == []
    assert ingest.stats.rejected == 5


def test_exact_duplicates_are_stored_once_and_still_acknowledged() -> None:
    store, events, acks = MemoryStore(), [], []
    ingest = _ingest(store, events, acks)
    m = _msg("COAT", Channel.BUFFER, 1, ts=T0, level=7)
    ingest.process([m, m._replace(token=(2, 1))])
    ingest.process([m._replace(token=(3, 1))])  # a redelivery in a later batch
    other = _msg("COAT", Channel.BUFFER, 4, ts=T0, level=8)  # same key, other content: a correction, kept
    ingest.process([other])
    assert ingest.stats.duplicates == 2
    assert ingest.stats.stored == 2
    assert len(acks) == 4
    assert [p.fields["level"] for p in store.range("buffer", start_ms=T0, end_ms=T0 + 1)] == [8]


class _FailingStore(MemoryStore):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def write(self, readings: Sequence[Reading]) -> WriteOutcome:
        if self.failures:
            self.failures -= 1
            raise StoreError("disk full")
        return super().write(readings)


def test_nothing_is_acknowledged_until_the_store_took_it_and_the_batch_is_retried() -> None:
    store, events, acks = _FailingStore(failures=2), [], []
    ingest = _ingest(store, events, acks)
    with pytest.raises(StoreError):
        ingest.process([_msg("COAT", Channel.BUFFER, 1, ts=T0, level=3)])
    assert acks == []
    assert ingest.stats.stored == 0
    stop = threading.Event()
    ingest.submit(_msg("COAT", Channel.BUFFER, 1, ts=T0, level=3))
    worker = threading.Thread(target=ingest.run, args=(stop,))
    worker.start()
    for _ in range(200):
        if acks:
            break
        threading.Event().wait(0.02)
    stop.set()
    worker.join(10)
    assert acks == [(1, 1)]
    assert ingest.stats.store_failures == 1
    assert ingest.stats.stored == 1
    assert len(store.range("buffer", start_ms=T0, end_ms=T0 + 1)) == 1


def test_a_restarted_ingest_counts_on_from_the_stored_counters() -> None:
    store = MemoryStore()
    first, events, acks = _ingest(store, [], []), [], []
    first.process([_msg("COAT", Channel.COUNTS, 1, ts=T0, ProdProcessedCount=100, ProdDefectiveCount=1)])
    second = _ingest(store, events, acks)
    second.resume_counters()
    second.process([_msg("COAT", Channel.COUNTS, 2, ts=T0 + 1000, ProdProcessedCount=130, ProdDefectiveCount=1)])
    assert events == [UnitsCompleted((T0 + 1000) / 3_600_000, "COAT", 0, 30, 0)]


def test_stopping_drains_the_queue_and_then_refuses_new_messages() -> None:
    store, events, acks = MemoryStore(), [], []
    ingest = _ingest(store, events, acks)
    for i in range(25):
        ingest.submit(_msg("COAT", Channel.BUFFER, i + 1, ts=T0 + i, level=i))
    stop = threading.Event()
    stop.set()
    ingest.run(stop)
    assert len(acks) == 25
    assert ingest.stats.stored == 25
    ingest.submit(_msg("COAT", Channel.BUFFER, 99, ts=T0 + 99, level=99))
    ingest.run(stop)
    assert len(acks) == 25  # left unacknowledged: the broker delivers it again next time


def test_an_observer_that_fails_does_not_stop_the_consumer() -> None:
    store, acks = MemoryStore(), []

    def broken(_ev: Event) -> None:
        raise RuntimeError("bug")

    ingest = Ingest(TOPICS, store, line=LINE, observers=[broken], ack=acks.extend)
    ingest.process([_msg("COAT", Channel.STATE, 1, ts=T0, state="EXECUTE")])
    assert acks == [(1, 1)]
    assert ingest.stats.observer_errors == 1
    assert "bug" in ingest.stats.last_error


class _RefusingStore(MemoryStore):
    """Refuses for good any write that holds a reading of station NOTCH (as InfluxDB refuses a field type conflict)."""

    def write(self, readings: Sequence[Reading]) -> WriteOutcome:
        if any(r.source.station == "NOTCH" for r in readings):
            raise WriteRefused('field type conflict: input field "level" on measurement "buffer" is type float')
        return super().write(readings)


def test_readings_the_store_refuses_for_good_become_dead_letters_and_the_rest_is_stored() -> None:
    store, events, acks = _RefusingStore(), [], []
    ingest = _ingest(store, events, acks)
    batch = [
        _msg("COAT", Channel.BUFFER, 1, ts=T0, level=1),
        _msg("NOTCH", Channel.BUFFER, 2, ts=T0, level=2),
        _msg("CALSLIT", Channel.BUFFER, 3, ts=T0, level=3),
    ]
    ingest.process(batch)
    assert acks == [(1, 1), (2, 1), (3, 1)]  # the stream goes on: nothing is retried forever
    assert [p.station for p in store.range("buffer", start_ms=T0, end_ms=T0 + 1)] == ["CALSLIT", "COAT"]
    (letter,) = store.dead_letters()
    assert letter.topic == batch[1].topic
    assert "field type conflict" in letter.reason
    assert ingest.stats.stored == 2
    assert ingest.stats.rejected == 1
