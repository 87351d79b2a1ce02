"""How readings become points, whatever the database: the fields of each channel and the tags of each series.

Tags: site, line, station, machine, and signal for process points. Their cardinality is bounded by the plant (never
timestamps, unit ids or values). Fields per channel are listed in :data:`CHANNEL_FIELDS` in the order adapters
store them; :func:`point_rows` gives a reading's points as (signal, field values in that order).

What no store can hold is refused, with the field named (:func:`refusal`): integers beyond 64 bits, NaN and
infinities, strings that are not valid Unicode (a lone surrogate from a JSON ``\\ud800`` escape).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

from connectors.stores.base import FieldValue, StoredPoint
from connectors.telemetry import (
    BufferReading,
    Channel,
    CountsReading,
    InputReading,
    ProcessReading,
    Reading,
    StateReading,
    StoreReading,
)

__all__ = [
    "CHANNELS",
    "CHANNEL_FIELDS",
    "INT64_MAX",
    "INT64_MIN",
    "FieldSpec",
    "PointRow",
    "check_channel",
    "check_numeric_field",
    "clean_text",
    "fields_of",
    "first_refusal",
    "point_rows",
    "refusal",
    "series_order",
    "time_order",
]

INT64_MIN = -(1 << 63)
"""The smallest integer a store holds (SQLite INTEGER, InfluxDB integer fields)."""
INT64_MAX = (1 << 63) - 1
"""The largest integer a store holds."""


class FieldSpec(NamedTuple):
    """A field of a channel's points: its name, its Python type, and whether a point may lack it."""

    name: str
    kind: type
    optional: bool = False


CHANNEL_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    Channel.STATE.value: (
        FieldSpec("state", str),
        FieldSpec("packml", str),
        FieldSpec("reason", str),
        FieldSpec("code", int, True),
    ),
    Channel.COUNTS.value: (FieldSpec("processed", int), FieldSpec("defective", int)),
    Channel.PROCESS.value: (FieldSpec("value", float), FieldSpec("unit", str)),
    Channel.BUFFER.value: (FieldSpec("level", int),),
    Channel.STORE.value: (FieldSpec("dwelling", int), FieldSpec("held", int), FieldSpec("intake_blocked", bool)),
    Channel.INPUT.value: (FieldSpec("consumed", int),),
}
"""The fields of each channel's points, in storage order."""

CHANNELS: tuple[str, ...] = tuple(CHANNEL_FIELDS)
"""The measurement names: one per telemetry channel."""

PointRow = tuple[str, tuple[FieldValue | None, ...]]
"""One point of a reading: its signal ("" unless process) and its field values in :data:`CHANNEL_FIELDS` order."""


def _state(r: StateReading) -> tuple[PointRow, ...]:
    return (("", (r.state.value, r.packml, r.reason, r.code)),)


def _counts(r: CountsReading) -> tuple[PointRow, ...]:
    return (("", (r.processed, r.defective)),)


def _process(r: ProcessReading) -> tuple[PointRow, ...]:
    return tuple((name, (value, unit)) for name, value, unit in r.values)


def _buffer(r: BufferReading) -> tuple[PointRow, ...]:
    return (("", (r.level,)),)


def _store(r: StoreReading) -> tuple[PointRow, ...]:
    return (("", (r.dwelling, r.held, r.intake_blocked)),)


def _input(r: InputReading) -> tuple[PointRow, ...]:
    return (("", (r.consumed,)),)


_ROWS: dict[type, tuple[str, Callable[..., tuple[PointRow, ...]]]] = {
    StateReading: (Channel.STATE.value, _state),
    CountsReading: (Channel.COUNTS.value, _counts),
    ProcessReading: (Channel.PROCESS.value, _process),
    BufferReading: (Channel.BUFFER.value, _buffer),
    StoreReading: (Channel.STORE.value, _store),
    InputReading: (Channel.INPUT.value, _input),
}


