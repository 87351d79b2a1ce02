"""Lines: what the service watches, each line's description and topology, and its production plan."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.deps import LineDep, OperatorDep, RuntimeDep
from api.schemas import LineOut, LineSummaryOut, PlanIn
from api.security import require
from api.views import line_out

router = APIRouter(prefix="/lines", tags=["lines"], dependencies=[Depends(require("viewer"))])


@router.get("", response_model=list[LineSummaryOut], summary="The lines this service watches")
async def list_lines(rt: RuntimeDep) -> list[LineSummaryOut]:
    """Every watched line (one per service today)."""
    return [LineSummaryOut(id=rt.line.name, stations=len(rt.line.stations), constraint=rt.constraint)]


@router.get("/{line}", response_model=LineOut, summary="A line's description and topology")
async def get_line(rt: LineDep) -> LineOut:
    """The stations in flow order with their machines, ideal rates, buffers and signals, and the plan."""
    return line_out(rt.line, rt.constraint, rt.snapshot.plan_per_hour, rt.settings.shift_hours)


@router.put("/{line}/plan", response_model=LineOut, summary="Change the production plan (operator)")
async def set_plan(rt: LineDep, plan: PlanIn, _role: OperatorDep) -> LineOut:
    """Set the planned good output per hour that the shift's output is measured against."""

    snapshot = await rt.set_plan(plan.plan_per_hour)  # published with the new plan
    return line_out(rt.line, rt.constraint, snapshot.plan_per_hour, rt.settings.shift_hours)
