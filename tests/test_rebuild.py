"""Replaying a line's history from the store: the readings come back as they were written, and a live state
rebuilt from them equals the one that watched the stream live."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from connectors.feed import VirtualPlant
from connectors.ingest import Ingest, LoopbackPublisher
from connectors.linefile import read_line
from connectors.rebuild import RebuildStats, rebuild, stored_readings
from connectors.stores import MemoryStore, SqliteStore, Store, WriteOutcome
from connectors.telemetry import (
    MS_PER_HOUR,
    BufferReading,
    Channel,
    CountsReading,
    InputReading,
    ProcessReading,
    Reading,
    Source,
    StateReading,
    StoreReading,
    Topics,
    reading_events,
)
from tests.conftest import LINES
from twin.counters import CumulativeCounters
from twin.events import Event, MachineState, UnitsCompleted
from twin.schema import Line
from twin.state import LiveLine

ORIGIN = 1_763_900_000_000  # ms since the epoch: a fixed source-clock origin
REFERENCE = read_line(LINES / "reference_cell_line.yaml")
L1 = Topics("gt", "site1", REFERENCE.name)
L2 = Topics("gt", "site1", REFERENCE.name + "-2")  # a second line with the same stations, in the same file


class RecordingStore(SqliteStore):
    """A SQLite store that remembers every reading written to it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.written: list[Reading] = []

    def write(self, readings: Sequence[Reading]) -> WriteOutcome:
        outcome = super().write(readings)
        self.written.extend(readings)
        return outcome


def feed_into(store: Store, topics: Topics, hours: float, seed: int, observers: list[Any]) -> Ingest:
    """Run the virtual plant for ``hours`` through the real ingest into ``store`` (and the observers)."""
    ingest = Ingest(topics, store, line=REFERENCE, observers=observers, batch_wait_s=0.01)
    stop = threading.Event()
    worker = threading.Thread(target=ingest.run, args=(stop,))
    worker.start()
    pub = LoopbackPublisher(ingest)
    try:
        VirtualPlant(REFERENCE, topics=topics, publisher=pub, seed=seed, origin_ms=ORIGIN).run_unpaced(hours)
    finally:
        stop.set()  # run drains what is queued before it returns
        worker.join()
    assert ingest.stats.received == pub.published
    assert ingest.stats.rejected == 0, ingest.stats.last_error
    return ingest


def live_line(line: Line = REFERENCE) -> LiveLine:
    return LiveLine(line, history_h=48.0)


def test_a_live_state_rebuilt_from_the_store_equals_the_one_that_watched_live(tmp_path: Path) -> None:
    hours = 6.3
    store = RecordingStore(tmp_path / "shared.db")
    watched = live_line()
    ingest = feed_into(store, L1, hours, seed=3, observers=[watched])
    # What the store keeps: one reading per channel, series and millisecond (a second one replaces the first).
    kept = {(type(r), r.source, r.machine, r.ts_ms) for r in store.written}
    assert len(store.written) - len(kept) < 10
    feed_into(store, L2, 2.0, seed=9, observers=[])  # another line's data in the same file must not leak in

    rebuilt = live_line()
    counters = CumulativeCounters()
    end_ms = ORIGIN + round(hours * MS_PER_HOUR) + 1
    stats = rebuild(store, L1, [rebuilt], start_ms=ORIGIN - MS_PER_HOUR, end_ms=end_ms, counters=counters, page=997)

    assert stats.readings == len(kept)
    assert stats.observer_errors == 0, stats.first_error
    assert stats.events > 1000
    live, again = watched.status(), rebuilt.status()
    assert again.released > 100  # (nothing ships yet: the line ends in days of aging)
    # Everything but the event count: readings of one series in the same millisecond are one point in the store.
    fields = [f.name for f in dataclasses.fields(live) if f.name not in ("events", "retained_events")]
    assert {f: getattr(again, f) for f in fields} == {f: getattr(live, f) for f in fields}
    assert {s: st.state for s, st in again.stations.items()} == {s: st.state for s, st in live.stations.items()}
    assert again.events == pytest.approx(live.events, rel=0.01)
    h0 = ORIGIN / MS_PER_HOUR
    for start_h, end_h in ((h0, h0 + hours), (h0 + 1.0, h0 + 4.5)):
        # Compared by repr: exactly equal numbers, and NaN (no lead time yet) equal to NaN.
        assert repr(rebuilt.kpis(start_h, end_h)) == repr(watched.kpis(start_h, end_h)), (start_h, end_h)
    # The counters hold the last stored totals: an ingest taking them over counts on from there.
    last = store.last("counts", site=L1.site, line=L1.line)
    assert len(last) == sum(s.machines for s in REFERENCE.stations)
    for p in last:
        totals = (p.ts_ms, (p.fields["processed"], p.fields["defective"]))
        assert counters.last((p.station, p.machine)) == totals == ingest.counters.last((p.station, p.machine))
    store.close()


