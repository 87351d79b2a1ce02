"""The stores: one behavioural contract run against every adapter, then what is particular to each.

:class:`StoreContract` holds the behaviour every :class:`~connectors.stores.Store` must show; it runs here on the
memory fake and on SQLite, and in ``tests/integration/test_influx_store.py`` on a real InfluxDB. The spool and
the InfluxDB store's outage handling are unit-tested here through a fake HTTP transport.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import connectors.stores
from connectors.stores import (
    DeadLetter,
    InfluxStore,
    MemoryStore,
    PartialWriteError,
    SqliteStore,
    Store,
    StoredForecast,
    StoredPoint,
    StoreError,
    WriteOutcome,
    WriteRefused,
    open_store,
)
from connectors.stores.http import HttpRequest, HttpResponse, Unavailable
from connectors.stores.influxql import ident, literal
from connectors.stores.spool import Spool
from connectors.telemetry import (
    BufferReading,
    CountsReading,
    InputReading,
    ProcessReading,
    Reading,
    Source,
    StateReading,
    StoreReading,
)
from twin.events import MachineState

T0 = 1_700_000_000_000  # ms; an arbitrary fixed origin, so that expected values are exact
A = Source("site1", "L1", "COAT")
B = Source("site1", "L1", "FORM")
Q = Source("site1", "L1", 'ST\'1 "x" \\ ,= y')  # a user-chosen station id with every character InfluxQL escapes

StoreFactory = Callable[..., Store]


def sample() -> list[Reading]:
    """A few readings of every channel, with ties in time across series and machines 2 and 10 (numeric order)."""
    return [
        StateReading(A, 0, T0, MachineState.WORKING, "EXECUTE", "", None),
        StateReading(A, 1, T0 + 1000, MachineState.DOWN, "HELD", "web_break", 42),
        StateReading(B, 10, T0, MachineState.STARVED, "IDLE", "", None),
        StateReading(B, 2, T0, MachineState.BLOCKED, "BLOCKED", "full", 7),
        CountsReading(A, 0, T0 + 500, 100, 3),
        CountsReading(A, 0, T0 + 1500, 180, 5),
        CountsReading(B, 2, T0 + 500, 40, 0),
        ProcessReading(A, 0, T0, (("speed", 61.5, "m/min"), ("tension", 120.0, "N"), ("temp", 24.25, "degC"))),
        ProcessReading(A, 0, T0 + 1000, (("speed", 62.0, "m/min"),)),
        ProcessReading(B, 3, T0, (("ocv", 3.651, "V"),)),
        BufferReading(A, 0, T0 + 200, 12),
        BufferReading(A, 0, T0 + 900, 15),
        StoreReading(B, 0, T0 + 300, 5000, 12, True),
        StoreReading(B, 0, T0 + 800, 5100, 0, False),
        InputReading(A, 0, T0 + 100, 250),
    ]


def point(channel: str, src: Source, machine: int, ts: int, signal: str = "", **fields: Any) -> StoredPoint:
    return StoredPoint(channel, src.site, src.line, src.station, machine, signal, ts, fields)


EXPECTED = {
    "state": [
        point("state", A, 0, T0, state="WORKING", packml="EXECUTE", reason=""),
        point("state", B, 2, T0, state="BLOCKED", packml="BLOCKED", reason="full", code=7),
        point("state", B, 10, T0, state="STARVED", packml="IDLE", reason=""),
        point("state", A, 1, T0 + 1000, state="DOWN", packml="HELD", reason="web_break", code=42),
    ],
    "counts": [
        point("counts", A, 0, T0 + 500, processed=100, defective=3),
        point("counts", B, 2, T0 + 500, processed=40, defective=0),
        point("counts", A, 0, T0 + 1500, processed=180, defective=5),
    ],
    "process": [
        point("process", A, 0, T0, "speed", value=61.5, unit="m/min"),
        point("process", A, 0, T0, "temp", value=24.25, unit="degC"),
        point("process", A, 0, T0, "tension", value=120.0, unit="N"),
        point("process", B, 3, T0, "ocv", value=3.651, unit="V"),
        point("process", A, 0, T0 + 1000, "speed", value=62.0, unit="m/min"),
    ],
    "buffer": [point("buffer", A, 0, T0 + 200, level=12), point("buffer", A, 0, T0 + 900, level=15)],
    "store": [
        point("store", B, 0, T0 + 300, dwelling=5000, held=12, intake_blocked=True),
        point("store", B, 0, T0 + 800, dwelling=5100, held=0, intake_blocked=False),
    ],
    "input": [point("input", A, 0, T0 + 100, consumed=250)],
}


def typed(points: list[StoredPoint]) -> list[tuple[Any, ...]]:
    """Points with each field's type next to its value: 1 == 1.0 == True must not pass for one another."""
    return [(*p[:7], sorted((k, type(v).__name__, v) for k, v in p.fields.items())) for p in points]


