"""OEE over a chosen window: the line's against its constraint, and each station's, with their losses."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api import window_queries
from api.deps import LineDep
from api.routes.window import answer, check_intervals, window
from api.schemas import OeeOut, ThroughputOut, hours_to_datetime
from api.security import require
from twin.shifts import shift_of

router = APIRouter(prefix="/lines/{line}", tags=["oee"], dependencies=[Depends(require("viewer"))])

Start = Annotated[datetime | None, Query(description="Window start (ISO 8601; default: the current shift's start)")]
End = Annotated[datetime | None, Query(description="Window end (default: the line's clock)")]


@router.get("/oee", response_model=OeeOut, summary="OEE and its losses over a window")
async def oee(rt: LineDep, start: Start = None, end: End = None) -> Response:
    """Availability, performance, quality and OEE for the line and every station over ``[start, end)``, which must lie
    within the retained history (``history_hours``); default: the current shift so far."""
    w = window(rt, start, end, default_hours=rt.settings.shift_hours, retained=True)
    if start is not None:  # a start before the retained history is refused, not moved
        return await answer(rt, window_queries.oee, w.start_h, w.end_h, clamp=False)
    # the current shift so far, from the history's start if that is later; at a shift's very first moment, the last
    # shift's length
    w0, _ = shift_of(w.end_h, rt.settings.shift_hours, rt.settings.shift_origin_h)
    if not w.end_h > max(w0, rt.snapshot.history_start_h or w0):
        w0 = w.end_h - rt.settings.shift_hours
    # a long window replays many events: in the window-query process, so the loop and the pipeline keep the interpreter
    return await answer(rt, window_queries.oee, w0, w.end_h)


@router.get("/throughput", response_model=ThroughputOut, summary="Good output per interval")
async def throughput(
    rt: LineDep,
    hours: Annotated[float, Query(gt=0, le=24 * 14, description="How far back from the line's clock")] = 8.0,
    every_s: Annotated[float, Query(gt=0, le=86400, description="Interval length (rounded up to whole minutes)")] = 600.0,
) -> ThroughputOut:
    """Good units shipped by the last station per interval over the last ``hours`` of the retained history."""
    w = window(rt, None, None, default_hours=hours)
    check_intervals(w, max(60.0, math.ceil(every_s / 60.0) * 60.0), 10_000)  # the series sums whole minutes

    snapshot = rt.snapshot
    step_h, rows = await rt.throughput(w.start_h, w.end_h, every_s)  # up to 10,000 sums: off the event loop
    began = max(w.start_h, snapshot.history_start_h or w.start_h)
    covered = [max(0.0, min(t + step_h, w.end_h) - max(t, began)) * 3600.0 for t, _ in rows]
    return ThroughputOut(
        end=hours_to_datetime(w.end_h),
        good_total=snapshot.status.good,
        every_s=step_h * 3600.0,
        start=[hours_to_datetime(t) for t, _ in rows],
        good=[g for _, g in rows],
        covered_s=covered,
        per_hour=[g * 3600 / c if c > 0 else 0.0 for (_, g), c in zip(rows, covered, strict=True)],
    )
