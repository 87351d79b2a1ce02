"""The telemetry contract: MQTT topics and JSON payloads, and the only place the wire format lives.

Topics follow a Unified-Namespace hierarchy, ``{prefix}/{site}/{line}/{station}/{channel}``. Payloads are
JSON objects with a schema version ``v``, a source timestamp ``ts`` (ms since the Unix epoch, UTC) and an
optional ``machine`` (index of the parallel machine within the station, default 0). Every message decodes to
a typed :data:`Reading` or raises :class:`TelemetryError` with a reason; :func:`reading_events` turns
readings into the twin's event vocabulary. ``docs/telemetry.md`` is the human-readable form of this module.

Lines as plants run them need nothing beyond version 1's fields: a state's ``reason`` carries why (a SETUP's
changeover, a PLANNED_STOP's ``off_shift``, ``break``, ``holiday`` or planned stop name, a merge station's short
input when STARVED, a failure mode when DOWN); a storage step's faults are ``state`` messages whose ``machine`` is
the failure mode's index; a merge station's inputs are the buffers after the stations feeding it, each on its
upstream station's ``buffer`` topic. A version 1 payload decodes as it always did.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from twin.counters import CumulativeCounters
from twin.events import (
    BufferLevel,
    Event,
    MachineState,
    ProcessValue,
    StateChanged,
    StoreOccupancy,
    UnitsCompleted,
    UnitsReleased,
)

__all__ = [
    "INT64_MAX",
    "MAX_DEPTH",
    "MAX_NAME_LEN",
    "MAX_TS_MS",
    "MS_PER_HOUR",
    "SCHEMA_VERSION",
    "BufferReading",
    "Channel",
    "CountsReading",
    "EventReadings",
    "InputReading",
    "ProcessReading",
    "Reading",
    "Source",
    "StateReading",
    "StoreReading",
    "TelemetryError",
    "Topics",
    "channel_of",
    "decode",
    "encode",
    "from_packml",
    "reading_events",
    "storable_text",
    "to_packml",
]

SCHEMA_VERSION = 1
"""The payload schema's major version; a message of another major version is rejected."""
MS_PER_HOUR = 3_600_000


class Channel(StrEnum):
    """What a message is about (the last topic level)."""

    STATE = "state"
    """A machine's state (PackML where it applies) with a reason or fault code."""
    COUNTS = "counts"
    """A machine's cumulative good and defective counters (PackTags ProdProcessedCount / ProdDefectiveCount)."""
    PROCESS = "process"
    """Named process values with units (speed, temperatures, tension, dew point, vibration, OCV ...)."""
    BUFFER = "buffer"
    """The level of the buffer after the station (a merge station's inputs: the buffers after the stations feeding it)."""
    STORE = "store"
    """A storage step's occupancy: units dwelling, units ready but held at its exit, intake blocked."""
    INPUT = "input"
    """Units released into the line, into every branch start together, published on its first station's topic
    (cumulative, PackTags ProdConsumedCount)."""


