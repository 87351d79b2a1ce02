"""Shifts and the production plan: which shift a time falls in, and the good output a line is planned to make.

Shifts. A line with a calendar (``Line.calendar``) works the calendar's shifts: the shift a time falls in is the
calendar's shift running then (a shift that starts on a working day that is not a holiday, at its local clock
time, for its hours); a time between two shifts falls in the stretch from the end of the one before to the start
of the next, named for why the line is not working (``holiday`` when a holiday cancelled shifts in it, else
``off_shift``). A line without a calendar has consecutive blocks of ``hours`` aligned at ``origin_h`` (06:00, 14:00 and
22:00 UTC for 8-hour shifts with origin 6 on an epoch clock; on an engine clock starting at 0, the first shift is
``[-2, 6)``).

The default plan is the constraint's ideal rate in units the line ships (``twin.status.constraint_of``: a
station of a branch that a merge takes ``per_unit`` of counts its rate divided by them) times the yield from it
to the end, the product of ``1 - scrap`` over the stations from it to the last (``Line.path_to_end``): the good
output per hour of a line that loses nothing but scrap. The plan is asked of working time only: the plan between
two instants (:meth:`ShiftPlan.plan_between`) is the plan per hour times the working hours between them, the hours
that are neither outside the calendar's shifts, nor in its breaks or holidays, nor in a planned stop of the whole
line (``Line.planned_stops``). A station's own planned stop does not lower the plan: the line is asked to make up
for it. A line without a calendar or planned stops works every hour.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from twin.calendar import HOLIDAY, OFF_SHIFT, WEEKDAYS, Calendar, StopTimeline
from twin.schema import Line
from twin.status import constraint_of, units_per_shipped

__all__ = ["ShiftPlan", "ShiftSpan", "calendar_shift_of", "default_plan_per_hour", "shift_of", "working_hours"]

_SEARCH_DAYS = 370
"""How far (days) to look for the shift before or after a time between shifts: over a year of holidays."""


@dataclass(frozen=True)
class ShiftSpan:
    """A shift ``[start_h, end_h)``, or the stretch between two shifts (``working`` False), with its name."""

    start_h: float
    end_h: float
    name: str = ""
    working: bool = True


def shift_of(t: float, hours: float, origin_h: float) -> tuple[float, float]:
    """The shift ``[start, end)`` of ``hours`` aligned at ``origin_h`` that time ``t`` falls in."""
    start = origin_h + math.floor((t - origin_h) / hours) * hours
    # floor of a quotient can land one shift off by rounding; the interval must hold t
    if start > t:
        start -= hours
    elif start + hours <= t:
        start += hours
    return start, start + hours


def _shifts_on(calendar: Calendar, day: dt.date) -> list[tuple[float, float, str]]:
    """The shifts that start on local ``day`` (none on a day off or a holiday), as ``(start, end, name)``."""
    if WEEKDAYS[day.weekday()] not in calendar.days or day in calendar.holidays:
        return []
    out = []
    for s in calendar.shifts:
        a = calendar.local_at(day, s.offset_h)
        out.append((a, a + s.hours, s.name or f"{s.start:%H:%M}"))
    return out


def calendar_shift_of(calendar: Calendar, t: float) -> ShiftSpan:
    """The calendar's shift that time ``t`` (engine hours) falls in, or the stretch between the shifts around it
    (see the module docstring)."""
    today = dt.datetime.fromtimestamp(t * 3600.0, calendar.zone).date()
    before, after = -math.inf, math.inf
    for k in (-1, 0, 1):  # a shift lasts at most 24 h: one that holds t started yesterday or today
        for a, b, name in _shifts_on(calendar, today + dt.timedelta(days=k)):
            if a <= t < b:
                return ShiftSpan(a, b, name)
    for k in range(0, _SEARCH_DAYS):
        ends = [b for a, b, _ in _shifts_on(calendar, today - dt.timedelta(days=k)) if b <= t]
        if ends:
            before = max(ends)
            break
    for k in range(0, _SEARCH_DAYS):
        starts = [a for a, b, _ in _shifts_on(calendar, today + dt.timedelta(days=k)) if a > t]
        if starts:
            after = min(starts)
            break
    if not math.isfinite(before) or not math.isfinite(after):  # no shift for a year: the local day
        midnight = calendar.local_at(today, 0.0)
        before, after = max(before, midnight), min(after, calendar.local_at(today + dt.timedelta(days=1), 0.0))
    holiday = any(reason == HOLIDAY for _a, _b, reason in calendar.stretches(before, after))
    return ShiftSpan(before, after, HOLIDAY if holiday else OFF_SHIFT, working=False)


def working_hours(line: Line, t0: float, t1: float, timeline: StopTimeline | None = None) -> float:
    """The hours in ``[t0, t1)`` the line is asked to work: not outside its calendar's shifts, in a break or a
    holiday, or in a planned stop of the whole line (``timeline``: the line's, to reuse its cache)."""
    if not t1 > t0:
        return 0.0
    tl = StopTimeline(line.calendar, line.planned_stops) if timeline is None else timeline
    if tl.always_working:
        return t1 - t0
    total = 0.0
    t = t0
    while t < t1:
        w = tl.at(t)
        end = w.end if w.end < t1 else t1
        if w.reason is None:
            total += end - t
        if not end > t:  # a window ending at t by rounding: step past it
            end = math.nextafter(t, math.inf)
        t = end
    return total


def default_plan_per_hour(line: Line) -> float:
    """The good output per hour of ``line`` if it lost nothing but scrap (see the module docstring)."""
    _, constraint = constraint_of(line)
    per = units_per_shipped(line)[constraint.id]
    return constraint.ideal_rate / per * math.prod(1.0 - line.station(sid).scrap for sid in line.path_to_end(constraint.id))


class ShiftPlan:
    """A line's shifts and its plan over working time (see the module docstring).

    ``shift_hours`` and ``origin_h`` shape the shifts of a line without a calendar (a calendar's shifts override
    them). Keeps the last shift it found and the line's stop timeline, so asking again within a shift is cheap.
    """

    def __init__(self, line: Line, plan_per_hour: float, *, shift_hours: float = 8.0, origin_h: float = 6.0) -> None:
        if plan_per_hour < 0:
            raise ValueError(f"plan_per_hour cannot be negative, got {plan_per_hour}")
        if not shift_hours > 0:
            raise ValueError(f"shift_hours must be positive, got {shift_hours}")
        self.line = line
        self.plan_per_hour = plan_per_hour
        self.shift_hours = shift_hours
        self.origin_h = origin_h
        self.calendar = line.calendar
        self._timeline = StopTimeline(line.calendar, line.planned_stops)
        self._last = ShiftSpan(math.nan, math.nan)

    @property
    def longest_shift_h(self) -> float:
        """The longest shift's hours."""
        if self.calendar is None:
            return self.shift_hours
        return max(s.hours for s in self.calendar.shifts)

    def shift_at(self, t: float) -> ShiftSpan:
        """The shift (or the stretch between shifts) that time ``t`` falls in."""
        last = self._last
        if last.start_h <= t < last.end_h:
            return last
        if self.calendar is None:
            start, end = shift_of(t, self.shift_hours, self.origin_h)
            span = ShiftSpan(start, end)
        else:
            span = calendar_shift_of(self.calendar, t)
        self._last = span
        return span

    def working_hours(self, t0: float, t1: float) -> float:
        """The hours in ``[t0, t1)`` the line is asked to work (:func:`working_hours`)."""
        return working_hours(self.line, t0, t1, self._timeline)

    def plan_between(self, t0: float, t1: float) -> float:
        """The good units planned in ``[t0, t1)``: the plan per hour over its working hours."""
        if self.plan_per_hour == 0:
            return 0.0
        return self.plan_per_hour * self.working_hours(t0, t1)