class StoreContract:
    """The behaviour every store shows. Subclasses provide ``store_factory``: keyword arguments to a new store."""

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Iterator[StoreFactory]:
        raise NotImplementedError

    @pytest.fixture
    def store(self, store_factory: StoreFactory) -> Store:
        return store_factory()

    # -- writing and reading back -------------------------------------------------------------------------
    def test_every_channel_reads_back_what_was_written_in_order(self, store: Store) -> None:
        assert store.write(sample()) is WriteOutcome.WRITTEN
        for channel, expected in EXPECTED.items():
            got = store.range(channel, start_ms=T0, end_ms=T0 + 10_000)
            assert typed(got) == typed(expected), channel

    def test_range_is_half_open_and_filters_by_station_and_signal(self, store: Store) -> None:
        store.write(sample())
        assert store.range("process", start_ms=T0 + 1, end_ms=T0 + 1000) == []
        assert store.range("process", start_ms=T0 + 1000, end_ms=T0 + 1001) == EXPECTED["process"][4:]
        assert store.range("process", start_ms=T0, end_ms=T0 + 1000) == EXPECTED["process"][:4]
        assert store.range("process", start_ms=T0, end_ms=T0 + 10_000, station="FORM") == [EXPECTED["process"][3]]
        speed = store.range("process", start_ms=T0, end_ms=T0 + 10_000, station="COAT", signal="speed")
        assert [p.fields["value"] for p in speed] == [61.5, 62.0]
        assert store.range("state", start_ms=T0, end_ms=T0 + 10_000, station="NONE") == []
        assert store.range("state", start_ms=T0, end_ms=T0, station="COAT") == []

    def test_pages_follow_the_contract_order_across_ties(self, store: Store) -> None:
        # 5 timestamps x 12 series at each: pages of 7 cut through groups of equal time at every offset.
        readings: list[Reading] = [
            CountsReading(Source("s", "l", st), m, T0 + 1000 * k, k, 0)
            for k in range(5)
            for st in ("Z", "B", "M")
            for m in (10, 2, 0, 1)
        ]
        store.write(readings)
        full = store.range("counts", start_ms=T0, end_ms=T0 + 5000, limit=1000)
        assert [(p.ts_ms, p.station, p.machine) for p in full] == sorted((r.ts_ms, r.source.station, r.machine) for r in readings)
        for size in (1, 7, 12, 25):
            pages = [store.range("counts", start_ms=T0, end_ms=T0 + 5000, limit=size, offset=o) for o in range(0, 60, size)]
            assert [p for page in pages for p in page] == full, size
        assert store.range("counts", start_ms=T0, end_ms=T0 + 5000, limit=5, offset=58) == full[58:]
        assert store.range("counts", start_ms=T0, end_ms=T0 + 5000, limit=5, offset=60) == []
        assert store.range("counts", start_ms=T0, end_ms=T0 + 5000, limit=3, offset=13) == full[13:16]

    def test_last_gives_the_latest_point_of_every_series(self, store: Store) -> None:
        store.write(sample())
        assert store.last("counts") == [EXPECTED["counts"][2], EXPECTED["counts"][1]]
        assert store.last("process", station="COAT") == [
            EXPECTED["process"][4],
            EXPECTED["process"][1],
            EXPECTED["process"][2],
        ]
        assert [p.machine for p in store.last("state")] == [0, 1, 2, 10]
        assert store.last("state", station="NONE") == []
        assert store.last("input") == EXPECTED["input"]

    def test_last_before_a_time_gives_each_series_latest_point_before_it(self, store: Store) -> None:
        store.write(sample())
        assert store.last("counts", before_ms=T0 + 1500) == [EXPECTED["counts"][0], EXPECTED["counts"][1]]
        assert store.last("counts", before_ms=T0 + 1501) == [EXPECTED["counts"][2], EXPECTED["counts"][1]]
        assert store.last("counts", station="FORM", before_ms=T0 + 500) == []
        assert store.last("counts", before_ms=T0) == []

    def test_user_chosen_station_ids_are_stored_and_filtered_verbatim(self, store: Store) -> None:
        store.write(
            [CountsReading(Q, 0, T0, 5, 1), CountsReading(A, 0, T0, 6, 0), ProcessReading(Q, 1, T0, (("a'b\\c", 1.5, 'x"y'),))]
        )
        got = store.range("counts", start_ms=T0, end_ms=T0 + 1, station=Q.station)
        assert got == [point("counts", Q, 0, T0, processed=5, defective=1)]
        assert store.last("counts", station=Q.station) == got
        assert store.range("process", start_ms=T0, end_ms=T0 + 1, station=Q.station, signal="a'b\\c") == [
            point("process", Q, 1, T0, "a'b\\c", value=1.5, unit='x"y')
        ]
        buckets = store.aggregate("counts", "processed", start_ms=T0, end_ms=T0 + 1, every_ms=1, station=Q.station)
        assert [(b.count, b.mean) for b in buckets] == [(1, 5.0)]

    # -- replacement: a redelivered message is idempotent ---------------------------------------------------
    def test_the_same_point_written_again_replaces_the_earlier(self, store: Store) -> None:
        store.write(sample())
        store.write(sample())  # a redelivery changes nothing
        store.write([CountsReading(A, 0, T0 + 500, 101, 4), ProcessReading(A, 0, T0, (("speed", 70.0, "m/min"),))])
        counts = store.range("counts", start_ms=T0, end_ms=T0 + 10_000)
        assert [p.fields for p in counts] == [
            {"processed": 101, "defective": 4},
            {"processed": 40, "defective": 0},
            {"processed": 180, "defective": 5},
        ]
        process = store.range("process", start_ms=T0, end_ms=T0 + 1)
        assert [(p.signal, p.fields["value"]) for p in process] == [
            ("speed", 70.0),
            ("temp", 24.25),
            ("tension", 120.0),
            ("ocv", 3.651),
        ]

    # -- aggregates -----------------------------------------------------------------------------------------
    def test_aggregates_equal_numpy_on_the_same_data(self, store: Store) -> None:
        rng = np.random.default_rng(7)
        every, n = 60_000, 1500
        ts = T0 + np.sort(rng.choice(2 * 3_600_000, size=n, replace=False))
        stations, machines = rng.choice(["COAT", "FORM"], size=n), rng.integers(0, 2, size=n)
        temp, speed = rng.normal(25.0, 3.0, size=n), rng.normal(60.0, 5.0, size=n)
        store.write(
            [
                ProcessReading(
                    Source("site1", "L1", str(stations[i])),
                    int(machines[i]),
                    int(ts[i]),
                    (("temp", float(temp[i]), "degC"), ("speed", float(speed[i]), "m/min")),
                )
                for i in range(n)
            ]
        )
        start, end = T0 + 12_345, T0 + 7_000_000  # neither aligned to the interval

        def expected(mask: np.ndarray, values: np.ndarray) -> list[tuple[int, float, float, float, int]]:
            mask = mask & (ts >= start) & (ts < end)
            starts = ts[mask] - ts[mask] % every
            out = []
            for b in np.unique(starts):
                v = values[mask][starts == b]
                out.append((int(b), float(np.mean(v)), float(np.min(v)), float(np.max(v)), len(v)))
            return out

        cases = [
            ({"signal": "temp"}, np.ones(n, bool), temp),
            ({"signal": "speed", "station": "FORM"}, stations == "FORM", speed),
            ({"signal": "temp", "station": "COAT", "machine": 1}, (stations == "COAT") & (machines == 1), temp),
        ]
        for filters, mask, values in cases:
            got = store.aggregate("process", "value", start_ms=start, end_ms=end, every_ms=every, **filters)
            want = expected(mask, values)
            assert [(b.start_ms, b.min, b.max, b.count) for b in got] == [(w[0], w[2], w[3], w[4]) for w in want], filters
            assert [b.mean for b in got] == pytest.approx([w[1] for w in want], rel=1e-12), filters

    def test_aggregates_of_integer_fields_and_empty_intervals(self, store: Store) -> None:
        store.write(sample())
        buckets = store.aggregate("counts", "processed", start_ms=T0, end_ms=T0 + 10_000, every_ms=1000)
        assert buckets == [(T0, 70.0, 40.0, 100.0, 2), (T0 + 1000, 180.0, 180.0, 180.0, 1)]
        assert all(type(x) is float for b in buckets for x in (b.mean, b.min, b.max))
        # The optional fault code: only points that carry one count.
        assert store.aggregate("state", "code", start_ms=T0, end_ms=T0 + 10_000, every_ms=100) == [
            (T0, 7.0, 7.0, 7.0, 1),
            (T0 + 1000, 42.0, 42.0, 42.0, 1),
        ]
        assert store.aggregate("buffer", "level", start_ms=T0 + 1000, end_ms=T0 + 2000, every_ms=100) == []
        assert store.aggregate("buffer", "level", start_ms=T0, end_ms=T0, every_ms=100) == []

    # -- bounds -----------------------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda s: s.range("state", start_ms=T0, end_ms=T0 - 1), r"end_ms: .* is before start_ms"),
            (
                lambda s: s.range("state", start_ms=T0, end_ms=T0 + 32 * 86_400_000),
                r"end_ms: the span .* exceeds the maximum .*31 days",
            ),
            (lambda s: s.range("state", start_ms=T0, end_ms=T0 + 1, limit=100_001), r"limit: must be between 1 and 100000"),
            (lambda s: s.range("state", start_ms=T0, end_ms=T0 + 1, limit=0), r"limit: "),
            (lambda s: s.range("state", start_ms=T0, end_ms=T0 + 1, offset=-1), r"offset: "),
            (lambda s: s.range("nope", start_ms=T0, end_ms=T0 + 1), r"channel: 'nope' is not one of state, counts"),
            (lambda s: s.aggregate("buffer", "level", start_ms=T0, end_ms=T0 - 5, every_ms=1), r"end_ms: "),
            (
                lambda s: s.aggregate("buffer", "level", start_ms=T0, end_ms=T0 + 10_001, every_ms=1),
                r"every_ms: 1 ms makes 10001 intervals",
            ),
            (lambda s: s.aggregate("buffer", "level", start_ms=T0, end_ms=T0 + 10, every_ms=0), r"every_ms: must be > 0"),
            (
                lambda s: s.aggregate("state", "reason", start_ms=T0, end_ms=T0 + 10, every_ms=1),
                r"field: 'reason' is not a numeric field of channel 'state' \(code\)",
            ),
            (
                lambda s: s.aggregate("store", "intake_blocked", start_ms=T0, end_ms=T0 + 10, every_ms=1),
                r"field: 'intake_blocked'",
            ),
            (lambda s: s.dead_letters(limit=0), r"limit: "),
        ],
    )
    def test_unbounded_queries_are_refused_naming_the_argument(
        self, store: Store, call: Callable[[Store], Any], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            call(store)

    def test_the_longest_span_is_configurable_and_10000_buckets_pass(self, store_factory: StoreFactory) -> None:
        store = store_factory(max_span_ms=3_600_000)
        store.range("state", start_ms=T0, end_ms=T0 + 3_600_000)
        with pytest.raises(ValueError, match="maximum of 3600000 ms"):
            store.range("state", start_ms=T0, end_ms=T0 + 3_600_001)
        aligned = T0 - T0 % 360  # 10,000 whole intervals; from an unaligned start they would touch 10,001
        store.aggregate("buffer", "level", start_ms=aligned, end_ms=aligned + 3_600_000, every_ms=360)

    # -- dead letters -----------------------------------------------------------------------------------------
    def test_dead_letters_keep_their_bytes_exactly_newest_first(self, store: Store) -> None:
        every_byte = bytes(range(256))
        letters = [
            DeadLetter(T0, "gt/site1/L1/COAT/state", every_byte, "payload: not JSON"),
            DeadLetter(T0, "gt/site1/L1/COAT/state", b"", "payload: empty"),  # the same millisecond: both kept
            DeadLetter(T0 + 5, "gt/site1/L1/X/state", '{"v":1,"ts":"é"}'.encode(), "payload.ts: expected an integer"),
        ]
        assert store.write_dead_letters(letters[:2]) is WriteOutcome.WRITTEN
        store.write_dead_letters(letters[2:])
        assert store.dead_letter_count() == 3
        got = store.dead_letters()
        assert got[0] == letters[2]
        assert sorted(got[1:]) == sorted(letters[:2])
        assert store.dead_letters(limit=1) == [letters[2]]
        assert store.write_dead_letters([]) is WriteOutcome.WRITTEN

    def test_dead_letters_keep_the_line_clock_as_an_integer_or_none(self, store: Store) -> None:
        topic = "gt/site1/L1/COAT/state"
        days = 3 * 86_400_000
        letters = [
            DeadLetter(T0, topic, b"1", "before any reading was stored"),  # no line clock
            DeadLetter(T0 + 1, topic, b"2", "r", T0 - days + 7),  # the line's clock days behind the receive clock
            DeadLetter(T0 + 2, topic, b"3", "r", line_ms=T0 + days),  # and ahead of it
            DeadLetter(T0 + 3, topic, b"4", "r", line_ms=0),  # zero is a time, not "none"
        ]
        store.write_dead_letters(letters[:2])
        store.write_dead_letters(letters[2:])
        got = store.dead_letters()
        assert got == letters[::-1]
        assert [type(d.line_ms) for d in got] == [int, int, int, type(None)]
        assert store.dead_letters(topic_prefix="gt/site1/L1/", limit=2) == [letters[3], letters[2]]

    # -- lines sharing one store ----------------------------------------------------------------------------------
    def test_two_lines_sharing_the_store_each_read_their_own(self, store: Store) -> None:
        # Two lines, and a second site, with the same station ids, machines and signals at the same times.
        one, two, far = Source("site1", "L1", "COAT"), Source("site1", "L2", "COAT"), Source("site2", "L1", "COAT")
        store.write(
            [
                CountsReading(one, 0, T0, 100, 1),
                CountsReading(two, 0, T0, 900, 9),
                CountsReading(far, 0, T0, 5000, 50),
                CountsReading(one, 0, T0 + 10, 110, 1),
                ProcessReading(one, 0, T0, (("speed", 10.0, "m/min"),)),
                ProcessReading(two, 0, T0, (("speed", 99.0, "m/min"),)),
            ]
        )
        got = store.range("counts", start_ms=T0, end_ms=T0 + 100, site="site1", line="L1")
        assert [p.fields["processed"] for p in got] == [100, 110]
        assert {(p.site, p.line) for p in got} == {("site1", "L1")}
        assert [p.fields["processed"] for p in store.range("counts", start_ms=T0, end_ms=T0 + 100, site="site1", line="L2")] == [
            900
        ]
        assert len(store.range("counts", start_ms=T0, end_ms=T0 + 100, line="L1")) == 3  # both sites' L1
        assert len(store.range("counts", start_ms=T0, end_ms=T0 + 100)) == 4  # no filter: every line
        speeds = store.range("process", start_ms=T0, end_ms=T0 + 100, site="site1", line="L2", station="COAT", signal="speed")
        assert [p.fields["value"] for p in speeds] == [99.0]

        assert [(p.line, p.fields["processed"]) for p in store.last("counts", site="site1", line="L1")] == [("L1", 110)]
        assert [(p.line, p.fields["processed"]) for p in store.last("counts", site="site1", line="L2")] == [("L2", 900)]
        assert [p.site for p in store.last("counts", site="site2", line="L1", station="COAT")] == ["site2"]
        assert len(store.last("counts")) == 3

        def means(**where: Any) -> list[tuple[float, int]]:
            buckets = store.aggregate("counts", "processed", start_ms=T0, end_ms=T0 + 100, every_ms=100, **where)
            return [(b.mean, b.count) for b in buckets if b.mean is not None]

        assert means(site="site1", line="L1") == [(105.0, 2)]
        assert means(site="site1", line="L2", station="COAT", machine=0) == [(900.0, 1)]
        assert means(site="site2", line="L2") == []

    def test_dead_letters_are_kept_apart_by_topic_prefix(self, store: Store) -> None:
        store.write_dead_letters(
            [
                DeadLetter(T0, "gt/site1/L1/COAT/state", b"1", "bad 1"),
                DeadLetter(T0 + 1, "gt/site1/L10/COAT/state", b"10", "bad 10"),  # L1 is a prefix of L10's name
                DeadLetter(T0 + 2, "gt/site1/L2/COAT/counts", b"2", "bad 2"),
                DeadLetter(T0 + 3, "gt/site1/L1/FORM/buffer", b"1b", "bad 1b"),
            ]
        )
        assert [d.payload for d in store.dead_letters(topic_prefix="gt/site1/L1/")] == [b"1b", b"1"]
        assert store.dead_letter_count(topic_prefix="gt/site1/L1/") == 2
        assert [d.payload for d in store.dead_letters(topic_prefix="gt/site1/L2/")] == [b"2"]
        assert store.dead_letter_count(topic_prefix="gt/site1/L2/") == 1
        assert store.dead_letter_count(topic_prefix="gt/site1/L3/") == 0
        assert store.dead_letter_count() == 4
        # Regex and LIKE characters in a prefix are literal.
        store.write_dead_letters([DeadLetter(T0, "a.b%c_d/x", b"", "r"), DeadLetter(T0, "aXb%cXd/x", b"", "r")])
        assert [d.topic for d in store.dead_letters(topic_prefix="a.b%c_d/")] == ["a.b%c_d/x"]

    # -- what no store can hold ------------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("bad", "message"),
        [
            (BufferReading(A, 0, T0, 18446744073709551616), r"field buffer\.level: 18446744073709551616 is beyond the 64-bit"),
            (CountsReading(A, 0, T0, 2**63, 0), r"field counts\.processed: 9223372036854775808 is beyond the 64-bit"),
            (
                StateReading(A, 0, T0, MachineState.DOWN, "HELD", "\ud800", 1),
                r"field state\.reason: '\\ud800' is not valid Unicode",
            ),
            (
                StateReading(A, 0, T0, MachineState.DOWN, "HELD", "x", -(2**64)),
                r"field state\.code: -18446744073709551616 is beyond",
            ),
            (
                ProcessReading(A, 0, T0, (("ok", 1.0, "u"), ("t", float("nan"), "u"))),
                r"field process\.value of signal 't': nan is not a finite",
            ),
            (ProcessReading(A, 0, T0, (("t", float("inf"), "u"),)), r"field process\.value of signal 't': inf is not a finite"),
            (ProcessReading(A, 0, T0, (("t\udfff", 1.0, "u"),)), r"signal: 't\\udfff' is not valid Unicode"),
            (ProcessReading(A, 0, T0, (("t", 1.0, "\udc80"),)), r"field process\.unit of signal 't': '\\udc80' is not valid"),
            (BufferReading(Source("site1", "L1", "S\ud800"), 0, T0, 1), r"station: 'S\\ud800' is not valid Unicode"),
            (StoreReading(B, 0, T0, 1, -(2**70), False), r"field store\.held: -1180591620717411303424 is beyond"),
        ],
    )
    def test_values_no_store_can_hold_are_refused_naming_the_field(self, store: Store, bad: Reading, message: str) -> None:
        good = BufferReading(B, 0, T0, 3)
        with pytest.raises(WriteRefused, match=message):
            store.write([good, bad])
        assert store.range("buffer", start_ms=T0, end_ms=T0 + 1) == []  # the whole write is refused: nothing half-stored
        assert store.write([good]) is WriteOutcome.WRITTEN  # and the store goes on working
        assert len(store.range("buffer", start_ms=T0, end_ms=T0 + 1)) == 1

    def test_dead_letters_with_lone_surrogates_are_kept_escaped(self, store: Store) -> None:
        store.write_dead_letters([DeadLetter(T0, "gt/s/L1/\ud800/state", b"\xff", "payload.reason: '\udc80'")])
        (letter,) = store.dead_letters()
        assert letter == DeadLetter(T0, "gt/s/L1/\\ud800/state", b"\xff", "payload.reason: '\\udc80'")

    def test_health_probes_a_write(self, store: Store) -> None:
        health = store.health()
        assert health.writable, health.detail
        assert health.spooled_batches == 0

    def test_an_empty_write_is_fine(self, store: Store) -> None:
        assert store.write([]) is WriteOutcome.WRITTEN
        assert store.last("state") == []

    def test_the_oldest_point_of_a_line_says_where_its_history_begins(self, store: Store) -> None:
        assert store.first_ms("state") is None
        one, two = Source("site1", "L1", "COAT"), Source("site1", "L2", "MIX")
        store.write(
            [CountsReading(one, 0, T0 + 50, 1, 0), CountsReading(two, 3, T0 + 7, 1, 0), CountsReading(one, 1, T0 + 20, 2, 0)]
        )
        assert store.first_ms("counts", site="site1", line="L1") == T0 + 20
        assert store.first_ms("counts", line="L2") == T0 + 7
        assert store.first_ms("counts") == T0 + 7
        assert store.first_ms("counts", site="site9") is None
        assert store.first_ms("state", line="L1") is None

    # -- forecasts ------------------------------------------------------------------------------------------------
    def test_forecasts_read_back_with_their_scores_written_later(self, store: Store) -> None:
        doc = {"as_of": "2026-11-30T10:40:00Z", "good_output": {"p50": 812.5, "p10": 700.0}, "note": 'a "quoted"\nline, é'}
        ghost = {"good_output": {"sd": math.nan, "p90": math.inf}}  # JSON has no NaN: stored as null
        assert store.write_forecasts([StoredForecast("s1", "L1", T0, doc), StoredForecast("s1", "L1", T0 + 60_000, ghost)])
        store.write_forecasts([StoredForecast("s1", "L2", T0, {"other": "line"})])  # a second line sharing the store
        store.write_forecasts([StoredForecast("s1", "L1", T0, score={"steps": [{"h": 1.0, "actual": 790.0}]})])
        got = store.forecasts(start_ms=T0, end_ms=T0 + 120_000, site="s1", line="L1")
        assert got == [
            StoredForecast("s1", "L1", T0, doc, {"steps": [{"h": 1.0, "actual": 790.0}]}),
            StoredForecast("s1", "L1", T0 + 60_000, {"good_output": {"sd": None, "p90": None}}, None),
        ]
        assert [f.as_of_ms for f in store.forecasts(start_ms=T0, end_ms=T0 + 60_000, line="L1")] == [T0]  # half-open
        assert [(f.line, f.forecast) for f in store.forecasts(start_ms=T0, end_ms=T0 + 1, line="L2")] == [
            ("L2", {"other": "line"})
        ]
        assert len(store.forecasts(start_ms=T0, end_ms=T0 + 120_000)) == 3
        assert len(store.forecasts(start_ms=T0, end_ms=T0 + 120_000, limit=1)) == 1
        # written again (a retried write): the part given replaces the stored one, the other stays
        store.write_forecasts([StoredForecast("s1", "L1", T0, {"again": 1})])
        assert store.forecasts(start_ms=T0, end_ms=T0 + 1, line="L1")[0][3:] == (
            {"again": 1},
            {"steps": [{"h": 1.0, "actual": 790.0}]},
        )

    def test_forecasts_that_cannot_be_stored_are_refused_and_nothing_is_written(self, store: Store) -> None:
        good = StoredForecast("s1", "L1", T0, {"ok": True})
        for bad, message in [
            (StoredForecast("s1", "L1", T0 + 1, {"x": object()}), "not a JSON document"),
            (StoredForecast("s1", "L1", T0 + 1, {"x": "y" * 70_000}), "a record holds"),
            (StoredForecast("s1", "L1", -5, {"x": 1}), "as_of_ms"),
            (StoredForecast("", "L1", T0 + 1, {"x": 1}), "site and line"),
            (StoredForecast("s1", "L1", T0 + 1), "neither a forecast nor a score"),
        ]:
            with pytest.raises(WriteRefused, match=message):
                store.write_forecasts([good, bad])
        assert store.forecasts(start_ms=T0, end_ms=T0 + 10) == []
        with pytest.raises(ValueError, match="limit"):
            store.forecasts(start_ms=T0, end_ms=T0 + 10, limit=10**9)


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Iterator[StoreFactory]:
        stores: list[Store] = []

        def make(**kw: Any) -> Store:
            stores.append(MemoryStore(**kw))
            return stores[-1]

        yield make
        for s in stores:
            s.close()

    def test_writes_can_be_made_to_fail(self) -> None:
        store = MemoryStore()
        store.fail_writes = True
        with pytest.raises(StoreError):
            store.write(sample())
        assert not store.health().writable


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Iterator[StoreFactory]:
        stores: list[Store] = []

        def make(**kw: Any) -> Store:
            stores.append(SqliteStore(tmp_path / f"gt{len(stores)}.db", **kw))
            return stores[-1]

        yield make
        for s in stores:
            s.close()

    def test_data_survives_reopening_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "gt.db"
        first = SqliteStore(path)
        first.write(sample())
        first.write_dead_letters([DeadLetter(1, "t", b"\x00", "r")])
        first.close()
        again = SqliteStore(path)
        assert again.range("process", start_ms=T0, end_ms=T0 + 10_000) == EXPECTED["process"]
        assert again.dead_letter_count() == 1
        again.write([CountsReading(Source("site1", "L1", "NEW"), 0, T0, 1, 0)])  # a new series after reopening
        assert len(again.last("counts")) == 3
        again.close()
        with pytest.raises(StoreError, match="closed"):
            again.write([])

    def test_two_writers_of_one_file_add_the_same_new_series(self, tmp_path: Path) -> None:
        # Two ingest workers on one SQLite file: each keeps its own table of series ids, so both come to add the same
        # new series; the second must take the first one's id, not fail on the unique key and retry forever.
        path = tmp_path / "gt.db"
        one, two = SqliteStore(path), SqliteStore(path)
        new = Source("site1", "L1", "NEW")
        assert one.write([CountsReading(new, 0, T0, 1, 0)]) is WriteOutcome.WRITTEN
        assert two.write([CountsReading(new, 0, T0 + 1000, 2, 0)]) is WriteOutcome.WRITTEN
        assert [p.fields["processed"] for p in one.range("counts", start_ms=T0, end_ms=T0 + 2000)] == [1, 2]
        one.close()
        two.close()

    def test_reads_in_other_threads_while_one_thread_writes(self, tmp_path: Path) -> None:
        store = SqliteStore(tmp_path / "gt.db")
        errors: list[BaseException] = []
        done = threading.Event()

        def read() -> None:
            try:
                while not done.is_set():
                    points = store.range("counts", start_ms=T0, end_ms=T0 + 100_000)
                    assert [p.ts_ms for p in points] == sorted(p.ts_ms for p in points)
            except BaseException as exc:  # handed to the main thread
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        for k in range(200):
            store.write([CountsReading(A, m, T0 + k, k, 0) for m in range(5)])
        done.set()
        for t in readers:
            t.join()
        assert errors == []
        assert len(store.range("counts", start_ms=T0, end_ms=T0 + 100_000)) == 1000
        store.close()

    def test_a_file_made_before_dead_letters_carried_the_line_clock_opens_and_takes_it(self, tmp_path: Path) -> None:
        import sqlite3

        path = tmp_path / "gt.db"
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:  # the schema of dead letters before line_ms
            conn.execute(
                "CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, received_ms INTEGER NOT NULL, "
                "topic TEXT NOT NULL, payload BLOB NOT NULL, reason TEXT NOT NULL)"
            )
            conn.execute("CREATE INDEX dead_letters_received ON dead_letters (received_ms)")
            conn.execute("CREATE INDEX dead_letters_topic ON dead_letters (topic, received_ms)")
            conn.execute("PRAGMA user_version = 1")
            conn.execute(
                "INSERT INTO dead_letters (received_ms, topic, payload, reason) VALUES (?, ?, ?, ?)", (T0, "t", b"old", "r")
            )
        store = SqliteStore(path)
        assert store.dead_letters() == [DeadLetter(T0, "t", b"old", "r", None)]
        new = DeadLetter(T0 + 1, "t", b"new", "r", T0 - 86_400_000)
        store.write_dead_letters([new])
        store.write(sample())
        store.close()
        again = SqliteStore(path)  # the column is there now: opened again as is
        assert again.dead_letters() == [new, DeadLetter(T0, "t", b"old", "r")]
        assert again.range("input", start_ms=T0, end_ms=T0 + 10_000) == EXPECTED["input"]
        again.close()
        with contextlib.closing(sqlite3.connect(path)) as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(dead_letters)")]
            assert columns == ["id", "received_ms", "topic", "payload", "reason", "line_ms"]
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 1

    def test_a_file_of_another_schema_version_is_refused(self, tmp_path: Path) -> None:
        import sqlite3

        path = tmp_path / "gt.db"
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 99")
        with pytest.raises(StoreError, match="schema version 99"):
            SqliteStore(path)

    def test_in_memory_paths_are_refused(self) -> None:
        with pytest.raises(ValueError, match="path: ':memory:'"):
            SqliteStore(":memory:")

    def test_a_path_whose_folder_is_missing_is_an_error_not_new_folders(self, tmp_path: Path) -> None:
        missing = tmp_path / "nonexistent" / "dir" / "x.db"
        with pytest.raises(StoreError, match=r"x\.db: cannot open: the folder '.*nonexistent/dir' does not exist"):
            SqliteStore(missing)
        with pytest.raises(StoreError, match="nonexistent/dir' does not exist"):
            open_store(f"sqlite://{missing}")
        assert not (tmp_path / "nonexistent").exists()
        (tmp_path / "file").write_text("")
        with pytest.raises(StoreError, match=r"'.*file' is not a folder"):
            SqliteStore(tmp_path / "file" / "x.db")

    def test_driver_errors_on_unstorable_values_are_refusals_and_roll_back(self, tmp_path: Path) -> None:
        # The series row of a new station is inserted before the refused point: both are rolled back together.
        store = SqliteStore(tmp_path / "gt.db")
        with pytest.raises(WriteRefused, match=r"field buffer\.level") as info:
            store.write([BufferReading(Source("site1", "L1", "NEW"), 0, T0, 2**64)])
        assert isinstance(info.value.__cause__, OverflowError)
        store.write([BufferReading(Source("site1", "L1", "NEW"), 0, T0, 7)])
        assert [p.fields for p in store.last("buffer", station="NEW")] == [{"level": 7}]
        store.close()


