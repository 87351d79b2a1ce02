"""The ingest pipeline without a broker: decoding, dead letters, duplicates, acknowledgement after storing, retries,
poison payloads, the accepted clock lead, signal names and the batch hook for readers."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from connectors.ingest import Ingest
from connectors.linefile import read_line
from connectors.mqtt import Delivery
from connectors.stores.base import StoreError, WriteOutcome, WriteRefused
from connectors.stores.memory import MemoryStore
from connectors.stores.sqlite import SqliteStore
from connectors.telemetry import Channel, Reading, Topics
from tests.conftest import LINES, make_line
from twin.events import Event, MachineState, ProcessValue, StateChanged, UnitsCompleted
from twin.state import LiveLine

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
        _msg("COAT_C", Channel.STATE, 1, ts=T0 + 2000, state="HELD", reason="web_break"),
        _msg("COAT_C", Channel.COUNTS, 2, ts=T0, ProdProcessedCount=1000, ProdDefectiveCount=10),
        _msg("COAT_C", Channel.COUNTS, 3, ts=T0 + 1000, ProdProcessedCount=1500, ProdDefectiveCount=12),
    ]
    ingest.process(batch)
    assert acks == [(1, 1), (2, 1), (3, 1)]
    assert len(store.range("counts", start_ms=T0, end_ms=T0 + 10_000)) == 2
    assert events == [
        UnitsCompleted((T0 + 1000) / 3_600_000, "COAT_C", 0, 498, 2),
        StateChanged((T0 + 2000) / 3_600_000, "COAT_C", 0, MachineState.DOWN, "web_break"),
    ]


def test_a_bad_message_becomes_a_dead_letter_with_its_reason_and_is_acknowledged() -> None:
    store, events, acks = MemoryStore(), [], []
    ingest = _ingest(store, events, acks)
    bad = [
        Delivery(TOPICS.topic("COAT_C", Channel.STATE), b"{oops", T0, (1, 1)),
        _msg("NOPE", Channel.STATE, 2, ts=T0, state="EXECUTE"),
        _msg("COAT_C", Channel.STATE, 3, ts=T0, state="EXECUTE", machine=1),
        _msg("COAT_C", Channel.STORE, 4, ts=T0, dwelling=1, held=0),
        _msg("COAT_C", Channel.STATE, 5, ts=T0 + 3 * 86_400_000, state="EXECUTE"),
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
    m = _msg("COAT_C", Channel.BUFFER, 1, ts=T0, level=7)
    ingest.process([m, m._replace(token=(2, 1))])
    ingest.process([m._replace(token=(3, 1))])  # a redelivery in a later batch
    other = _msg("COAT_C", Channel.BUFFER, 4, ts=T0, level=8)  # same key, other content: a correction, kept
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
        ingest.process([_msg("COAT_C", Channel.BUFFER, 1, ts=T0, level=3)])
    assert acks == []
    assert ingest.stats.stored == 0
    stop = threading.Event()
    ingest.submit(_msg("COAT_C", Channel.BUFFER, 1, ts=T0, level=3))
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
    first.process([_msg("COAT_C", Channel.COUNTS, 1, ts=T0, ProdProcessedCount=100, ProdDefectiveCount=1)])
    second = _ingest(store, events, acks)
    second.resume_counters()
    second.process([_msg("COAT_C", Channel.COUNTS, 2, ts=T0 + 1000, ProdProcessedCount=130, ProdDefectiveCount=1)])
    assert events == [UnitsCompleted((T0 + 1000) / 3_600_000, "COAT_C", 0, 30, 0)]


def test_stopping_drains_the_queue_and_then_refuses_new_messages() -> None:
    store, events, acks = MemoryStore(), [], []
    ingest = _ingest(store, events, acks)
    for i in range(25):
        ingest.submit(_msg("COAT_C", Channel.BUFFER, i + 1, ts=T0 + i, level=i))
    stop = threading.Event()
    stop.set()
    ingest.run(stop)
    assert len(acks) == 25
    assert ingest.stats.stored == 25
    ingest.submit(_msg("COAT_C", Channel.BUFFER, 99, ts=T0 + 99, level=99))
    ingest.run(stop)
    assert len(acks) == 25  # left unacknowledged: the broker delivers it again next time


def test_an_observer_that_fails_does_not_stop_the_consumer() -> None:
    store, acks = MemoryStore(), []

    def broken(_ev: Event) -> None:
        raise RuntimeError("bug")

    ingest = Ingest(TOPICS, store, line=LINE, observers=[broken], ack=acks.extend)
    ingest.process([_msg("COAT_C", Channel.STATE, 1, ts=T0, state="EXECUTE")])
    assert acks == [(1, 1)]
    assert ingest.stats.observer_errors == 1
    assert "bug" in ingest.stats.last_error


class _RefusingStore(MemoryStore):
    """Refuses for good any write that holds a reading of station NOTCH_C (as InfluxDB refuses a field type conflict)."""

    def write(self, readings: Sequence[Reading]) -> WriteOutcome:
        if any(r.source.station == "NOTCH_C" for r in readings):
            raise WriteRefused('field type conflict: input field "level" on measurement "buffer" is type float')
        return super().write(readings)


def test_readings_the_store_refuses_for_good_become_dead_letters_and_the_rest_is_stored() -> None:
    store, events, acks = _RefusingStore(), [], []
    ingest = _ingest(store, events, acks)
    batch = [
        _msg("COAT_C", Channel.BUFFER, 1, ts=T0, level=1),
        _msg("NOTCH_C", Channel.BUFFER, 2, ts=T0, level=2),
        _msg("CALSLIT_C", Channel.BUFFER, 3, ts=T0, level=3),
    ]
    ingest.process(batch)
    assert acks == [(1, 1), (2, 1), (3, 1)]  # the stream goes on: nothing is retried forever
    assert [p.station for p in store.range("buffer", start_ms=T0, end_ms=T0 + 1)] == ["CALSLIT_C", "COAT_C"]
    (letter,) = store.dead_letters()
    assert letter.topic == batch[1].topic
    assert "field type conflict" in letter.reason
    assert ingest.stats.stored == 2
    assert ingest.stats.rejected == 1


# -- poison: no message stops the pipeline ----------------------------------------------------------------------
HOUR_MS = 3_600_000
POISON = {
    "deep": Delivery(TOPICS.topic("COAT_C", Channel.STATE), b"[" * 100_000, T0, (0, 0)),
    "int": Delivery(
        TOPICS.topic("COAT_C", Channel.BUFFER), b'{"v": 1, "ts": %d, "level": 18446744073709551616}' % T0, T0, (0, 0)
    ),
    "surrogate": Delivery(
        TOPICS.topic("COAT_C", Channel.STATE), b'{"v": 1, "ts": %d, "state": "HELD", "reason": "\\ud800"}' % T0, T0, (0, 0)
    ),
}


def _buffer(station: str, i: int, received_ms: int = T0) -> Delivery:
    return Delivery(
        TOPICS.topic(station, Channel.BUFFER), json.dumps({"v": 1, "ts": T0 + i, "level": i}).encode(), received_ms, (i, 1)
    )


def _levels(store: SqliteStore, station: str = "COAT_C") -> list[int]:
    return [int(p.fields["level"]) for p in store.range("buffer", start_ms=T0, end_ms=T0 + HOUR_MS, station=station)]


def _running(ingest: Ingest) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    worker = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    worker.start()
    return worker, stop


def _wait(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        threading.Event().wait(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_poison_payloads_become_dead_letters_and_the_valid_messages_around_them_are_stored(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    live = LiveLine(LINE)
    acks: list[tuple[int, int]] = []
    ingest = Ingest(TOPICS, store, line=LINE, observers=[live], ack=acks.extend, batch_size=50, queue_size=100)
    worker, stop = _running(ingest)
    first = [_buffer("COAT_C", 1), POISON["deep"], _buffer("COAT_C", 2), POISON["int"], _buffer("COAT_C", 3), POISON["surrogate"]]
    first = [d._replace(token=(i + 1, 1)) for i, d in enumerate(first)]
    for d in first:
        ingest.submit(d)
    _wait(lambda: len(acks) == 6, "the first batch to be acknowledged")
    assert worker.is_alive()
    assert _levels(store) == [1, 2, 3]
    reasons = {dl.payload: dl.reason for dl in store.dead_letters()}
    assert reasons.keys() == {p.payload for p in POISON.values()}
    assert "nested deeper than" in reasons[POISON["deep"].payload]
    assert "payload.level" in reasons[POISON["int"].payload]
    assert "payload.reason: not valid Unicode" in reasons[POISON["surrogate"].payload]
    assert live.status().stations["COAT_C"].buffer_level == 3  # the valid ones were handed on too
    # The pipeline goes on: the next messages are stored and handed on.
    for i in (4, 5):
        ingest.submit(_buffer("COAT_C", i)._replace(token=(10 + i, 1)))
    _wait(lambda: len(acks) == 8, "the next batch to be acknowledged")
    stop.set()
    worker.join(10)
    assert _levels(store) == [1, 2, 3, 4, 5]
    assert ingest.stats.rejected == 3
    assert ingest.stats.stored == 5
    assert ingest.stats.last_error == ""
    store.close()


class _DriverBugStore(SqliteStore):
    """A real SQLite store whose driver raises a raw exception (no ConnectorError) for any write holding NOTCH_C."""

    def __init__(self, path: Path, exc: Exception) -> None:
        super().__init__(path)
        self.exc = exc

    def write(self, readings: Sequence[Reading]) -> WriteOutcome:
        if any(r.source.station == "NOTCH_C" for r in readings):
            raise self.exc
        return super().write(readings)


@pytest.mark.parametrize(
    "exc",
    [
        OverflowError("Python int too large to convert to SQLite INTEGER"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        ValueError("a driver's complaint"),
    ],
)
def test_a_store_that_raises_something_else_than_an_outage_costs_only_the_refused_readings(
    tmp_path: Path, exc: Exception
) -> None:
    store = _DriverBugStore(tmp_path / "t.db", exc)
    events: list[Event] = []
    acks: list[tuple[int, int]] = []
    ingest = _ingest(store, events, acks)  # type: ignore[arg-type]  # any Store will do
    ingest.process([_buffer("COAT_C", 1), _buffer("NOTCH_C", 2), _buffer("CALSLIT_C", 3)])
    assert len(acks) == 3
    assert _levels(store) == [1]
    assert _levels(store, "CALSLIT_C") == [3]
    (letter,) = store.dead_letters()
    assert letter.topic == TOPICS.topic("NOTCH_C", Channel.BUFFER)
    assert letter.reason.startswith(f"the store refused it: {type(exc).__name__}")
    assert [type(ev).__name__ for ev in events] == ["BufferLevel", "BufferLevel"]
    ingest.process([_buffer("COAT_C", 4)])
    assert _levels(store) == [1, 4]
    store.close()


def test_a_check_that_fails_unexpectedly_costs_one_message_as_a_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    store, events, acks = MemoryStore(), list[Event](), list[tuple[int, int]]()
    ingest = _ingest(store, events, acks)
    real = ingest._decode

    def buggy(d: Delivery) -> Reading:
        if b'"level": 2' in d.payload:
            raise KeyError("a bug in a check")
        return real(d)

    monkeypatch.setattr(ingest, "_decode", buggy)
    ingest.process([_buffer("COAT_C", 1), _buffer("COAT_C", 2), _buffer("COAT_C", 3)])
    assert len(acks) == 3
    (letter,) = store.dead_letters()
    assert "KeyError" in letter.reason
    assert len(events) == 2


def test_if_the_pipeline_dies_all_the_same_last_error_names_the_exception() -> None:
    def broken_ack(_tokens: Sequence[tuple[int, int]]) -> None:
        raise RuntimeError("the broker client is gone")

    ingest = Ingest(TOPICS, MemoryStore(), line=LINE, ack=broken_ack, batch_size=10, queue_size=10)
    ingest.submit(_buffer("COAT_C", 1))
    stop = threading.Event()
    stop.set()
    with pytest.raises(RuntimeError):
        ingest.run(stop)
    assert "RuntimeError" in ingest.stats.last_error
    assert "the broker client is gone" in ingest.stats.last_error
    for i in range(20):  # more than the queue holds: paho's thread must not block on a dead pipeline
        ingest.submit(_buffer("COAT_C", i))


def test_a_pipeline_restarted_after_it_died_takes_messages_again() -> None:
    acks: list[tuple[int, int]] = []
    broken = [True]

    def ack(tokens: Sequence[tuple[int, int]]) -> None:
        if broken[0]:
            raise RuntimeError("the broker client is gone")
        acks.extend(tokens)

    store = MemoryStore()
    ingest = Ingest(TOPICS, store, line=LINE, ack=ack, batch_size=10, queue_size=10, batch_wait_s=0.01)
    ingest.submit(_buffer("COAT_C", 1))
    stop = threading.Event()
    with pytest.raises(RuntimeError):
        ingest.run(stop)  # dies on its first batch, as a supervisor would see it
    broken[0] = False
    restarted = threading.Thread(target=ingest.run, args=(stop,))  # what the supervisor does next
    restarted.start()
    try:
        deadline = time.monotonic() + 10
        while ingest.stats.stored < 2 and time.monotonic() < deadline:
            ingest.submit(_buffer("COAT_C", 2))  # until the restarted run takes it (submits before it reopened are refused)
            time.sleep(0.02)
    finally:
        stop.set()
        restarted.join(10)
    assert ingest.stats.stored >= 2, "the restarted pipeline took nothing"
    assert acks, "nothing was acknowledged after the restart"


# -- the clock: a gateway far ahead is refused, never a clock jump ------------------------------------------------
def test_a_source_clock_far_ahead_of_the_receive_clock_is_a_dead_letter_and_the_live_clock_does_not_move(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "t.db")
    live = LiveLine(LINE)
    acks: list[tuple[int, int]] = []
    ingest = Ingest(TOPICS, store, line=LINE, observers=[live], ack=acks.extend)
    ahead_20h = _msg("COAT_C", Channel.STATE, 1, ts=T0 + 20 * HOUR_MS, state="EXECUTE")
    ingest.process([ahead_20h])  # the first message after a start
    assert live.clock_h is None
    ingest.process(
        [_msg("COAT_C", Channel.STATE, 2, ts=T0 - 1000, state="EXECUTE"), _msg("MIX_C", Channel.STATE, 3, ts=T0, state="HELD")]
    )
    assert live.clock_h == T0 / HOUR_MS
    ingest.process([_msg("COAT_C", Channel.STATE, 4, ts=T0 + 23 * HOUR_MS, state="HELD")])  # mid-stream
    assert live.clock_h == T0 / HOUR_MS
    ingest.process([_msg("COAT_C", Channel.STATE, 5, ts=T0 + 1000, state="HELD", reason="web_break")])
    assert live.clock_h == (T0 + 1000) / HOUR_MS
    assert live.status().stations["COAT_C"].state is MachineState.DOWN  # later correct events are taken, not "too old"
    letters = store.dead_letters()
    assert len(letters) == 2
    for letter, lead_s in zip(letters, (23 * 3600, 20 * 3600), strict=True):  # newest first
        assert f"{lead_s:.1f} s ahead of the receive clock" in letter.reason
        assert "accepted lead of 300 s" in letter.reason
        assert "max_lead_s" in letter.reason
        assert "GIGATWIN_MAX_LEAD_S" in letter.reason
    assert len(acks) == 5
    store.close()


def test_the_accepted_lead_is_a_setting_and_infinity_means_no_limit() -> None:
    store = MemoryStore()
    within = Ingest(TOPICS, store, line=LINE, max_lead_s=60.0)
    within.process(
        [_msg("COAT_C", Channel.BUFFER, 1, ts=T0 + 59_000, level=1), _msg("COAT_C", Channel.BUFFER, 2, ts=T0 + 61_000, level=2)]
    )
    assert (within.stats.stored, within.stats.rejected) == (1, 1)
    unlimited = Ingest(TOPICS, MemoryStore(), line=LINE, max_lead_s=math.inf)
    unlimited.process([_msg("COAT_C", Channel.BUFFER, 1, ts=T0 + 400 * 86_400_000, level=1)])
    assert unlimited.stats.stored == 1
    with pytest.raises(ValueError, match="max_lead_s"):
        Ingest(TOPICS, store, max_lead_s=-1.0)


# -- the line clock: dead letters are placed on the line's timeline -----------------------------------------------
def _bad(mid: int, received_ms: int = T0) -> Delivery:
    return Delivery(TOPICS.topic("COAT_C", Channel.STATE), b"{oops %d" % mid, received_ms, (mid, 1))


def _line_clocks(store: MemoryStore) -> dict[bytes, int | None]:
    return {d.payload: d.line_ms for d in store.dead_letters(limit=1000)}


def test_a_dead_letter_carries_the_newest_source_timestamp_stored_before_it_in_receive_order() -> None:
    store, events, acks = MemoryStore(), [], []
    ingest = _ingest(store, events, acks)
    ingest.process([_bad(1)])  # before any reading was stored: no line clock yet
    ingest.process(
        [
            _msg("COAT_C", Channel.BUFFER, 2, ts=T0 + 5000, level=1),
            _msg("COAT_C", Channel.BUFFER, 3, ts=T0 + 1000, level=2),  # late: does not move the clock back
            _bad(4),
            _msg("COAT_C", Channel.BUFFER, 5, ts=T0 + 9000, level=3),
            _bad(6),
        ]
    )
    ingest.process([_bad(7, received_ms=T0 - 86_400_000)])  # the receive clock a day off: the line's is not
    assert _line_clocks(store) == {b"{oops 1": None, b"{oops 4": T0 + 5000, b"{oops 6": T0 + 9000, b"{oops 7": T0 + 9000}
    assert ingest.stats.rejected == 4


def test_a_reading_refused_for_its_far_future_timestamp_does_not_move_the_line_clock() -> None:
    store, events, acks = MemoryStore(), [], []
    ingest = _ingest(store, events, acks)
    first_ahead = _msg("COAT_C", Channel.BUFFER, 1, ts=T0 + 20 * HOUR_MS, level=1)
    ingest.process([first_ahead, _bad(2)])  # refused first thing: still no clock
    then_ahead = _msg("COAT_C", Channel.BUFFER, 4, ts=T0 + 23 * HOUR_MS, level=4)
    ingest.process([_msg("COAT_C", Channel.BUFFER, 3, ts=T0, level=3), then_ahead, _bad(5)])
    ingest.process([_bad(6)])
    assert _line_clocks(store) == {
        first_ahead.payload: None,
        b"{oops 2": None,
        then_ahead.payload: T0,
        b"{oops 5": T0,
        b"{oops 6": T0,
    }
    assert (ingest.stats.stored, ingest.stats.rejected) == (1, 5)


def test_readings_the_store_refuses_or_cannot_take_do_not_move_the_line_clock() -> None:
    store, events, acks = _RefusingStore(), [], []
    ingest = _ingest(store, events, acks)
    refused = _msg("NOTCH_C", Channel.BUFFER, 3, ts=T0 + 5000, level=2)
    ingest.process(
        [
            _msg("COAT_C", Channel.BUFFER, 1, ts=T0 + 1000, level=1),
            _bad(2),
            refused,  # refused for good by the store, later than the rest
            _bad(4),
            _msg("CALSLIT_C", Channel.BUFFER, 5, ts=T0 + 2000, level=3),
            _bad(6),
        ]
    )
    clocks = _line_clocks(store)
    assert clocks == {b"{oops 2": T0 + 1000, refused.payload: T0 + 1000, b"{oops 4": T0 + 1000, b"{oops 6": T0 + 2000}
    # a batch the store could neither write nor spool is retried: until it is taken, its readings do not count
    failing = _FailingStore(failures=1)
    ingest = _ingest(failing, events, acks)
    batch = [_msg("COAT_C", Channel.BUFFER, 7, ts=T0 + 3000, level=4), _bad(8)]
    with pytest.raises(StoreError):
        ingest.process(batch)
    ingest.process([_bad(9)])
    ingest.process(batch)
    assert _line_clocks(failing) == {b"{oops 8": T0 + 3000, b"{oops 9": None}


# -- signals: a flood of new names is refused ---------------------------------------------------------------------
def _process(station: str, mid: int, *names: str) -> Delivery:
    return _msg(station, Channel.PROCESS, mid, ts=T0 + mid, values=[{"name": n, "value": 1.0, "unit": "u"} for n in names])


def test_a_signal_the_station_does_not_declare_is_refused_naming_the_declared_ones() -> None:
    store, events, acks = MemoryStore(), list[Event](), list[tuple[int, int]]()
    ingest = _ingest(store, events, acks)
    declared = sorted(next(s for s in LINE.stations if s.id == "COAT_C").signals)
    ingest.process([_process("COAT_C", 1, declared[0], declared[1]), _process("COAT_C", 2, declared[0], "bogus_signal")])
    assert ingest.stats.stored == 1
    (letter,) = store.dead_letters()
    assert "values[1].name" in letter.reason
    assert "'bogus_signal'" in letter.reason
    assert ", ".join(declared) in letter.reason
    assert [ev.name for ev in events if isinstance(ev, ProcessValue)] == declared[:2]
    assert len(events) == 2


def test_a_station_without_declared_signals_takes_a_bounded_number_of_names() -> None:
    line = make_line({"id": "A", "cycle_time": {"dist": "constant", "value": 0.1}})
    topics = Topics("gigatwin", "plant1", line.name)
    store = MemoryStore()
    ingest = Ingest(topics, store, line=line, max_undeclared_signals=3)

    def msg(mid: int, *names: str) -> Delivery:
        body = json.dumps({"v": 1, "ts": T0 + mid, "values": [{"name": n, "value": 1.0} for n in names]}).encode()
        return Delivery(topics.topic("A", Channel.PROCESS), body, T0, (mid, 1))

    ingest.process([msg(1, "s1", "s2"), msg(2, "s2", "s3"), msg(3, "s4"), msg(4, "s1", "s3"), msg(5, "s5", "s1")])
    assert ingest.stats.stored == 3  # s1, s2, s3 and their repeats
    reasons = [dl.reason for dl in store.dead_letters()]
    assert len(reasons) == 2
    assert all("declares no signals" in r and "limit of 3" in r for r in reasons)
    assert any("'s4'" in r for r in reasons)
    assert any("'s5'" in r for r in reasons)


# -- the dedup window and the batch hook ---------------------------------------------------------------------------
def test_the_dedup_window_forgets_the_oldest_readings_beyond_its_size() -> None:
    store = MemoryStore()
    ingest = Ingest(TOPICS, store, line=LINE, dedup_size=3)
    ingest.process([_buffer("COAT_C", i) for i in range(5)])  # the window holds 2, 3, 4
    ingest.process([_buffer("COAT_C", 4), _buffer("COAT_C", 2), _buffer("COAT_C", 1)])
    assert ingest.stats.duplicates == 2
    assert ingest.stats.stored == 6
    assert len(ingest._recent) == 3


class _BatchReader:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[int] = []
        self.events = 0
        self.fail = fail

    def __call__(self, _ev: Event) -> None:
        self.events += 1

    def end_batch(self) -> None:
        self.seen.append(self.events)
        if self.fail:
            raise RuntimeError("reader bug")


def test_observers_with_end_batch_are_called_once_after_each_batchs_events() -> None:
    reader, broken, plain = _BatchReader(), _BatchReader(fail=True), list[Event]()
    acks: list[tuple[int, int]] = []
    ingest = Ingest(TOPICS, MemoryStore(), line=LINE, observers=[reader, broken, plain.append], ack=acks.extend)
    ingest.process([_buffer("COAT_C", 1), _buffer("COAT_C", 2)])
    ingest.process([_buffer("COAT_C", 3)])
    assert reader.seen == [2, 3]  # after all of a batch's events
    assert broken.seen == [2, 3]
    assert ingest.stats.observer_errors == 2
    assert "reader bug" in ingest.stats.last_error
    assert len(plain) == 3
    assert len(acks) == 3