class TelemetryError(ValueError):
    """A message that does not follow the contract; ``reason`` says what and where."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# -- PackML -------------------------------------------------------------------------------------------------
# PackML (ISA-TR88.00.02) states and what they mean for the twin. STARVED and BLOCKED are the common
# extensions for line-side waiting; the twin's own names are accepted too, so a gateway may send either.
_PACKML: dict[str, MachineState] = {
    "EXECUTE": MachineState.WORKING,
    "IDLE": MachineState.STARVED,  # ready and waiting for material or a start
    "STARVED": MachineState.STARVED,
    "BLOCKED": MachineState.BLOCKED,
    "SUSPENDED": MachineState.STARVED,  # external condition; BLOCKED when the reason names the downstream side
    "SUSPENDING": MachineState.STARVED,
    "UNSUSPENDING": MachineState.STARVED,
    "HELD": MachineState.DOWN,  # internal fault, waits for intervention
    "HOLDING": MachineState.DOWN,
    "UNHOLDING": MachineState.DOWN,
    "ABORTED": MachineState.DOWN,
    "ABORTING": MachineState.DOWN,
    "CLEARING": MachineState.DOWN,
    "STOPPED": MachineState.PLANNED_STOP,
    "STOPPING": MachineState.PLANNED_STOP,
    "STARTING": MachineState.SETUP,
    "RESETTING": MachineState.SETUP,
    "COMPLETING": MachineState.SETUP,
    "COMPLETE": MachineState.SETUP,
    "WORKING": MachineState.WORKING,
    "DOWN": MachineState.DOWN,
    "SETUP": MachineState.SETUP,
    "PLANNED_STOP": MachineState.PLANNED_STOP,
}
_TO_PACKML: dict[MachineState, str] = {
    MachineState.WORKING: "EXECUTE",
    MachineState.STARVED: "STARVED",
    MachineState.BLOCKED: "BLOCKED",
    MachineState.DOWN: "HELD",
    MachineState.SETUP: "SETUP",
    MachineState.PLANNED_STOP: "STOPPED",
}
_SUSPENDED = frozenset({"SUSPENDED", "SUSPENDING", "UNSUSPENDING"})


def from_packml(state: str, reason: str = "") -> MachineState:
    """The twin's state for a PackML state name (or a twin state name); ``reason`` tells a SUSPENDED machine's side.

    A SUSPENDED machine is BLOCKED when its reason starts with "block", "downstream" or "full", else STARVED.
    """
    mapped = _PACKML.get(state.upper())
    if mapped is None:
        raise TelemetryError(f"state: {_show(state)} is neither a PackML state nor a twin state ({', '.join(sorted(_PACKML))})")
    if state.upper() in _SUSPENDED and reason.lower().startswith(("block", "downstream", "full")):
        return MachineState.BLOCKED
    return mapped


def to_packml(state: MachineState) -> str:
    """The state name published for a twin state: PackML where it has one, else the twin's extension name."""
    return _TO_PACKML[state]


# -- topics -------------------------------------------------------------------------------------------------
class Source(NamedTuple):
    """Where a message comes from: a station of a line of a site."""

    site: str
    line: str
    station: str


_BAD_LEVEL = frozenset("+#/\x00")
_CHANNELS = {c.value: c for c in Channel}
_MAX_TOPICS = 100_000


def _check_level(name: str, value: str) -> str:
    if not value or any(c in _BAD_LEVEL for c in value):
        raise ValueError(f"{name} {value!r} cannot be a topic level (empty, or contains + # / or NUL)")
    return value