# -- the spool ------------------------------------------------------------------------------------------------
def test_spool_appends_fsynced_segments_and_hands_them_back_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", segment_bytes=200)
    for i in range(6):
        spool.append([(f"batch {i}".encode() * 15, i)], "ms")
    assert spool.pending == 6
    assert len(spool.segments()) == 6  # 105-byte bodies and their headers: one per 200-byte segment
    got = []
    while (rec := spool.peek()) is not None:
        got.append((rec.body[:7], rec.points, rec.precision))
        assert spool.peek() == rec  # peeking does not consume
        spool.commit(rec)
    assert got == [(f"batch {i}".encode(), i, "ms") for i in range(6)]
    assert spool.pending == 0
    assert spool.segments() == []
    spool.close()


def test_spool_survives_reopening_mid_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([(b"a", 1), (b"b", 2)], "ms")
    spool.append([(b"c", 3)], "ns")
    first = spool.peek()
    assert first is not None
    spool.commit(first)
    spool.close()
    again = Spool(tmp_path)
    assert again.pending == 2
    records = []
    while (rec := again.peek()) is not None:
        records.append((rec.body, rec.points, rec.precision))
        again.commit(rec)
    assert records == [(b"b", 2, "ms"), (b"c", 3, "ns")]
    again.append([(b"d", 4)], "ms")  # appends after a drained reopen start a fresh segment
    again.close()
    third = Spool(tmp_path)
    rec = third.peek()
    assert rec is not None
    assert rec.body == b"d"
    third.close()


