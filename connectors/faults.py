"""Fault injection between a telemetry source and its publisher, so that receivers can be tested against a bad network.

:class:`FaultInjector` is a :class:`~connectors.publishing.Publisher` wrapped around another. For each message it
makes one seeded draw and applies at most one fault, with the probabilities of :class:`Faults`:

- **drop**: the message is not published;
- **duplicate**: it is published twice in a row;
- **reorder**: it is held back and released after the next 1-3 published messages whose source timestamp is
  later than its own, so a receiver sees it out of timestamp order (held messages still waiting are released by
  :meth:`FaultInjector.flush`);
- **malformed**: its payload is replaced by a broken one of a kind that fits its channel (:class:`Malformation`),
  each of which :func:`connectors.telemetry.decode` rejects with a reason.

Everything done is recorded in a :class:`FaultLog` (counts per kind, and each affected message) so that a test
can check a receiver's accounting exactly. The same seed and the same messages give the same faults.
``Faults.clock_skew_s`` (a gateway whose clock is off) is applied by the message's source before encoding, since
it shifts every timestamp rather than breaking single messages.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np

from connectors.publishing import Publisher
from connectors.telemetry import SCHEMA_VERSION, Channel

__all__ = ["FaultInjector", "FaultKind", "FaultLog", "Faults", "Injected", "Malformation"]


@dataclass(frozen=True)
class Faults:
    """How often each fault happens (probabilities per message, at most one fault per message) and the clock skew."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    malformed: float = 0.0
    clock_skew_s: float = 0.0
    """Added to every source timestamp (positive: the gateway's clock runs ahead)."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "reorder", "malformed"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"Faults.{name}: a probability in [0, 1], got {p}")
        total = self.drop + self.duplicate + self.reorder + self.malformed
        if total > 1.0:
            raise ValueError(f"Faults: drop + duplicate + reorder + malformed is at most 1 (one fault per message), got {total}")
        if not math.isfinite(self.clock_skew_s):
            raise ValueError(f"Faults.clock_skew_s: a finite number of seconds, got {self.clock_skew_s}")

    @property
    def clock_skew_ms(self) -> int:
        """The clock skew in whole milliseconds."""
        return round(self.clock_skew_s * 1000)


class FaultKind(StrEnum):
    """What was done to a message."""

    DROP = "drop"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    MALFORMED = "malformed"


class Malformation(StrEnum):
    """The ways a payload is broken; each fails :func:`connectors.telemetry.decode` with its own reason."""

    NOT_JSON = "not_json"
    TRUNCATED = "truncated"
    """Cut short: a proper prefix of a JSON object is never valid JSON."""
    WRONG_VERSION = "wrong_version"
    MISSING_TS = "missing_ts"
    UNKNOWN_STATE = "unknown_state"
    """State channel only."""
    NEGATIVE_COUNTER = "negative_counter"
    """Counts, input, buffer and store channels: a count below zero."""
    STRING_FOR_NUMBER = "string_for_number"
    """A number sent as a string (a counter, a level, a process value, or the timestamp)."""


_COMMON = (
    Malformation.NOT_JSON,
    Malformation.TRUNCATED,
    Malformation.WRONG_VERSION,
    Malformation.MISSING_TS,
    Malformation.STRING_FOR_NUMBER,
)
_COUNTED_FIELD = {
    Channel.COUNTS: "ProdProcessedCount",
    Channel.INPUT: "ProdConsumedCount",
    Channel.BUFFER: "level",
    Channel.STORE: "dwelling",
}
_UNKNOWN_STATE = "NOT_A_STATE"
_NOT_JSON = b"ERROR gateway buffer overrun"
_TS = re.compile(rb'"ts":(-?\d+)')


def _kinds(channel: Channel | None) -> tuple[Malformation, ...]:
    if channel is Channel.STATE:
        return (*_COMMON, Malformation.UNKNOWN_STATE)
    if channel in _COUNTED_FIELD:
        return (*_COMMON, Malformation.NEGATIVE_COUNTER)
    return _COMMON


def _channel(topic: str) -> Channel | None:
    try:
        return Channel(topic.rsplit("/", 1)[-1])
    except ValueError:
        return None


def _ts(payload: bytes) -> int | None:
    m = _TS.search(payload)
    return int(m.group(1)) if m else None


class Injected(NamedTuple):
    """One fault done to one message: ``payload`` is what was published (malformed: the broken payload), or what
    would have been (dropped); ``original`` is the payload before the fault; ``detail`` the malformation kind, or for
    a reordered message how it was released."""

    kind: FaultKind
    topic: str
    payload: bytes
    original: bytes
    detail: str


class FaultLog:
    """What a :class:`FaultInjector` did: counts per fault kind and per malformation, and each affected message."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        """Per :class:`FaultKind` value, and per ``"malformed/<kind>"``; ``"messages"`` counts the messages seen."""
        self.records: list[Injected] = []
        """Every fault, in the order it was done."""

    def of(self, kind: FaultKind) -> list[tuple[str, bytes]]:
        """The ``(topic, payload)`` of every message that suffered ``kind`` (malformed: the payload published)."""
        return [(r.topic, r.payload) for r in self.records if r.kind is kind]


class FaultInjector:
    """A :class:`~connectors.publishing.Publisher` that passes messages on to ``publisher``, with seeded faults.

    Call :meth:`flush` at the end to release messages still held back for reordering.
    """

    def __init__(self, publisher: Publisher, faults: Faults) -> None:
        self.publisher = publisher
        self.faults = faults
        self.log = FaultLog()
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(faults.seed)))
        # cumulative thresholds of the single per-message draw
        cuts = np.cumsum([faults.drop, faults.duplicate, faults.reorder, faults.malformed]).tolist()
        self._cuts: tuple[float, float, float, float] = (cuts[0], cuts[1], cuts[2], cuts[3])
        self._held: list[list[Any]] = []  # [newer messages still to wait for, ts, topic, payload]

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish ``payload`` on ``topic``, or do one fault to it."""
        log = self.log
        log.counts["messages"] += 1
        u = float(self._rng.random())
        drop, dup, reorder, malformed = self._cuts
        if u < drop:
            self._record(FaultKind.DROP, topic, payload, payload, "")
            return
        if u < dup:
            self._record(FaultKind.DUPLICATE, topic, payload, payload, "")
            self.publisher.publish(topic, payload)
            self.publisher.publish(topic, payload)
        elif u < reorder:
            wait = int(self._rng.integers(1, 4))
            self._held.append([wait, _ts(payload), topic, payload])
            self._record(FaultKind.REORDER, topic, payload, payload, f"held for {wait} newer messages")
            return
        elif u < malformed:
            broken, how = self._malform(topic, payload)
            self._record(FaultKind.MALFORMED, topic, broken, payload, how.value)
            log.counts[f"malformed/{how.value}"] += 1
            self.publisher.publish(topic, broken)
            return  # a receiver cannot read its timestamp, so it does not count towards releasing held messages
        else:
            self.publisher.publish(topic, payload)
        if self._held:
            self._release(_ts(payload))

    def flush(self) -> None:
        """Publish every message still held back, in the order they were held."""
        held, self._held = self._held, []
        for _wait, _t, topic, payload in held:
            self._mark_flushed(topic, payload)
            self.publisher.publish(topic, payload)

    # -- helpers --------------------------------------------------------------------------------------------
    def _record(self, kind: FaultKind, topic: str, payload: bytes, original: bytes, detail: str) -> None:
        self.log.counts[kind.value] += 1
        self.log.records.append(Injected(kind, topic, payload, original, detail))

    def _mark_flushed(self, topic: str, payload: bytes) -> None:
        records = self.log.records
        for i in range(len(records) - 1, -1, -1):
            r = records[i]
            if r.kind is FaultKind.REORDER and r.topic == topic and r.payload == payload:
                records[i] = r._replace(detail=r.detail + "; released by flush")
                return

    def _release(self, ts: int | None) -> None:
        if ts is None:
            return
        due: list[list[Any]] = []
        for entry in self._held:
            if entry[1] is None or ts > entry[1]:
                entry[0] -= 1
            if entry[0] <= 0:
                due.append(entry)
        if due:
            self._held = [e for e in self._held if e[0] > 0]
            for _wait, _t, topic, payload in due:
                self.publisher.publish(topic, payload)

    def _malform(self, topic: str, payload: bytes) -> tuple[bytes, Malformation]:
        channel = _channel(topic)
        try:
            obj = json.loads(payload)
        except ValueError:
            obj = None
        kinds = _kinds(channel) if isinstance(obj, dict) else (Malformation.NOT_JSON, Malformation.TRUNCATED)
        how = kinds[int(self._rng.integers(len(kinds)))]
        if how is Malformation.NOT_JSON:
            return _NOT_JSON, how
        if how is Malformation.TRUNCATED or not isinstance(obj, dict):
            cut = int(self._rng.integers(1, len(payload))) if len(payload) > 1 else 0
            return payload[:cut], Malformation.TRUNCATED
        if how is Malformation.WRONG_VERSION:
            obj["v"] = SCHEMA_VERSION + 1
        elif how is Malformation.MISSING_TS:
            obj.pop("ts", None)
        elif how is Malformation.UNKNOWN_STATE:
            obj["state"] = _UNKNOWN_STATE
        elif how is Malformation.NEGATIVE_COUNTER:
            assert channel is not None
            field = _COUNTED_FIELD[channel]
            obj[field] = -1 - int(obj.get(field, 0))
        else:  # a string where a number belongs
            if channel is Channel.PROCESS and obj.get("values"):
                obj["values"][0]["value"] = str(obj["values"][0]["value"])
            elif channel in _COUNTED_FIELD:
                field = _COUNTED_FIELD[channel]
                obj[field] = str(obj.get(field, 0))
            else:
                obj["ts"] = str(obj.get("ts", 0))
        return json.dumps(obj, separators=(",", ":")).encode(), how
