"""A line's history replayed from the store: the live state rebuilt after a restart, or as of a past time.

:func:`stored_readings` turns a line's stored points back into the typed readings of :mod:`connectors.telemetry`
(the inverse of :func:`connectors.stores.points.point_rows`: a process reading's points, one per value, are
grouped again), every channel merged into one stream in source-time order, read page by page so that memory stays
bounded whatever the window. :func:`rebuild` feeds them through :func:`connectors.telemetry.reading_events` to
observers (a ``twin.state.LiveLine``), exactly as the ingest does with live telemetry.

What the store cannot give back: the order of readings of the same millisecond as they arrived (they come in
channel order, then by station, machine and signal), and two readings of one series in the same millisecond (the
store keeps the later). Neither changes a KPI: both are instants of zero length, and counters are totals.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import NamedTuple

from connectors.stores.base import Store, StoredPoint
from connectors.telemetry import (
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
from twin.counters import CumulativeCounters
from twin.events import Event, MachineState

__all__ = ["RebuildStats", "rebuild", "seed_counters", "stored_readings"]

log = logging.getLogger("gigatwin.rebuild")

# The order of the channels' readings within one millisecond: a state before the counts and levels it explains.
_CHANNELS = (Channel.STATE, Channel.INPUT, Channel.COUNTS, Channel.BUFFER, Channel.STORE, Channel.PROCESS)


class RebuildStats(NamedTuple):
    """What a :func:`rebuild` did."""

    readings: int
    """Readings read back from the store."""
    events: int
    """Events handed to the observers."""
    seconds: float
    """Wall time it took."""
    seeded_counters: int
    """Counters seeded from their last stored reading before the window."""
    observer_errors: int = 0
    """Events an observer raised on (counted and logged; the replay goes on, as the ingest's does)."""
    first_error: str = ""
    """The first observer error, if any."""


_FIRST_WINDOW_MS = 15 * 60_000


def _points(store: Store, channel: str, topics: Topics, start_ms: int, end_ms: int, page: int) -> Iterator[StoredPoint]:
    """The line's points of one channel in ``[start_ms, end_ms)`` in the store's order, ``page`` at a time.

    Read in time windows sized to hold less than a page (halved after a full page, doubled after one under a
    quarter full), so that each query gives the database a bounded slice to select and order. A full page is cut before its last
    timestamp, whose points start the next window; pages are never taken by offset (an offset makes the store
    skip every point before it: a replay paged by offsets costs the square of its length), except within a
    single timestamp holding more than ``page`` points.
    """
    site, line = topics.site, topics.line
    lo, width = start_ms, _FIRST_WINDOW_MS
    while lo < end_ms:
        hi = min(end_ms, lo + width)
        got = store.range(channel, start_ms=lo, end_ms=hi, limit=page, site=site, line=line)
        if len(got) < page:
            yield from got
            lo = hi
            if len(got) < page // 4:
                width *= 2
            continue
        width = max(1, width // 2)
        last_ts = got[-1].ts_ms
        if got[0].ts_ms < last_ts:
            for p in got:
                if p.ts_ms == last_ts:
                    break
                yield p
            lo = last_ts
            continue
        # One millisecond holds a full page (or more): read it by offsets, then go on after it.
        offset = 0
        while got:
            yield from got
            offset += len(got)
            if len(got) < page:
                break
            got = store.range(channel, start_ms=last_ts, end_ms=last_ts + 1, limit=page, offset=offset, site=site, line=line)
        lo = last_ts + 1


def _source(p: StoredPoint, sources: dict[str, Source]) -> Source:
    src = sources.get(p.station)
    if src is None or src.site != p.site or src.line != p.line:
        src = sources[p.station] = Source(p.site, p.line, p.station)
    return src


def _readings(points: Iterator[StoredPoint], channel: Channel) -> Iterator[Reading]:
    """The readings the points of one channel were stored from (process points grouped back per reading)."""
    sources: dict[str, Source] = {}
    if channel is Channel.PROCESS:
        # A process reading's points share (ts, station, machine) and come one after another in the store's order.
        key: tuple[int, str, int] | None = None
        src: Source | None = None
        values: list[tuple[str, float, str]] = []
        for p in points:
            k = (p.ts_ms, p.station, p.machine)
            if k != key:
                if key is not None and src is not None:
                    yield ProcessReading(src, key[2], key[0], tuple(values))
                key, src, values = k, _source(p, sources), []
            values.append((p.signal, float(p.fields["value"]), str(p.fields.get("unit", ""))))
        if key is not None and src is not None:
            yield ProcessReading(src, key[2], key[0], tuple(values))
        return
    for p in points:
        f = p.fields
        src = _source(p, sources)
        if channel is Channel.STATE:
            code = f.get("code")
            yield StateReading(
                src,
                p.machine,
                p.ts_ms,
                MachineState(str(f["state"])),
                str(f["packml"]),
                str(f.get("reason", "")),
                None if code is None else int(code),
            )
        elif channel is Channel.COUNTS:
            yield CountsReading(src, p.machine, p.ts_ms, int(f["processed"]), int(f["defective"]))
        elif channel is Channel.BUFFER:
            yield BufferReading(src, p.machine, p.ts_ms, int(f["level"]))
        elif channel is Channel.STORE:
            yield StoreReading(src, p.machine, p.ts_ms, int(f["dwelling"]), int(f["held"]), bool(f["intake_blocked"]))
        else:
            yield InputReading(src, p.machine, p.ts_ms, int(f["consumed"]))


def _ts(item: tuple[int, int, Reading]) -> tuple[int, int]:
    return item[0], item[1]


def stored_readings(
    store: Store,
    topics: Topics,
    start_ms: int,
    end_ms: int,
    *,
    page: int = 10_000,
    channels: Collection[Channel] | None = None,
) -> Iterator[Reading]:
    """Every stored reading of the site and line of ``topics`` in ``[start_ms, end_ms)``, of every channel (or of
    ``channels``), in source-time order (within a millisecond: state, input, counts, buffer, store, process).

    Read ``page`` points at a time per channel: memory is bounded by six pages, whatever the window. The window
    may be longer than the store's longest query span: it is read in spans the store accepts. A replay that needs
    only some channels (a calibration: states and counts) names them, and the others are not read at all.
    """
    if page < 1:
        raise ValueError(f"page: must be >= 1, got {page}")
    wanted = [ch for ch in _CHANNELS if channels is None or ch in channels]
    if end_ms < start_ms:
        raise ValueError(f"end_ms: {end_ms} is before start_ms {start_ms}")
    span = _max_span(store)
    lo = start_ms
    while lo < end_ms:
        hi = min(end_ms, lo + span)
        streams = [
            ((r.ts_ms, rank, r) for r in _readings(_points(store, ch.value, topics, lo, hi, page), ch))
            for rank, ch in enumerate(wanted)
        ]
        for _, _, reading in heapq.merge(*streams, key=_ts):
            yield reading
        lo = hi


def _max_span(store: Store) -> int:
    bounds = getattr(store, "bounds", None)
    span = getattr(bounds, "max_span_ms", None)
    return span if isinstance(span, int) and span > 0 else 86_400_000


def seed_counters(store: Store, topics: Topics, before_ms: int, counters: CumulativeCounters) -> int:
    """Seed ``counters`` with each counter's last stored reading before ``before_ms`` (this line's only), so that the
    first reading from ``before_ms`` on counts what was added since; returns how many counters were seeded."""
    n = 0
    for p in store.last(Channel.COUNTS.value, site=topics.site, line=topics.line, before_ms=before_ms):
        counters.seed((p.station, p.machine), p.ts_ms, (int(p.fields["processed"]), int(p.fields["defective"])))
        n += 1
    for p in store.last(Channel.INPUT.value, site=topics.site, line=topics.line, before_ms=before_ms):
        counters.seed((p.station, "input"), p.ts_ms, (int(p.fields["consumed"]),))
        n += 1
    return n


def rebuild(
    store: Store,
    topics: Topics,
    observers: Sequence[Callable[[Event], None]],
    *,
    start_ms: int,
    end_ms: int,
    counters: CumulativeCounters,
    page: int = 10_000,
    channels: Collection[Channel] | None = None,
) -> RebuildStats:
    """Replay the line's stored readings of ``[start_ms, end_ms)`` to ``observers`` as twin events.

    ``counters`` turns cumulative counters into increments, as in the ingest. It is first seeded with each
    counter's last stored reading before ``start_ms`` where the store has one (so the first counts inside the
    window add what was made since); without one, a counter's first reading in the window is its baseline. Pass
    fresh counters, or ones holding nothing newer than ``start_ms``. Afterwards they hold the last totals of the
    window: an ingest taking them over counts on from there.

    An observer that raises is counted and logged, and the replay goes on (as in the ingest). ``channels`` limits
    the replay to those channels' readings (:func:`stored_readings`).
    """
    began = time.perf_counter()
    seeded = seed_counters(store, topics, start_ms, counters)
    readings = events = errors = 0
    first_error = ""
    for reading in stored_readings(store, topics, start_ms, end_ms, page=page, channels=channels):
        readings += 1
        for ev in reading_events(reading, counters):
            events += 1
            for observer in observers:
                try:
                    observer(ev)
                except Exception as exc:  # one bad stored event must not stop the restart
                    errors += 1
                    if not first_error:
                        first_error = f"observer {observer!r} failed on {ev!r}: {exc}"
                        log.exception("rebuild: an observer failed")
    return RebuildStats(readings, events, time.perf_counter() - began, seeded, errors, first_error)