def test_spool_cuts_a_torn_append_off_and_refuses_a_second_user(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([(b"whole", 1)], "ms")
    with pytest.raises(StoreError, match="in use by another process"):
        Spool(tmp_path)
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    with segment.open("ab") as f:
        f.write(b"GTS1\x10\x00")  # a header cut short by a crash
    again = Spool(tmp_path)
    assert again.pending == 1
    rec = again.peek()
    assert rec is not None
    assert rec.body == b"whole"
    assert list((tmp_path / "corrupt").iterdir())
    again.close()


def test_spool_refuses_batches_beyond_its_size_limit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100)
    spool.append([(b"x" * 50, 1)], "ms")
    with pytest.raises(StoreError, match="full"):
        spool.append([(b"x" * 50, 1)], "ms")
    assert spool.pending == 1
    spool.close()


# -- the InfluxDB store through a fake transport --------------------------------------------------------------
class FakeInflux:
    """A transport standing in for InfluxDB: records requests; ``up`` decides whether it answers; ``answer`` what."""

    def __init__(self) -> None:
        self.up = True
        self.answer = HttpResponse(204, b"")
        self.requests: list[HttpRequest] = []
        self.lines: list[str] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if not self.up:
            raise Unavailable(f"{request.method} {request.url}: connection refused")
        if request.url.split("?")[0].endswith("/write") and self.answer.status == 204 and request.body:
            self.lines.extend(gzip.decompress(request.body).decode().split("\n"))
        return self.answer if "/write" in request.url else HttpResponse(200, b'{"results":[{"statement_id":0}]}')

    def close(self) -> None:
        pass


