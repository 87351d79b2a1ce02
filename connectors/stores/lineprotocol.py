"""Readings and dead letters as InfluxDB line protocol, in the encoding of ``influxdb_client.Point`` (escaping, ``3i``
integers, fields sorted by name, whole floats without ``.0``).

Measurements are the channel names; tags site, line, station, machine (and signal for process points); fields as
in :data:`connectors.stores.points.CHANNEL_FIELDS`. Dead letters go to their own measurement with the payload in
base64, and with nanosecond timestamps whose sub-millisecond digits keep letters of the same millisecond apart.
"""

from __future__ import annotations

import base64
import itertools
import random
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from influxdb_client.client.write.point import Point as _Point
from influxdb_client.domain.write_precision import WritePrecision

from connectors.stores.base import DeadLetter, FieldValue, StoredForecast, WriteRefused
from connectors.stores.forecasts import FORECASTS, check_record
from connectors.stores.points import CHANNEL_FIELDS, INT64_MAX, INT64_MIN, clean_text, point_rows, refusal
from connectors.telemetry import Channel, Reading

__all__ = [
    "DEAD_LETTERS",
    "HEALTH",
    "MAX_TS_MS",
    "DeadLetterEncoder",
    "encode_forecasts",
    "encode_readings",
    "health_line",
    "refused_lines",
]

DEAD_LETTERS = "gigatwin_dead_letters"
"""The measurement of dead letters (fields topic, payload as base64, reason and, when known, line_ms, an integer; no
tags)."""
HEALTH = "gigatwin_health"
"""The measurement health probes write to."""
_PROCESS = Channel.PROCESS.value
MAX_TS_MS = INT64_MAX // 1_000_000
"""The latest source timestamp InfluxDB holds (it counts nanoseconds in 64 bits): in the year 2262."""
_MIN_TS_MS = INT64_MIN // 1_000_000 + 1
# influxdb_client's Point is not annotated; typed as returning Any, its builder methods need no ignores below.
_point: Callable[[str], Any] = _Point
# Point's escaping (influxdb_client.client.write.point): of tag and field keys, and of string field values.
_ESCAPE_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})


_SERIES_CACHE_MAX = 100_000
_SENTINEL = " f=1i"
# A series' measurement and tag set, as Point encodes them, by (channel, site, line, station, machine, signal).
_series_keys: dict[tuple[str, str, str, str, str, str], str] = {}


def _series_key(channel: str, site: str, line: str, station: str, machine: str, signal: str) -> str:
    """The escaped ``measurement,tag=value,...`` of a series: encoded by Point once, then reused for every point."""
    cache_key = (channel, site, line, station, machine, signal)
    key = _series_keys.get(cache_key)
    if key is None:
        p = _point(channel).tag("site", site).tag("line", line).tag("station", station).tag("machine", machine)
        if channel == _PROCESS:
            p.tag("signal", signal)
        encoded: str = p.field("f", 1).to_line_protocol()
        key = encoded[: -len(_SENTINEL)]
        if len(_series_keys) >= _SERIES_CACHE_MAX:  # bounded: the plant's series are far fewer
            _series_keys.clear()
        _series_keys[cache_key] = key
    return key


# Per channel, its fields in the order Point writes them (by name): (index in storage order, escaped "key=").
_FIELD_ORDER: dict[str, tuple[tuple[int, str], ...]] = {
    channel: tuple(
        sorted(((i, spec.name.translate(_ESCAPE_KEY) + "=") for i, spec in enumerate(specs)), key=lambda f: specs[f[0]].name)
    )
    for channel, specs in CHANNEL_FIELDS.items()
}


def _field_value(value: FieldValue) -> str:
    """A field value as Point writes it (the caller has refused NaN, infinities and integers beyond 64 bits)."""
    t = type(value)
    if t is float:
        s = repr(value)
        return s[:-2] if s.endswith(".0") else s  # a whole number as Point writes it: "3", not "3.0"
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return f"{value}i"
    if t is str:
        return '"' + value.translate(_ESCAPE_STRING) + '"'  # type: ignore[union-attr]  # checked just above
    raise TypeError(f"a field value of type {t.__name__} has no line-protocol form: {value!r}")