def point_rows(reading: Reading) -> tuple[str, tuple[PointRow, ...]]:
    """The channel of a reading and its points (one per process value, else one)."""
    channel, rows = _ROWS[type(reading)]
    return channel, rows(reading)


def fields_of(channel: str, values: tuple[FieldValue | None, ...]) -> dict[str, FieldValue]:
    """A point's fields by name from its values in storage order; absent optional fields are left out."""
    return {spec.name: v for spec, v in zip(CHANNEL_FIELDS[channel], values, strict=True) if v is not None}


def check_channel(channel: str) -> str:
    """``channel`` if it names a channel, else ValueError naming it."""
    if channel not in CHANNEL_FIELDS:
        raise ValueError(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
    return channel


def check_numeric_field(channel: str, field: str) -> FieldSpec:
    """The spec of a numeric field of ``channel`` (one that can be averaged), else ValueError naming it."""
    numeric = [s for s in CHANNEL_FIELDS[check_channel(channel)] if s.kind in (int, float)]
    for spec in numeric:
        if spec.name == field:
            return spec
    names = ", ".join(s.name for s in numeric)
    raise ValueError(f"field: {field!r} is not a numeric field of channel {channel!r} ({names})")


def time_order(p: StoredPoint) -> tuple[int, str, int, str, str, str]:
    """The order ``range`` returns points in: time, then station, machine, signal (then site, line for ties)."""
    return (p.ts_ms, p.station, p.machine, p.signal, p.site, p.line)


def series_order(p: StoredPoint) -> tuple[str, int, str, str, str]:
    """The order ``last`` returns series in: station, machine, signal, site, line."""
    return (p.station, p.machine, p.signal, p.site, p.line)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text)} characters)"


def _why_not(value: object) -> str | None:
    """Why a store cannot hold this value, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return None
        return f"{_shown(value)} is beyond the 64-bit integer range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r} is not a finite number"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"{_shown(value)} is not valid Unicode ({exc.reason} at character {exc.start})"
    return None


def refusal(reading: Reading, *, max_ts_ms: int = INT64_MAX) -> str | None:
    """Why no store can hold ``reading``, naming the field, or None if it can be stored.

    Refused: an integer beyond 64 bits, a NaN or infinity, a string that is not valid Unicode, in any field or
    tag, and a timestamp beyond ``max_ts_ms`` (InfluxDB counts nanoseconds in 64 bits: about the year 2262).
    """
    channel, rows = point_rows(reading)
    src = reading.source
    where = f"{channel} reading of station {_shown(src.station)} machine {_shown(reading.machine)} at ts {reading.ts_ms}"
    tags: tuple[tuple[str, object], ...] = (
        ("site", src.site),
        ("line", src.line),
        ("station", src.station),
        ("machine", reading.machine),
    )
    for name, tag in tags:
        if (why := _why_not(tag)) is not None:
            return f"{where}: {name}: {why}"
    if (why := _why_not(reading.ts_ms)) is not None or reading.ts_ms > max_ts_ms:
        return f"{where}: ts: {why or f'{reading.ts_ms} is beyond the store time range (max {max_ts_ms})'}"
    for signal, values in rows:
        of = f" of signal {_shown(signal)}" if signal else ""
        if (why := _why_not(signal)) is not None:
            return f"{where}: signal: {why}"
        for spec, value in zip(CHANNEL_FIELDS[channel], values, strict=True):
            if (why := _why_not(value)) is not None:
                return f"{where}: field {channel}.{spec.name}{of}: {why}"
    return None


def first_refusal(readings: Iterable[Reading], *, max_ts_ms: int = INT64_MAX) -> str | None:
    """The :func:`refusal` of the first reading that cannot be stored, or None if all can."""
    for r in readings:
        why = refusal(r, max_ts_ms=max_ts_ms)
        if why is not None:
            return why
    return None


def clean_text(text: str) -> str:
    """``text`` as valid Unicode: lone surrogates become their ``\\udxxx`` escapes (for dead letters, kept whatever
    their topic or reason holds)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
