"""Why the line stops: the downtime Pareto of stop reasons, and each stop of a station traced to the station that caused it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import LineDep
from api.errors import ApiError
from api.routes.window import window
from api.schemas import (
    AttributedStopOut,
    AttributionOut,
    CauseOut,
    DowntimeOut,
    DowntimeReasonOut,
    StationDowntimeOut,
    TraceStepOut,
    hours_to_datetime,
)
from api.security import require
from twin.stops import DowntimeEntry, attribute_stops, downtime_pareto

router = APIRouter(prefix="/lines/{line}", tags=["stops"], dependencies=[Depends(require("viewer"))])

Start = Annotated[datetime | None, Query(description="Window start (ISO 8601; default: 8 hours before the end)")]
End = Annotated[datetime | None, Query(description="Window end (default: the line's clock)")]


def _reason(e: DowntimeEntry) -> DowntimeReasonOut:
    return DowntimeReasonOut(
        station=e.station,
        state=e.state.value,
        reason=e.reason,
        hours=e.hours,
        stops=e.stops,
        share=e.share,
        cumulative_share=e.cumulative_share,
    )


@router.get("/downtime", response_model=DowntimeOut, summary="Pareto of stop reasons")
async def downtime(
    rt: LineDep,
    start: Start = None,
    end: End = None,
    top: Annotated[int, Query(ge=1, le=1000, description="Line-wide entries returned")] = 20,
) -> DowntimeOut:
    """Machine-hours lost per station and reason (down, setup, planned stops) and the number of stops, ranked, over
    ``[start, end)`` within the retained history."""
    w = window(rt, start, end, default_hours=8.0)

    def build() -> DowntimeOut:
        view = rt.live.history()  # O(1); the replay below holds no lock the pipeline or the loop needs
        w0 = max(w.start_h, view.start_h)  # the retained history bounds any window
        p = downtime_pareto(view.state_events(w0, w.end_h), rt.line, w0, w.end_h)
        return DowntimeOut(
            start=hours_to_datetime(p.start_h),
            end=hours_to_datetime(p.end_h),
            hours=p.hours,
            line=[_reason(e) for e in p.line[:top]],
            stations={
                sid: StationDowntimeOut(hours=d.hours, reasons=[_reason(e) for e in d.entries]) for sid, d in p.stations.items()
            },
        )

    return await rt.live.query(build)


@router.get("/stops", response_model=AttributionOut, summary="Stops of a station and the stations that caused them")
async def stops(
    rt: LineDep,
    station: Annotated[
        str | None, Query(max_length=64, description="The stopped station (default: the last, the line's output)")
    ] = None,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=0, le=10_000, description="Stops listed, newest first")] = 100,
) -> AttributionOut:
    """For each stop of ``station`` (none of its machines working), the station that caused it, found by following
    starved states upstream and blocked states downstream to a station that was down (or in setup, or working
    too slowly); and the causes ranked by the hours they explain."""
    if station is not None and station not in {s.id for s in rt.line.stations}:
        raise ApiError(404, f"no station {station!r} in line {rt.line.name!r}")
    w = window(rt, start, end, default_hours=8.0)

    def build() -> AttributionOut:
        view = rt.live.history()
        w0 = max(w.start_h, view.start_h)
        a = attribute_stops(view.state_events(w0, w.end_h), rt.line, w0, w.end_h, station=station)
        listed = a.stops[::-1][:limit]
        return AttributionOut(
            station=a.station,
            start=hours_to_datetime(a.start_h),
            end=hours_to_datetime(a.end_h),
            stopped_hours=a.stopped_h,
            causes=[
                CauseOut(
                    station=c.station,
                    kind=c.kind.value,
                    reason=c.reason,
                    hours=c.hours,
                    stops=c.stops,
                    share=c.share,
                    cumulative_share=c.cumulative_share,
                )
                for c in a.causes
            ],
            total_stops=len(a.stops),
            stops=[
                AttributedStopOut(
                    start=hours_to_datetime(s.start_h),
                    end=hours_to_datetime(s.end_h),
                    hours=s.duration_h,
                    cause_station=s.cause_station,
                    cause_kind=s.cause_kind.value,
                    cause_reason=s.cause_reason,
                    chain=[
                        TraceStepOut(
                            station=c.station, state=c.state.value, at=hours_to_datetime(c.t), since=hours_to_datetime(c.since_h)
                        )
                        for c in s.chain
                    ],
                )
                for s in listed
            ],
        )

    return await rt.live.query(build)