def influx(tmp_path: Path, fake: FakeInflux, **kw: Any) -> InfluxStore:
    return InfluxStore("http://influx.invalid:8086", "gt", spool_dir=tmp_path / "spool", transport=fake, **kw)


def counts(n: int, first: int = 0) -> list[Reading]:
    return [CountsReading(A, 0, T0 + i, i, 0) for i in range(first, first + n)]


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_influx_writes_spool_while_down_and_replay_in_order(tmp_path: Path) -> None:
    fake = FakeInflux()
    store = influx(tmp_path, fake, batch_points=4, backoff_s=(0.01, 0.05))
    assert store.write(counts(3)) is WriteOutcome.WRITTEN
    fake.up = False
    assert store.write(counts(10, first=3)) is WriteOutcome.SPOOLED  # 3 chunks of at most 4 lines
    assert store.write_dead_letters([DeadLetter(T0, "t", b"\x00", "bad")]) is WriteOutcome.SPOOLED
    assert list((tmp_path / "spool").glob("*.seg"))
    health = store.health()
    assert not health.writable
    assert health.spooled_batches == 4
    assert "connection refused" in health.detail
    fake.up = True
    wait_for(lambda: store.spool.pending == 0)
    assert [line.rsplit(" ", 1)[1] for line in fake.lines[:13]] == [str(T0 + i) for i in range(13)]
    assert fake.lines[13].startswith("gigatwin_dead_letters ")
    assert store.counters == (14, 4, 4, 0)
    assert store.write(counts(1, first=20)) is WriteOutcome.WRITTEN
    store.close()