@dataclass(frozen=True)
class Topics:
    """The topic scheme of one line: ``{prefix}/{site}/{line}/{station}/{channel}``.

    ``prefix`` may have several levels (``acme/eu``).
    """

    prefix: str
    site: str
    line: str
    _parsed: dict[str, tuple[Source, Channel]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for part in self.prefix.split("/"):
            _check_level("prefix level", part)
        _check_level("site", self.site)
        _check_level("line", self.line)

    @property
    def base(self) -> str:
        """The topic levels common to every station of the line."""
        return f"{self.prefix}/{self.site}/{self.line}"

    def topic(self, station: str, channel: Channel) -> str:
        """The topic a station publishes a channel on."""
        return f"{self.prefix}/{self.site}/{self.line}/{station}/{channel.value}"

    def subscription(self, share_group: str | None = None) -> str:
        """The filter for every station and channel of the line; with ``share_group`` an MQTT v5 shared subscription."""
        plain = f"{self.prefix}/{self.site}/{self.line}/+/+"
        return f"$share/{_check_level('share group', share_group)}/{plain}" if share_group else plain

    def parse(self, topic: str) -> tuple[Source, Channel]:
        """The source and channel of a topic of this line, or :class:`TelemetryError` saying why not."""
        # A line has a few hundred topics and every message names one: remember the good ones.
        known = self._parsed.get(topic)
        if known is not None:
            return known
        parsed = self._parse(topic)
        if len(self._parsed) < _MAX_TOPICS:
            self._parsed[topic] = parsed
        return parsed

    def _parse(self, topic: str) -> tuple[Source, Channel]:
        base = self.base
        if not topic.startswith(base + "/"):
            raise TelemetryError(f"topic {topic!r}: not under {base!r}")
        rest = topic[len(base) + 1 :].split("/")
        if len(rest) != 2 or not rest[0]:
            raise TelemetryError(f"topic {topic!r}: expected {base}/<station>/<channel>")
        channel = _CHANNELS.get(rest[1])
        if channel is None:
            raise TelemetryError(f"topic {topic!r}: unknown channel {rest[1]!r} (one of {', '.join(_CHANNELS)})")
        return Source(self.site, self.line, rest[0]), channel


# -- readings: decoded messages -----------------------------------------------------------------------------
class StateReading(NamedTuple):
    """A machine entered ``state`` (``packml``: the state name as sent) at ``ts_ms``, for ``reason`` / fault ``code``.

    On a storage step, ``machine`` is the index of the failure mode a fault (DOWN) or its repair (WORKING) is of."""

    source: Source
    machine: int
    ts_ms: int
    state: MachineState
    packml: str
    reason: str
    code: int | None


class CountsReading(NamedTuple):
    """A machine's cumulative counters at ``ts_ms``: units processed (good + defective) and defective."""

    source: Source
    machine: int
    ts_ms: int
    processed: int
    defective: int


class ProcessReading(NamedTuple):
    """Process values of a machine at ``ts_ms``: ``(name, value, unit)`` triples."""

    source: Source
    machine: int
    ts_ms: int
    values: tuple[tuple[str, float, str], ...]


class BufferReading(NamedTuple):
    """The buffer after the station held ``level`` units at ``ts_ms``."""

    source: Source
    machine: int
    ts_ms: int
    level: int


class StoreReading(NamedTuple):
    """A storage step's occupancy at ``ts_ms``."""

    source: Source
    machine: int
    ts_ms: int
    dwelling: int
    held: int
    intake_blocked: bool


class InputReading(NamedTuple):
    """Units released into the line so far (cumulative) at ``ts_ms``."""

    source: Source
    machine: int
    ts_ms: int
    consumed: int


Reading = StateReading | CountsReading | ProcessReading | BufferReading | StoreReading | InputReading
"""Any decoded telemetry message."""

_CHANNEL_OF: dict[type, Channel] = {
    StateReading: Channel.STATE,
    CountsReading: Channel.COUNTS,
    ProcessReading: Channel.PROCESS,
    BufferReading: Channel.BUFFER,
    StoreReading: Channel.STORE,
    InputReading: Channel.INPUT,
}


def channel_of(reading: Reading) -> Channel:
    """The channel a reading travels on."""
    return _CHANNEL_OF[type(reading)]


# -- decoding -----------------------------------------------------------------------------------------------
INT64_MAX = 2**63 - 1
"""The largest integer any store holds (SQLite INTEGER, InfluxDB ``i`` fields): larger ones are refused."""
MAX_TS_MS = INT64_MAX // 1_000_000
"""The latest source timestamp a store can hold (InfluxDB keeps nanoseconds in 64 bits: year 2262)."""
MAX_DEPTH = 16
"""Payloads nest no deeper than this (the contract needs 3 levels; gateways' extra fields get some room)."""
MAX_NAME_LEN = 128
"""A process value's name (a tag in the store) is at most this long."""
_INT64_MIN = -(2**63)
# C0 controls and DEL: never in a name or unit (they become tags); escaped wherever text is echoed in a reason.
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_ESCAPE_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}


def storable_text(text: str, limit: int = 300) -> str:
    """``text`` as any store can hold it: lone surrogates and control characters escaped, cut to ``limit`` characters."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if _CONTROL.search(text) is not None:
        text = text.translate(_ESCAPE_CONTROL)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: object) -> str:
    """A value echoed in a reason: its repr (which escapes surrogates and controls), cut short."""
    return storable_text(repr(value), 80)


def _int(obj: dict[str, Any], key: str, default: int | None = None, low: int = 0, high: int = INT64_MAX) -> int:
    value = obj.get(key, default)
    if value is None:
        raise TelemetryError(f"payload.{key}: missing")
    if type(value) is not int:  # bool is an int subclass and is refused too
        raise TelemetryError(f"payload.{key}: expected an integer, got {_show(value)}")
    if value < low:
        raise TelemetryError(f"payload.{key}: must be >= {low}, got {_show(value)}")
    if value > high:
        raise TelemetryError(f"payload.{key}: must be <= {high}, got {_show(value)} (beyond what a store holds)")
    return value


def _unicode(value: str, where: str) -> str:
    """``value`` if it is valid Unicode (no lone surrogate, which no UTF-8 store can hold), else TelemetryError."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise TelemetryError(
                f"{where}: not valid Unicode (lone surrogate {_show(value[exc.start : exc.end])} at index {exc.start})"
            ) from None
    return value


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise TelemetryError(f"payload.{key}: expected a string, got {_show(value)}")
    return _unicode(value, f"payload.{key}")