def encode_readings(readings: Sequence[Reading], batch_points: int) -> Iterator[list[str]]:
    """The readings' points as line-protocol lines (millisecond timestamps), in chunks of at most ``batch_points``.

    WriteRefused, naming the field, for a value InfluxDB cannot hold and Point would encode wrongly: an integer
    beyond 64 bits (an invalid ``...i``), a NaN or infinity (Point leaves the field out), a timestamp past 2262.
    Strings that are not valid Unicode pass here and fail when the chunk is encoded as UTF-8.

    Point encodes each series' tag set once (it is the same for every point of the series); fields and the
    timestamp are written here as Point would (``tests/test_lineprotocol.py`` checks it against Point): 2.4 µs a
    point of the virtual plant's mix against Point's 6.4 µs, in the hottest loop of an InfluxDB write.
    """
    chunk: list[str] = []
    for r in readings:
        channel, rows = point_rows(r)
        specs = CHANNEL_FIELDS[channel]
        src = r.source
        machine = str(r.machine)
        if not (_MIN_TS_MS <= r.ts_ms <= MAX_TS_MS and INT64_MIN <= r.machine <= INT64_MAX):
            raise WriteRefused(refusal(r, max_ts_ms=MAX_TS_MS) or f"ts: {r.ts_ms} is before 1677")
        order = _FIELD_ORDER[channel]
        stamp = f" {r.ts_ms}"
        for signal, values in rows:
            fields = []
            for i, key in order:
                value = values[i]
                if value is None:
                    continue
                # Cheap checks in the hot loop; the reason is worked out only for a refusal.
                if type(value) is float:
                    if value - value != 0.0:  # NaN or an infinity
                        raise WriteRefused(refusal(r) or f"{specs[i].name}: {value!r}")
                elif type(value) is int and not INT64_MIN <= value <= INT64_MAX:
                    raise WriteRefused(refusal(r) or f"{specs[i].name}: {value!r}")
                fields.append(key + _field_value(value))
            line = _series_key(channel, src.site, src.line, src.station, machine, signal) + " " + ",".join(fields) + stamp
            chunk.append(line)
            if len(chunk) >= batch_points:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


class DeadLetterEncoder:
    """Encodes dead letters with nanosecond timestamps ``received_ms * 10**6 + n``, ``n`` a counter modulo 10**6.

    InfluxDB keeps one point per series and timestamp, so two letters of the same millisecond need different
    timestamps. The counter starts at a random value so that two writers (or a restarted one) are unlikely to
    pick the same sub-millisecond digits for the same millisecond.
    """

    def __init__(self) -> None:
        self._counter = itertools.count(random.randrange(1_000_000))

    def encode(self, letters: Sequence[DeadLetter], batch_points: int) -> Iterator[list[str]]:
        """The letters as line-protocol lines (nanosecond timestamps), in chunks of at most ``batch_points``."""
        chunk: list[str] = []
        for d in letters:
            ts_ns = d.received_ms * 1_000_000 + next(self._counter) % 1_000_000
            p = (
                _point(DEAD_LETTERS)
                .field("topic", clean_text(d.topic))
                .field("payload", base64.b64encode(d.payload).decode("ascii"))
                .field("reason", clean_text(d.reason))
                .time(ts_ns, WritePrecision.NS)
            )
            if d.line_ms is not None:
                p.field("line_ms", d.line_ms)  # an int: written as an integer field (``123i``)
            line: str = p.to_line_protocol()
            chunk.append(line)
            if len(chunk) >= batch_points:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def encode_forecasts(records: Sequence[StoredForecast], batch_points: int) -> Iterator[list[str]]:
    """Forecast records as line-protocol lines (millisecond timestamps, tags site and line, the parts given as
    string fields: a point written again at the same time merges its fields into the stored one), in chunks of at
    most ``batch_points``. WriteRefused (from :func:`connectors.stores.forecasts.check_record`) before any line."""
    lines = []
    for r in records:
        forecast, score = check_record(r)
        p = _point(FORECASTS).tag("site", r.site).tag("line", r.line).time(r.as_of_ms, WritePrecision.MS)
        if forecast is not None:
            p.field("forecast", forecast)
        if score is not None:
            p.field("score", score)
        line: str = p.to_line_protocol()
        lines.append(line)
    for i in range(0, len(lines), batch_points):
        yield lines[i : i + batch_points]


def health_line(ts_ms: int) -> str:
    """The point a health probe writes (no tags: one series however often it runs)."""
    line: str = _point(HEALTH).field("ok", True).time(ts_ms, WritePrecision.MS).to_line_protocol()
    return line


# What InfluxDB 1.x says about the lines of a partial write (HTTP 400): the text of each line it could not
# parse, or the first field type conflict (measurement and field; it does not say which lines).
_UNPARSABLE = re.compile(r"unable to parse '(.*?)': [^\n]*?(?=\nunable to parse '|(?: dropped=\d+)?$)", re.S)
_CONFLICT = re.compile(r'field type conflict: input field "(.+?)" on measurement "(.+?)" is type')


def _fields_section(line: str) -> str:
    """The field set of a line: between the first unescaped space (after the tags) and the last (the timestamp)."""
    i = 0
    while True:
        i = line.find(" ", i)
        if i <= 0 or line[i - 1] != "\\":
            break
        i += 1
    return line[i + 1 : line.rfind(" ")] if i > 0 else ""


def refused_lines(server_message: str, lines: Sequence[str]) -> list[int]:
    """The indices of ``lines`` a partial-write message refers to (empty if it names none we can find)."""
    unparsable = {m.group(1) for m in _UNPARSABLE.finditer(server_message)}
    if unparsable:
        return [i for i, line in enumerate(lines) if line in unparsable]
    conflict = _CONFLICT.search(server_message)
    if conflict is None:
        return []
    field, measurement = conflict.group(1), conflict.group(2)
    out = []
    for i, line in enumerate(lines):
        if line.startswith((measurement + ",", measurement + " ")):
            fields = _fields_section(line)
            if fields.startswith(field + "=") or f",{field}=" in fields:
                out.append(i)
    return out