def test_influx_writes_the_line_clock_of_dead_letters_as_an_integer_field_when_known(tmp_path: Path) -> None:
    fake = FakeInflux()
    store = influx(tmp_path, fake)
    store.write_dead_letters([DeadLetter(T0, "t", b"", "r", T0 - 5), DeadLetter(T0, "t", b"", "r")])
    assert f"line_ms={T0 - 5}i" in fake.lines[0]
    assert "line_ms" not in fake.lines[1]  # as letters were written before they carried it
    store.close()


def test_influx_new_writes_queue_behind_the_spool(tmp_path: Path) -> None:
    fake = FakeInflux()
    store = influx(tmp_path, fake, backoff_s=(60.0, 60.0))  # the replay thread waits out the test after one failure
    fake.up = False
    assert store.write(counts(2)) is WriteOutcome.SPOOLED
    wait_for(lambda: any("/write" in r.url for r in fake.requests[1:]))  # the replay thread tried and failed
    fake.up = True
    assert store.write(counts(2, first=2)) is WriteOutcome.SPOOLED  # the server answers, but older batches wait
    store.close()  # close replays what it can, in order
    assert [line.rsplit(" ", 1)[1] for line in fake.lines] == [str(T0 + i) for i in range(4)]
    assert store.spool.pending == 0