def test_counters_are_seeded_from_the_last_reading_before_the_window() -> None:
    store = MemoryStore()
    a, other = Source("site1", "L1", "COAT"), Source("site1", "L2", "COAT")
    topics = Topics("gt", "site1", "L1")
    store.write(
        [
            CountsReading(a, 0, ORIGIN - 10, 100, 2),  # before the window: the baseline
            InputReading(a, 0, ORIGIN - 5, 300),
            CountsReading(other, 0, ORIGIN - 1, 9000, 90),  # another line's: no part of it
            CountsReading(a, 0, ORIGIN + 10, 130, 3),
            InputReading(a, 0, ORIGIN + 20, 340),
            CountsReading(other, 0, ORIGIN + 30, 9500, 95),
        ]
    )
    events: list[Event] = []
    counters = CumulativeCounters()
    stats = rebuild(store, topics, [events.append], start_ms=ORIGIN, end_ms=ORIGIN + 100, counters=counters)
    assert (stats.readings, stats.seeded_counters) == (2, 2)
    completed = [e for e in events if isinstance(e, UnitsCompleted)]
    assert [(e.good, e.scrap) for e in completed] == [(29, 1)]  # 130 - 100 processed, 3 - 2 defective
    assert [getattr(e, "units", None) for e in events if type(e).__name__ == "UnitsReleased"] == [40]
    assert counters.last(("COAT", 0)) == (ORIGIN + 10, (130, 3))
    # Without a reading before the window, the first one inside is the baseline: it adds nothing.
    events.clear()
    rebuild(store, topics, [events.append], start_ms=ORIGIN - 20, end_ms=ORIGIN + 100, counters=CumulativeCounters())
    assert [(e.good, e.scrap) for e in events if isinstance(e, UnitsCompleted)] == [(29, 1)]


def every_channel(src: Source, ts: int) -> list[Reading]:
    return [
        StateReading(src, 1, ts, MachineState.DOWN, "HELD", "jam", 12),
        StateReading(src, 0, ts, MachineState.WORKING, "EXECUTE", "", None),
        InputReading(src, 0, ts, 7),
        CountsReading(src, 0, ts, 40, 1),
        BufferReading(src, 0, ts, 5),
        StoreReading(src, 0, ts, 30, 2, True),
        ProcessReading(src, 0, ts, (("a_speed", 1.5, "m/min"), ("b_temp", 25.0, "degC"))),
        ProcessReading(src, 1, ts, (("a_speed", 2.5, "m/min"),)),
    ]


@pytest.mark.parametrize("page", [1, 2, 3, 10_000])
def test_stored_readings_come_back_as_written_in_time_order_whatever_the_page(page: int) -> None:
    store = MemoryStore()
    topics = Topics("gt", "site1", "L1")
    a, b = Source("site1", "L1", "A"), Source("site1", "L1", "B")
    written = [r for ts in (ORIGIN + 2, ORIGIN, ORIGIN + 1) for src in (b, a) for r in every_channel(src, ts)]
    store.write([*written, *every_channel(Source("site1", "L9", "A"), ORIGIN)])  # and another line's
    got = list(stored_readings(store, topics, ORIGIN, ORIGIN + 3, page=page))
    assert sorted(got, key=repr) == sorted(written, key=repr)
    assert [r.ts_ms for r in got] == sorted(r.ts_ms for r in got)
    first = got[: len(got) // 3]
    assert [type(r).__name__ for r in first][:4] == ["StateReading"] * 4  # within a millisecond: states first
    assert list(stored_readings(store, topics, ORIGIN + 1, ORIGIN + 2, page=page)) == [r for r in got if r.ts_ms == ORIGIN + 1]


def test_a_replay_of_some_channels_reads_only_theirs() -> None:
    store = MemoryStore()
    topics = Topics("gt", "site1", "L1")
    src = Source("site1", "L1", "A")
    store.write([r for ts in (ORIGIN, ORIGIN + 1) for r in every_channel(src, ts)])
    got = list(stored_readings(store, topics, ORIGIN, ORIGIN + 2, page=2, channels={Channel.STATE, Channel.COUNTS}))
    assert {type(r).__name__ for r in got} == {"StateReading", "CountsReading"}
    assert len(got) == 6  # two states and a count per millisecond
    assert [r.ts_ms for r in got] == sorted(r.ts_ms for r in got)


def test_a_window_longer_than_the_stores_longest_query_is_read_in_spans() -> None:
    store = MemoryStore(max_span_ms=1000)
    topics = Topics("gt", "site1", "L1")
    src = Source("site1", "L1", "A")
    store.write([BufferReading(src, 0, ORIGIN + 400 * k, k) for k in range(10)])
    got = list(stored_readings(store, topics, ORIGIN, ORIGIN + 4000, page=2))
    assert [r.level for r in got if isinstance(r, BufferReading)] == list(range(10))


def test_an_observer_that_fails_is_counted_and_the_replay_goes_on() -> None:
    store = MemoryStore()
    src = Source("site1", "L1", "A")
    store.write([BufferReading(src, 0, ORIGIN + k, k) for k in range(5)])
    seen: list[Event] = []

    def fussy(ev: Event) -> None:
        raise RuntimeError("no")

    stats = rebuild(
        store,
        Topics("gt", "site1", "L1"),
        [fussy, seen.append],
        start_ms=ORIGIN,
        end_ms=ORIGIN + 5,
        counters=CumulativeCounters(),
    )
    assert isinstance(stats, RebuildStats)
    assert (stats.readings, stats.events, stats.observer_errors, len(seen)) == (5, 5, 5, 5)
    assert stats.first_error.startswith("observer <function")
    assert stats.first_error.endswith(": no")


def test_readings_round_trip_through_reading_events_unchanged() -> None:
    # The rebuilt readings make the same events the written ones made (the codec's inverse, checked end to end).
    store = MemoryStore()
    src = Source("site1", "L1", "A")
    written = every_channel(src, ORIGIN)
    store.write(written)
    got = list(stored_readings(store, Topics("gt", "site1", "L1"), ORIGIN, ORIGIN + 1))

    def events(readings: list[Reading]) -> list[Event]:
        counters = CumulativeCounters()
        return sorted((e for r in readings for e in reading_events(r, counters)), key=repr)

    assert events(got) == events(written)
