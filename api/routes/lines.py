"""Lines: what the service watches, each line's description and topology, its calendar, and its production plan."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.deps import LineDep, OperatorDep, RuntimeDep
from api.errors import ApiError
from api.schemas import CalendarNowOut, LineOut, LineSummaryOut, PlanIn
from api.security import require
from api.views import calendar_now, line_out

router = APIRouter(prefix="/lines", tags=["lines"], dependencies=[Depends(require("viewer"))])

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2262, 1, 1, tzinfo=UTC)  # the telemetry contract's latest timestamp (InfluxDB's nanoseconds)


@router.get("", response_model=list[LineSummaryOut], summary="The lines this service watches")
async def list_lines(rt: RuntimeDep) -> list[LineSummaryOut]:
    """Every watched line (one per service today)."""
    return [LineSummaryOut(id=rt.line.name, stations=len(rt.line.stations), constraint=rt.constraint)]


@router.get("/{line}", response_model=LineOut, summary="A line's description and topology")
async def get_line(rt: LineDep) -> LineOut:
    """The stations in flow order with their machines, ideal rates, buffers and signals, each with its inputs, the
    station it feeds and its branch; the line's chains of stations (branches merging into the trunk); its shift
    calendar and planned stops; and the plan."""
    return line_out(rt.line, rt.constraint, rt.snapshot.plan_per_hour, rt.settings.shift_hours)


@router.get("/{line}/calendar", response_model=CalendarNowOut, summary="Where the line's calendar stands")
async def get_calendar(
    rt: LineDep,
    at: Annotated[datetime | None, Query(description="The instant (ISO 8601; default: the line's clock, else now)")] = None,
    hours: Annotated[float, Query(gt=0, le=168, description="Hours of stretches listed after the instant")] = 24.0,
) -> CalendarNowOut:
    """Whether the line is asked to work at the instant (in a shift, not in a break, holiday or planned stop of the
    line), why not, since and until when, the shift it falls in, and the stretches of working and stopped time ahead."""
    if at is not None:
        moment = at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # without a zone: UTC, as the API's times
        if not _EARLIEST <= moment < _LATEST:
            message = f"at {at.isoformat()} is outside the years 1970 to 2261"
            raise ApiError(400, message, details=[{"loc": ["query", "at"], "msg": message, "type": "out_of_range"}])
        at_h = moment.timestamp() / 3600.0
    else:
        clock = rt.snapshot.clock_h
        at_h = clock if clock is not None else time.time() / 3600.0
    return calendar_now(rt.line, at_h, hours)


@router.put("/{line}/plan", response_model=LineOut, summary="Change the production plan (operator)")
async def set_plan(rt: LineDep, plan: PlanIn, _role: OperatorDep) -> LineOut:
    """Set the planned good output per hour that the shift's output is measured against."""

    snapshot = await rt.set_plan(plan.plan_per_hour)  # published with the new plan
    return line_out(rt.line, rt.constraint, snapshot.plan_per_hour, rt.settings.shift_hours)