def test_influx_spool_survives_a_restart_of_the_process(tmp_path: Path) -> None:
    fake = FakeInflux()
    fake.up = False
    store = influx(tmp_path, fake, timeout_s=0.1)
    assert store.write(counts(5)) is WriteOutcome.SPOOLED
    store.close()  # the server is down: the batch stays on disk
    assert fake.lines == []
    fake.up = True
    again = influx(tmp_path, fake)
    wait_for(lambda: again.spool.pending == 0)
    assert len(fake.lines) == 5
    again.close()


def test_influx_refusals_are_errors_not_spooled(tmp_path: Path) -> None:
    fake = FakeInflux()
    store = influx(tmp_path, fake, batch_points=2)
    fake.answer = HttpResponse(401, b'{"error":"authorization failed"}')
    with pytest.raises(StoreError, match=r"write refused \(401\): authorization failed"):
        store.write(counts(1))
    conflict = b'{"error":"partial write: field type conflict: input field \\"processed\\" on measurement \\"counts\\" is type integer, already exists as type float dropped=2"}'
    fake.answer = HttpResponse(400, conflict)
    with pytest.raises(PartialWriteError, match=r"refused 2 of 2 lines of a chunk \(lines 0, 1 of the write") as info:
        store.write(counts(3))
    assert info.value.lines == (0, 1)
    fake.answer = HttpResponse(404, b'{"error":"database not found: \\"gt\\""}')
    assert store.write(counts(1)) is WriteOutcome.SPOOLED  # a missing database is waited for, not an error
    assert store.spool.pending == 1
    store.close()


def test_influx_sets_aside_a_spooled_batch_the_server_refuses(tmp_path: Path) -> None:
    fake = FakeInflux()
    store = influx(tmp_path, fake, backoff_s=(0.01, 0.05))
    fake.up = False
    store.write(counts(2))
    fake.up = True
    fake.answer = HttpResponse(400, b'{"error":"partial write: unable to parse \'x\': bad dropped=0"}')
    wait_for(lambda: store.counters.batches_rejected == 1)
    assert store.spool.pending == 0
    assert len(list((tmp_path / "spool" / "rejected").iterdir())) == 2  # the batch and its reason
    store.close()


def test_influxql_quotes_identifiers_and_escapes_literals() -> None:
    assert ident('a"b\\c') == '"a\\"b\\\\c"'
    assert literal("it's a \\ path\nnext") == "'it\\'s a \\\\ path\\nnext'"


# -- URLs -----------------------------------------------------------------------------------------------------
def test_open_store_opens_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store(f"sqlite://{tmp_path}/abs.db")
    assert isinstance(absolute, SqliteStore)
    assert absolute.path == tmp_path / "abs.db"
    absolute.close()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rel").mkdir()
    relative = open_store("sqlite:rel/x.db?synchronous=full")
    assert isinstance(relative, SqliteStore)
    assert relative.path == Path("rel/x.db")
    relative.close()
    assert (tmp_path / "rel" / "x.db").exists()