def _check_depth(obj: dict[str, Any]) -> None:
    """TelemetryError if containers nest deeper than MAX_DEPTH (walked without recursion)."""
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise TelemetryError(f"payload: nested deeper than {MAX_DEPTH} levels")
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))


_GOOD_NAMES: set[str] = set()
_GOOD_UNITS: set[str] = set()
_GOOD_MAX = 10_000  # bounded: a flood of new names must not grow them (cleared when full)


def _check_name(name: object, i: int) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LEN or _CONTROL.search(name) is not None:
        raise TelemetryError(
            f"payload.values[{i}].name: expected a non-empty string of at most {MAX_NAME_LEN} characters"
            f" without control characters, got {_show(name)}"
        )
    _unicode(name, f"payload.values[{i}].name")
    if len(_GOOD_NAMES) >= _GOOD_MAX:
        _GOOD_NAMES.clear()
    _GOOD_NAMES.add(name)


def _check_unit(unit: object, i: int) -> None:
    if not isinstance(unit, str) or _CONTROL.search(unit) is not None:
        raise TelemetryError(f"payload.values[{i}].unit: expected a string without control characters, got {_show(unit)}")
    _unicode(unit, f"payload.values[{i}].unit")
    if len(_GOOD_UNITS) >= _GOOD_MAX:
        _GOOD_UNITS.clear()
    _GOOD_UNITS.add(unit)


def decode(source: Source, channel: Channel, payload: bytes | str) -> Reading:
    """The reading a payload carries, or :class:`TelemetryError` naming the field and what is wrong.

    Whatever the payload, nothing else is raised: values no store can hold (integers beyond 64 bits or the
    field's range, lone surrogates, nesting deeper than :data:`MAX_DEPTH`) are refused with the field's name.
    """
    try:
        return _decode(source, channel, payload)
    except TelemetryError:
        raise
    except RecursionError:  # the JSON parser recurses once per level: 100,000 "[" get here
        raise TelemetryError(f"payload: nested deeper than {MAX_DEPTH} levels") from None
    except Exception as exc:  # a case no check foresaw must still end as a reason, never stop the consumer
        raise TelemetryError(f"payload: cannot be decoded ({type(exc).__name__}: {storable_text(str(exc), 200)})") from None


