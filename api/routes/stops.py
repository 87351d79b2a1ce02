"""Why the line stops: the downtime Pareto of stop reasons, and each stop of a station traced to the station that caused it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api import window_queries
from api.deps import LineDep, known_station
from api.routes.window import answer, window
from api.schemas import AttributionOut, DowntimeOut
from api.security import require

router = APIRouter(prefix="/lines/{line}", tags=["stops"], dependencies=[Depends(require("viewer"))])

Start = Annotated[datetime | None, Query(description="Window start (ISO 8601; default: 8 hours before the end)")]
End = Annotated[datetime | None, Query(description="Window end (default: the line's clock)")]


@router.get("/downtime", response_model=DowntimeOut, summary="Pareto of stop reasons")
async def downtime(
    rt: LineDep,
    start: Start = None,
    end: End = None,
    top: Annotated[int, Query(ge=1, le=1000, description="Line-wide entries returned")] = 20,
) -> Response:
    """Machine-hours lost per station and reason (down, setup, planned stops) and the number of stops, ranked, over
    ``[start, end)`` within the retained history."""
    w = window(rt, start, end, default_hours=8.0, retained=True)
    return await answer(rt, window_queries.downtime, w.start_h, w.end_h, top)


@router.get("/stops", response_model=AttributionOut, summary="Stops of a station and the stations that caused them")
async def stops(
    rt: LineDep,
    station: Annotated[
        str | None, Query(max_length=64, description="The stopped station (default: the last, the line's output)")
    ] = None,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=0, le=10_000, description="Stops listed, newest first")] = 100,
) -> Response:
    """For each stop of ``station`` (none of its machines working), the station that caused it, found by following
    starved states upstream and blocked states downstream to a station that was down (or in setup, or working
    too slowly); and the causes ranked by the hours they explain."""
    known_station(rt, station)
    w = window(rt, start, end, default_hours=8.0, retained=True)
    return await answer(rt, window_queries.stops, w.start_h, w.end_h, station, limit, rt.snapshot.plan_per_hour)