def test_open_store_opens_influx_urls(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Port 9 (discard) on loopback: nothing answers, so open_store cannot create the database now and says so.
    store = open_store(
        "influxdbs://bob:s%40cret@127.0.0.1:9/plant%2Fa?rp=week&batch_points=100&timeout_s=0.5", spool_dir=tmp_path
    )
    assert isinstance(store, InfluxStore)
    assert (store.url, store.database, store.retention_policy, store.batch_points) == (
        "https://127.0.0.1:9",
        "plant/a",
        "week",
        100,
    )
    assert store.write_request(b"").headers["Authorization"] == "Basic Ym9iOnNAY3JldA=="  # bob:s@cret
    assert "cannot make sure database" in caplog.text
    store.close()
    v3 = open_store("influxdb://127.0.0.1:9/gt?flavour=v3&token=abc&timeout_s=0.5", spool_dir=tmp_path / "v3")
    assert isinstance(v3, InfluxStore)
    assert v3.write_request(b"").headers["Authorization"] == "Token abc"
    v3.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gt.db", "no scheme"),
        ("postgres://h/db", "scheme 'postgres' is not sqlite, influxdb or influxdbs"),
        ("sqlite://host/x.db", "host 'host'"),
        ("sqlite:", "path: "),
        ("sqlite:x.db?synchronous=off", "synchronous: 'off'"),
        ("sqlite:x.db?mode=ro", "unknown parameter 'mode'"),
        ("influxdb:///db", "host: missing"),
        ("influxdb://h:99999/db", "port: "),
        ("influxdb://h:8086/", "database: missing"),
        ("influxdb://h:8086/db?flavour=v4", "flavour: 'v4'"),
        ("influxdb://h:8086/db?flavour=v2", "token: InfluxDB 2.x"),
        ("influxdb://u:pw5@h:8086/db?flavour=v3&token=s3cr3t", "username: flavour v3"),
        ("influxdb://h:8086/db?token=s3cr3t", "token: InfluxDB 1.x"),
        ("influxdb://h:8086/db?batch_points=0", "batch_points: must be > 0"),
        ("influxdb://h:8086/db?timeout_s=soon", "timeout_s: 'soon' is not a number"),
        ("influxdb://h:8086/db?verify_tls=maybe", "verify_tls: 'maybe'"),
        ("influxdb://h:8086/db?secret=x&token=s3cr3t", "unknown parameter 'secret'"),
    ],
)
def test_bad_store_urls_name_the_wrong_part(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message) as info:
        open_store(url, spool_dir=tmp_path)
    assert "s3cr3t" not in str(info.value)  # secrets are not echoed
    assert "pw5" not in str(info.value)


def test_the_stores_export_exactly_their_public_names() -> None:
    assert sorted(connectors.stores.__all__) == sorted(
        [
            "Bucket",
            "DeadLetter",
            "Health",
            "InfluxCounters",
            "InfluxStore",
            "MemoryStore",
            "PartialWriteError",
            "SqliteStore",
            "Store",
            "StoreError",
            "StoredForecast",
            "StoredPoint",
            "WriteOutcome",
            "WriteRefused",
            "open_store",
        ]
    )
    for name in connectors.stores.__all__:
        assert getattr(connectors.stores, name).__doc__, f"connectors.stores.{name} has no docstring"


def test_influx_refuses_unstorable_values_before_sending_anything(tmp_path: Path) -> None:
    fake = FakeInflux()
    store = influx(tmp_path, fake, batch_points=2)
    good = counts(5)
    for bad, message in [
        (BufferReading(A, 0, T0, 2**64), r"field buffer\.level: 18446744073709551616 is beyond the 64-bit"),
        (ProcessReading(A, 0, T0, (("t", float("nan"), "u"),)), r"field process\.value of signal 't': nan is not a finite"),
        (StateReading(A, 0, T0, MachineState.DOWN, "HELD", "\ud800", None), r"field state\.reason: '\\ud800' is not valid"),
        (BufferReading(A, 0, 10**13, 1), r"ts: 10000000000000 is beyond the store time range"),
    ]:
        with pytest.raises(WriteRefused, match=message):
            store.write([*good, bad])  # the refused reading comes after three chunks' worth of good ones
    assert fake.requests == []  # nothing of a refused write was sent
    store.close()


def test_no_password_or_token_in_store_messages_logs_or_reprs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secrets = ("pw-S3cret", "tok-S3cret")
    caplog.set_level("DEBUG")
    seen: list[str] = []
    with pytest.raises(ValueError, match="give the server's address only") as info:
        InfluxStore("http://u:pw-S3cret@h:8086", "gt", spool_dir=tmp_path / "x", username="u", password="pw-S3cret")
    seen.append(str(info.value))
    with pytest.raises(ValueError, match="scheme 'postgres'") as info:
        open_store("postgres://u:pw-S3cret@h/db?token=tok-S3cret")
    seen.append(str(info.value))
    with pytest.raises(ValueError, match=r"token: InfluxDB 1\.x") as info:
        open_store("influxdb://u:pw-S3cret@127.0.0.1:9/db?rp=x&token=tok-S3cret", spool_dir=tmp_path)
    seen.append(str(info.value))
    # Nothing answers on port 9: the store logs, spools and reports health; none of it may show the password.
    store = open_store("influxdb://u:pw-S3cret@127.0.0.1:9/db?timeout_s=0.2", spool_dir=tmp_path / "s1")
    assert store.write(counts(1)) is WriteOutcome.SPOOLED
    seen += [repr(store), str(vars(store).get("url")), store.health().detail]
    store.close()
    fake = FakeInflux()
    v2 = InfluxStore("http://h:8086", "gt", flavour="v2", token="tok-S3cret", spool_dir=tmp_path / "s2", transport=fake)
    fake.answer = HttpResponse(401, b'{"error":"unauthorized"}')
    with pytest.raises(StoreError) as refused:
        v2.write(counts(1))
    seen += [str(refused.value), repr(v2), v2.health().detail]
    v2.close()
    text = "\n".join(seen) + caplog.text
    assert not [s for s in secrets if s in text], text