def _decode(source: Source, channel: Channel, payload: bytes | str) -> Reading:
    try:
        # Decoding first spares json.loads its guess of the encoding: the contract says UTF-8.
        text = payload.decode() if isinstance(payload, bytes) else payload
        obj = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TelemetryError(f"payload: not JSON ({storable_text(str(exc), 200)})") from None
    if not isinstance(obj, dict):
        raise TelemetryError(f"payload: expected a JSON object, got {type(obj).__name__}")
    # Deep nesting needs at least as many brackets: count them (fast) before walking the object.
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(obj)
    version = obj.get("v")
    if version != SCHEMA_VERSION or type(version) is not int:
        raise TelemetryError(f"payload.v: schema version {_show(version)} is not {SCHEMA_VERSION}")
    ts = _int(obj, "ts", low=1, high=MAX_TS_MS)
    machine = _int(obj, "machine", 0)
    if channel is Channel.STATE:
        raw = obj.get("state")
        if not isinstance(raw, str):
            raise TelemetryError(f"payload.state: expected a state name, got {_show(raw)}")
        reason = _str(obj, "reason")
        code = obj.get("code")
        if code is not None and type(code) is not int:
            raise TelemetryError(f"payload.code: expected an integer fault code, got {_show(code)}")
        if code is not None and not _INT64_MIN <= code <= INT64_MAX:
            raise TelemetryError(f"payload.code: {_show(code)} is beyond a 64-bit integer")
        return StateReading(source, machine, ts, from_packml(raw, reason), raw.upper(), reason, code)
    if channel is Channel.COUNTS:
        processed = _int(obj, "ProdProcessedCount")
        defective = _int(obj, "ProdDefectiveCount")
        if defective > processed:
            raise TelemetryError(f"payload.ProdDefectiveCount: {defective} exceeds ProdProcessedCount {processed}")
        return CountsReading(source, machine, ts, processed, defective)
    if channel is Channel.PROCESS:
        raw_values = obj.get("values")
        if not isinstance(raw_values, list) or not raw_values:
            raise TelemetryError("payload.values: expected a non-empty list of {name, value, unit}")
        values: list[Any] = []  # of (name, value, unit), each checked below
        good_names, good_units = _GOOD_NAMES, _GOOD_UNITS
        for i, item in enumerate(raw_values):
            if type(item) is not dict:
                raise TelemetryError(f"payload.values[{i}]: expected an object, got {_show(item)}")
            name, value, unit = item.get("name"), item.get("value"), item.get("unit", "")
            # A plant sends the same few names and units again and again: check each once.
            if type(name) is not str or name not in good_names:
                _check_name(name, i)
            tv = type(value)
            if tv is float:
                number: float = value  # type: ignore[assignment]  # checked just above
            elif tv is int:
                try:
                    number = float(value)  # type: ignore[arg-type]  # checked just above
                except OverflowError:
                    raise TelemetryError(f"payload.values[{i}].value: {_show(value)} is beyond the range of a float") from None
            else:
                raise TelemetryError(f"payload.values[{i}].value: expected a finite number, got {_show(value)}")
            if not math.isfinite(number):
                raise TelemetryError(f"payload.values[{i}].value: expected a finite number, got {_show(value)}")
            if type(unit) is not str or unit not in good_units:
                _check_unit(unit, i)
            values.append((name, number, unit))
        return ProcessReading(source, machine, ts, tuple(values))
    if channel is Channel.BUFFER:
        return BufferReading(source, machine, ts, _int(obj, "level"))
    if channel is Channel.STORE:
        blocked = obj.get("intake_blocked", False)
        if not isinstance(blocked, bool):
            raise TelemetryError(f"payload.intake_blocked: expected true or false, got {_show(blocked)}")
        return StoreReading(source, machine, ts, _int(obj, "dwelling"), _int(obj, "held"), blocked)
    return InputReading(source, machine, ts, _int(obj, "ProdConsumedCount"))


# -- encoding -----------------------------------------------------------------------------------------------
def encode(reading: Reading) -> bytes:
    """The JSON payload of a reading (compact; ``machine`` left out when 0)."""
    obj: dict[str, Any] = {"v": SCHEMA_VERSION, "ts": reading.ts_ms}
    if reading.machine:
        obj["machine"] = reading.machine
    if isinstance(reading, StateReading):
        obj["state"] = reading.packml
        if reading.reason:
            obj["reason"] = reading.reason
        if reading.code is not None:
            obj["code"] = reading.code
    elif isinstance(reading, CountsReading):
        obj["ProdProcessedCount"] = reading.processed
        obj["ProdDefectiveCount"] = reading.defective
    elif isinstance(reading, ProcessReading):
        obj["values"] = [{"name": n, "value": v, "unit": u} for n, v, u in reading.values]
    elif isinstance(reading, BufferReading):
        obj["level"] = reading.level
    elif isinstance(reading, StoreReading):
        obj["dwelling"] = reading.dwelling
        obj["held"] = reading.held
        obj["intake_blocked"] = reading.intake_blocked
    else:
        obj["ProdConsumedCount"] = reading.consumed
    return json.dumps(obj, separators=(",", ":")).encode()


