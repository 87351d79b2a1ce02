"""The line protocol GigaTwin writes to InfluxDB is exactly what ``influxdb_client.Point`` writes for the same point."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

from connectors.stores.base import WriteRefused
from connectors.stores.lineprotocol import encode_readings
from connectors.stores.points import CHANNEL_FIELDS, INT64_MAX, INT64_MIN, point_rows
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

# Names and texts with every character line protocol escapes somewhere (comma, equals, space, quote, backslash,
# newline, tab, carriage return), and any other Unicode.
_NASTY = st.sampled_from([",", "=", " ", '"', "\\", "\n", "\t", "\r", "é", "電"])
texts = st.lists(st.one_of(_NASTY, st.characters(exclude_categories=["Cs"])), max_size=12).map("".join)
names = texts.filter(bool)
ints = st.integers(INT64_MIN, INT64_MAX)
counts = st.integers(0, INT64_MAX)
# Finite floats, whole ones included (Point writes 3.0 as "3"), and the extremes.
floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**6), 10**6).map(float))
sources = st.builds(Source, names, names, names)
stamps = st.integers(-(10**12), 9 * 10**12)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    src, machine, ts = draw(sources), draw(st.integers(0, 64)), draw(stamps)
    kind = draw(st.sampled_from(["state", "counts", "process", "buffer", "store", "input"]))
    if kind == "state":
        code = draw(st.one_of(st.none(), ints))
        return StateReading(src, machine, ts, draw(st.sampled_from(list(MachineState))), draw(texts), draw(texts), code)
    if kind == "counts":
        return CountsReading(src, machine, ts, draw(counts), draw(counts))
    if kind == "process":
        values = draw(st.lists(st.tuples(names, floats, texts), min_size=1, max_size=4))
        return ProcessReading(src, machine, ts, tuple(values))
    if kind == "buffer":
        return BufferReading(src, machine, ts, draw(counts))
    if kind == "store":
        return StoreReading(src, machine, ts, draw(counts), draw(counts), draw(st.booleans()))
    return InputReading(src, machine, ts, draw(counts))


def point_lines(reading: Reading) -> list[str]:
    """What influxdb_client's Point writes for the reading's points (the reference encoding)."""
    channel, rows = point_rows(reading)
    src = reading.source
    out = []
    for signal, values in rows:
        p: Any = Point(channel).tag("site", src.site).tag("line", src.line).tag("station", src.station)
        p.tag("machine", str(reading.machine))
        if channel == "process":
            p.tag("signal", signal)
        for spec, value in zip(CHANNEL_FIELDS[channel], values, strict=True):
            if value is not None:
                p.field(spec.name, value)
        out.append(p.time(reading.ts_ms, WritePrecision.MS).to_line_protocol())
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(readings(), min_size=1, max_size=8), st.integers(1, 5))
def test_lines_are_what_point_writes_in_chunks_of_the_batch_size(batch: list[Reading], batch_points: int) -> None:
    expected = [line for r in batch for line in point_lines(r)]
    chunks = list(encode_readings(batch, batch_points))
    assert [line for chunk in chunks for line in chunk] == expected
    assert all(1 <= len(chunk) <= batch_points for chunk in chunks)
    assert all(len(chunk) == batch_points for chunk in chunks[:-1])


def test_whole_floats_strings_and_booleans_are_written_as_influxdb_reads_them() -> None:
    src = Source("s", "l", "COAT")
    (line,) = next(encode_readings([ProcessReading(src, 0, 5, (("speed", 3.0, 'm"/s\\'),))], 10))
    assert line == 'process,line=l,machine=0,signal=speed,site=s,station=COAT unit="m\\"/s\\\\",value=3 5'
    (line,) = next(encode_readings([StoreReading(src, 1, 7, 2, 0, True)], 10))
    assert line == "store,line=l,machine=1,site=s,station=COAT dwelling=2i,held=0i,intake_blocked=true 7"


@pytest.mark.parametrize(
    ("reading", "field"),
    [
        (ProcessReading(Source("s", "l", "COAT"), 0, 5, (("speed", float("nan"), ""),)), "value"),
        (ProcessReading(Source("s", "l", "COAT"), 0, 5, (("speed", float("inf"), ""),)), "value"),
        (CountsReading(Source("s", "l", "COAT"), 0, 5, 1 << 64, 0), "processed"),
    ],
)
def test_values_influxdb_cannot_hold_are_refused_naming_the_field(reading: Reading, field: str) -> None:
    with pytest.raises(WriteRefused, match=field):
        list(encode_readings([reading], 10))
