"""History: raw points and windowed aggregates of any channel from the store, bounded and paginated.

Only the watched line's points: the store may be shared with other lines (same site and station ids even), so
every query names the runtime's site and line.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from api.deps import LineDep, known_station
from api.errors import ApiError
from api.routes.window import check_intervals, check_span, window
from api.schemas import AggregateOut, BucketOut, PointOut, PointsOut, hours_to_datetime
from api.security import require
from connectors.stores.bounds import DEFAULT_MAX_SPAN_MS, MAX_BUCKETS
from connectors.stores.points import CHANNEL_FIELDS
from connectors.telemetry import Channel

router = APIRouter(prefix="/lines/{line}/history", tags=["history"], dependencies=[Depends(require("viewer"))])

MAX_PAGE = 10_000
"""The most points one page returns."""

ChannelName = StrEnum("ChannelName", {c.value.upper(): c.value for c in Channel})  # type: ignore[misc]
Start = Annotated[datetime | None, Query(description="Window start (ISO 8601; default: the window's length before the end)")]
End = Annotated[datetime | None, Query(description="Window end, exclusive (default: the line's clock)")]
Station = Annotated[str | None, Query(max_length=64, description="Only this station")]
Signal = Annotated[str | None, Query(max_length=128, description="Only this process signal")]


def _ms_to_dt(ms: int) -> datetime:
    return hours_to_datetime(ms / 3_600_000)


@router.get("/{channel}", response_model=PointsOut, summary="Raw points of a channel")
async def points(
    rt: LineDep,
    channel: ChannelName,
    start: Start = None,
    end: End = None,
    station: Station = None,
    signal: Signal = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PointsOut:
    """Points in ``[start, end)`` ordered by time, station, machine and signal; at most ``limit`` per page (default
    window: the last hour of the line's clock). The store refuses windows over its maximum span (31 days)."""
    known_station(rt, station)
    w = window(rt, start, end, default_hours=1.0)
    check_span(w, DEFAULT_MAX_SPAN_MS / 86_400_000)
    # one more than asked tells whether another page follows
    found = await run_in_threadpool(
        rt.store.range,
        channel.value,
        start_ms=w.start_ms,
        end_ms=w.end_ms,
        site=rt.topics.site,
        line=rt.topics.line,
        station=station,
        signal=signal,
        limit=limit + 1,
        offset=offset,
    )
    more = len(found) > limit
    return PointsOut(
        channel=channel.value,
        start=hours_to_datetime(w.start_h),
        end=hours_to_datetime(w.end_h),
        points=[
            PointOut(ts=_ms_to_dt(p.ts_ms), station=p.station, machine=p.machine, signal=p.signal, fields=p.fields)
            for p in found[:limit]
        ],
        next_offset=offset + limit if more else None,
    )


@router.get("/{channel}/aggregate", response_model=AggregateOut, summary="Windowed aggregates of a numeric field")
async def aggregate(
    rt: LineDep,
    channel: ChannelName,
    field: Annotated[str, Query(max_length=64, description="A numeric field of the channel, e.g. value, level, processed")],
    every_s: Annotated[float, Query(gt=0, le=31 * 86400, description="Interval length in seconds")] = 60.0,
    start: Start = None,
    end: End = None,
    station: Station = None,
    signal: Signal = None,
    machine: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> AggregateOut:
    """Mean, min, max and count of ``field`` per interval of ``every_s`` aligned to the epoch (default window: the last
    8 hours); intervals without values are left out; at most 10,000 intervals."""
    numeric = [f.name for f in CHANNEL_FIELDS[channel.value] if f.kind in (int, float)]
    if field not in numeric:
        raise ApiError(
            400, f"field: {field!r} is not a numeric field of {channel.value} (numeric: {', '.join(numeric) or 'none'})"
        )
    known_station(rt, station)
    w = window(rt, start, end, default_hours=8.0)
    check_span(w, DEFAULT_MAX_SPAN_MS / 86_400_000)
    check_intervals(w, max(every_s, 0.001), MAX_BUCKETS)  # the store's intervals are whole milliseconds
    every_ms = max(1, round(every_s * 1000))
    buckets = await run_in_threadpool(
        rt.store.aggregate,
        channel.value,
        field,
        start_ms=w.start_ms,
        end_ms=w.end_ms,
        every_ms=every_ms,
        site=rt.topics.site,
        line=rt.topics.line,
        station=station,
        signal=signal,
        machine=machine,
    )
    return AggregateOut(
        channel=channel.value,
        field=field,
        every_s=every_ms / 1000,
        start=hours_to_datetime(w.start_h),
        end=hours_to_datetime(w.end_h),
        buckets=[BucketOut(start=_ms_to_dt(b.start_ms), mean=b.mean, min=b.min, max=b.max, count=b.count) for b in buckets],
    )