# -- readings to events -------------------------------------------------------------------------------------
def reading_events(reading: Reading, counters: CumulativeCounters) -> Iterator[Event]:
    """The twin events a reading means. Cumulative counters become increments through ``counters``
    (which remembers each machine's last value and detects resets); a reading that adds nothing yields nothing."""
    t = reading.ts_ms / MS_PER_HOUR
    station = reading.source.station
    if isinstance(reading, StateReading):
        yield StateChanged(t, station, reading.machine, reading.state, reading.reason)
    elif isinstance(reading, CountsReading):
        processed, defective = counters.update((station, reading.machine), reading.ts_ms, (reading.processed, reading.defective))
        if processed:
            yield UnitsCompleted(t, station, reading.machine, processed - defective, defective)
    elif isinstance(reading, ProcessReading):
        for name, value, unit in reading.values:
            yield ProcessValue(t, station, reading.machine, name, value, unit)
    elif isinstance(reading, BufferReading):
        yield BufferLevel(t, station, reading.level)
    elif isinstance(reading, StoreReading):
        yield StoreOccupancy(t, station, reading.dwelling, reading.held, reading.intake_blocked)
    else:
        (consumed,) = counters.update((station, "input"), reading.ts_ms, (reading.consumed,))
        if consumed:
            yield UnitsReleased(t, consumed)


# -- events to readings (what a plant publishes) ------------------------------------------------------------
class EventReadings:
    """Turns the twin's events into the readings a plant's gateways publish: the virtual plant's encoder.

    Engine time ``t`` (hours) maps to ``origin_ms + t`` hours on the wall clock. Completions become
    cumulative counters per machine, units released (into every branch start) become the first station's
    cumulative input counter. State changes keep their reasons, and a store's faults their failure mode's index as
    the machine. Loaded units are not published (no KPI needs them).
    """

    def __init__(self, site: str, line: str, first_station: str, origin_ms: int) -> None:
        self.site, self.line, self.first = site, line, first_station
        self.origin_ms = origin_ms
        self._sources: dict[str, Source] = {}
        self._counts: dict[tuple[str, int], list[int]] = {}
        self._consumed = 0

    def source(self, station: str) -> Source:
        """The source of a station's messages."""
        src = self._sources.get(station)
        if src is None:
            src = self._sources[station] = Source(self.site, self.line, station)
        return src

    def ts_ms(self, t: float) -> int:
        """The source timestamp of engine time ``t`` (hours)."""
        return self.origin_ms + round(t * MS_PER_HOUR)

    def counters(self, station: str, machines: int, t: float) -> list[Reading]:
        """The current counters of every machine of a station (zeros before anything was made)."""
        ts = self.ts_ms(t)
        out: list[Reading] = []
        for m in range(machines):
            processed, defective = self._counts.setdefault((station, m), [0, 0])
            out.append(CountsReading(self.source(station), m, ts, processed, defective))
        if station == self.first:
            out.append(InputReading(self.source(station), 0, ts, self._consumed))
        return out

    def __call__(self, ev: Event) -> Reading | None:
        """The reading an event publishes, or None for events that are not published."""
        if isinstance(ev, StateChanged):
            return StateReading(
                self.source(ev.station), ev.machine, self.ts_ms(ev.t), ev.state, to_packml(ev.state), ev.reason, None
            )
        if isinstance(ev, UnitsCompleted):
            c = self._counts.setdefault((ev.station, ev.machine), [0, 0])
            c[0] += ev.good + ev.scrap
            c[1] += ev.scrap
            return CountsReading(self.source(ev.station), ev.machine, self.ts_ms(ev.t), c[0], c[1])
        if isinstance(ev, BufferLevel):
            return BufferReading(self.source(ev.station), 0, self.ts_ms(ev.t), ev.level)
        if isinstance(ev, StoreOccupancy):
            return StoreReading(self.source(ev.station), 0, self.ts_ms(ev.t), ev.dwelling, ev.held, ev.intake_blocked)
        if isinstance(ev, UnitsReleased):
            self._consumed += ev.units
            return InputReading(self.source(self.first), 0, self.ts_ms(ev.t), self._consumed)
        if isinstance(ev, ProcessValue):
            return ProcessReading(self.source(ev.station), ev.machine, self.ts_ms(ev.t), ((ev.name, ev.value, ev.unit),))
        return None
