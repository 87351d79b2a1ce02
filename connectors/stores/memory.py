"""An in-memory :class:`~connectors.stores.base.Store` for unit tests: same behaviour, no database, nothing kept."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from connectors.stores.base import (
    Bucket,
    DeadLetter,
    FieldValue,
    Health,
    StoredForecast,
    StoredPoint,
    StoreError,
    WriteOutcome,
    WriteRefused,
)
from connectors.stores.bounds import DEFAULT_MAX_SPAN_MS, QueryBounds, check_limit
from connectors.stores.forecasts import check_record, decode_document
from connectors.stores.points import (
    check_channel,
    check_numeric_field,
    clean_text,
    fields_of,
    first_refusal,
    point_rows,
    series_order,
    time_order,
)
from connectors.telemetry import Reading

__all__ = ["MemoryStore"]

_Key = tuple[str, str, str, int, str, int]  # site, line, station, machine, signal, ts_ms


class MemoryStore:
    """A store in dictionaries, safe to share between threads (one lock). Set ``fail_writes`` to make writes raise
    :class:`StoreError`, as a store that can neither write nor spool would."""

    def __init__(self, *, max_span_ms: int = DEFAULT_MAX_SPAN_MS) -> None:
        self.bounds = QueryBounds(max_span_ms)
        self.fail_writes = False
        self.writes = 0
        """Successful write calls (readings and dead letters)."""
        self._lock = threading.Lock()
        self._points: dict[str, dict[_Key, tuple[FieldValue | None, ...]]] = {}
        self._letters: list[DeadLetter] = []
        self._forecasts: dict[tuple[str, str, int], tuple[str | None, str | None]] = {}  # JSON, as a database keeps it

    def write(self, readings: Sequence[Reading]) -> WriteOutcome:
        """Keep the readings' points; a point with the same channel, tags and time replaces the earlier one.
        WriteRefused (naming the field) if one of them holds a value no store can hold; then nothing is kept."""
        self._check_writable()
        why = first_refusal(readings)
        if why is not None:
            raise WriteRefused(f"memory store: {why}")
        with self._lock:
            for r in readings:
                channel, rows = point_rows(r)
                table = self._points.setdefault(channel, {})
                src = r.source
                for signal, values in rows:
                    table[(src.site, src.line, src.station, r.machine, signal, r.ts_ms)] = values
            self.writes += 1
        return WriteOutcome.WRITTEN

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> WriteOutcome:
        """Keep the dead letters (payloads copied as immutable bytes)."""
        self._check_writable()
        with self._lock:
            self._letters.extend(
                DeadLetter(d.received_ms, clean_text(d.topic), bytes(d.payload), clean_text(d.reason), d.line_ms) for d in letters
            )
            self.writes += 1
        return WriteOutcome.WRITTEN

    def write_forecasts(self, records: Sequence[StoredForecast]) -> WriteOutcome:
        """Keep forecasts and scores (the parts given; a part given again replaces the kept one)."""
        self._check_writable()
        encoded = [(r, check_record(r)) for r in records]  # all checked before any is kept
        with self._lock:
            for r, (forecast, score) in encoded:
                key = (r.site, r.line, r.as_of_ms)
                old_forecast, old_score = self._forecasts.get(key, (None, None))
                self._forecasts[key] = (forecast or old_forecast, score or old_score)
            self.writes += 1
        return WriteOutcome.WRITTEN

    def health(self) -> Health:
        """Writable unless ``fail_writes`` is set; nothing is ever spooled."""
        if self.fail_writes:
            return Health(False, "memory store: writes set to fail", 0)
        return Health(True, "memory store", 0)

    def range(
        self,
        channel: str,
        *,
        start_ms: int,
        end_ms: int,
        site: str | None = None,
        line: str | None = None,
        station: str | None = None,
        signal: str | None = None,
        limit: int = 10_000,
        offset: int = 0,
    ) -> list[StoredPoint]:
        """Raw points in ``[start_ms, end_ms)`` ordered by (ts_ms, station, machine, signal, site, line)."""
        check_channel(channel)
        self.bounds.check_range(start_ms, end_ms, limit, offset)
        points = [
            p
            for p in self._select(channel, (site, line, station, signal, None))
            if start_ms <= p.ts_ms < end_ms  # filtered before sorting: the sort is the cost
        ]
        points.sort(key=time_order)
        return points[offset : offset + limit]

    def last(
        self,
        channel: str,
        *,
        site: str | None = None,
        line: str | None = None,
        station: str | None = None,
        before_ms: int | None = None,
    ) -> list[StoredPoint]:
        """The latest point of every series."""
        check_channel(channel)
        latest: dict[tuple[str, str, str, int, str], StoredPoint] = {}
        for p in self._select(channel, (site, line, station, None, None)):
            if before_ms is not None and p.ts_ms >= before_ms:
                continue
            key = (p.site, p.line, p.station, p.machine, p.signal)
            best = latest.get(key)
            if best is None or p.ts_ms > best.ts_ms:
                latest[key] = p
        return sorted(latest.values(), key=series_order)

    def first_ms(self, channel: str, *, site: str | None = None, line: str | None = None) -> int | None:
        """The time of the oldest point of the channel (of ``site`` and ``line``), or None."""
        check_channel(channel)
        return min((p.ts_ms for p in self._select(channel, (site, line, None, None, None))), default=None)

    def aggregate(
        self,
        channel: str,
        field: str,
        *,
        start_ms: int,
        end_ms: int,
        every_ms: int,
        site: str | None = None,
        line: str | None = None,
        station: str | None = None,
        signal: str | None = None,
        machine: int | None = None,
    ) -> list[Bucket]:
        """Mean, min, max and count of ``field`` per interval aligned to multiples of ``every_ms``."""
        check_numeric_field(channel, field)
        self.bounds.check_aggregate(start_ms, end_ms, every_ms)
        groups: dict[int, list[float]] = {}
        for p in self._select(channel, (site, line, station, signal, machine)):
            value = p.fields.get(field)
            if value is not None and start_ms <= p.ts_ms < end_ms:
                groups.setdefault(p.ts_ms - p.ts_ms % every_ms, []).append(float(value))
        return [Bucket(start, math.fsum(vs) / len(vs), min(vs), max(vs), len(vs)) for start, vs in sorted(groups.items())]

    def dead_letters(self, limit: int = 100, *, topic_prefix: str | None = None) -> list[DeadLetter]:
        """The latest dead letters (whose topic starts with ``topic_prefix``), newest first (by received time, then
        by arrival)."""
        check_limit(limit)
        prefix = topic_prefix or ""
        with self._lock:
            indexed = [(i, d) for i, d in enumerate(self._letters) if d.topic.startswith(prefix)]
        indexed.sort(key=lambda il: (il[1].received_ms, il[0]), reverse=True)
        return [d for _, d in indexed[:limit]]

    def dead_letter_count(self, *, topic_prefix: str | None = None) -> int:
        """How many dead letters are kept (whose topic starts with ``topic_prefix``)."""
        prefix = topic_prefix or ""
        with self._lock:
            return sum(1 for d in self._letters if d.topic.startswith(prefix))

    def forecasts(
        self, *, start_ms: int, end_ms: int, site: str | None = None, line: str | None = None, limit: int = 10_000
    ) -> list[StoredForecast]:
        """The kept forecasts made in ``[start_ms, end_ms)``, oldest first (then by site and line)."""
        self.bounds.check_range(start_ms, end_ms, limit, 0)
        with self._lock:
            items = sorted(
                (ms, s, ln, doc)
                for (s, ln, ms), doc in self._forecasts.items()
                if start_ms <= ms < end_ms and site in (None, s) and line in (None, ln)
            )
        return [StoredForecast(s, ln, ms, decode_document(f), decode_document(sc)) for ms, s, ln, (f, sc) in items[:limit]]

    def close(self) -> None:
        """Nothing to release."""

    def _check_writable(self) -> None:
        if self.fail_writes:
            raise StoreError("memory store: writes set to fail")

    def _select(
        self, channel: str, wanted: tuple[str | None, str | None, str | None, str | None, int | None]
    ) -> list[StoredPoint]:
        """The channel's points whose (site, line, station, signal, machine) match ``wanted`` (None: any)."""
        with self._lock:
            items = list(self._points.get(channel, {}).items())
        return [
            StoredPoint(channel, site, line, st, m, sig, ts, fields_of(channel, values))
            for (site, line, st, m, sig, ts), values in items
            if all(w is None or w == v for w, v in zip(wanted, (site, line, st, sig, m), strict=True))
        ]
