"""Shifts and the plan on lines with a calendar and planned stops, and the plan's constraint on a tree (issue 13):
the live state's shift is the calendar's, and the plan so far counts only working time."""

from __future__ import annotations

import pytest

from tests.conftest import make_line, record
from twin.calendar import Calendar
from twin.shifts import ShiftPlan, calendar_shift_of, default_plan_per_hour, working_hours
from twin.state import LiveLine
from twin.status import constraint_of, units_per_shipped

# Two shifts on weekdays, a 30-min break at 10:00; the engine's clock starts on Thursday 1970-01-01 00:00 UTC.
CALENDAR = {
    "shifts": [{"name": "early", "start": "06:00", "hours": 8}, {"name": "late", "start": "14:00", "hours": 8}],
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "breaks": [{"start": "10:00", "duration": 0.5}],
    "holidays": ["1970-01-05"],
}
LINE = make_line({"id": "A", "cycle_time": 0.25}, calendar=CALENDAR)
"""Loss-free, 4 units an hour in working time: its plan per hour."""
FRI, MON, TUE = 24.0, 96.0, 120.0


def _calendar() -> Calendar:
    assert LINE.calendar is not None
    return LINE.calendar


def test_the_shift_a_time_falls_in_is_the_calendars() -> None:
    cal = _calendar()
    assert calendar_shift_of(cal, 6.0) == calendar_shift_of(cal, 13.99)
    early = calendar_shift_of(cal, 11.0)
    assert (early.start_h, early.end_h, early.name, early.working) == (6.0, 14.0, "early", True)
    late = calendar_shift_of(cal, 14.0)
    assert (late.start_h, late.end_h, late.name) == (14.0, 22.0, "late")
    night = calendar_shift_of(cal, 23.0)
    assert (night.start_h, night.end_h, night.name, night.working) == (22.0, FRI + 6.0, "off_shift", False)
    # Friday's late shift to Tuesday's early one: the weekend and Monday's holiday
    weekend = calendar_shift_of(cal, FRI + 30.0)
    assert (weekend.start_h, weekend.end_h, weekend.name) == (FRI + 22.0, TUE + 6.0, "holiday")


def test_working_hours_leave_out_breaks_nights_weekends_holidays_and_the_lines_planned_stops() -> None:
    assert working_hours(LINE, 0.0, 24.0) == pytest.approx(15.5)
    # Thursday to Wednesday: Thu, Fri, Tue and Wed (Monday is a holiday)
    assert working_hours(LINE, 0.0, 7 * 24.0) == pytest.approx(4 * 15.5)
    assert working_hours(LINE, 9.0, 11.0) == pytest.approx(1.5)
    stopped = make_line(
        {"id": "A", "cycle_time": 0.25},
        calendar=CALENDAR,
        planned_stops=[{"name": "pm", "start": "1970-01-01T12:00:00", "duration": 4}],
    )
    assert working_hours(stopped, 0.0, 24.0) == pytest.approx(11.5)
    # a station's own planned stop does not excuse the line from its plan
    own = make_line({"id": "A", "cycle_time": 0.25, "planned_stops": [{"start": "1970-01-01T12:00:00", "duration": 4}]})
    assert working_hours(own, 0.0, 24.0) == 24.0
    assert ShiftPlan(stopped, 4.0).plan_between(0.0, 24.0) == pytest.approx(46.0)


def test_the_live_shift_output_meets_a_plan_that_counts_only_working_time() -> None:
    """A loss-free line makes its plan: at 11:06, 4.6 working hours into the early shift (the break taken), 18 units
    (one every 15 min) against a plan of 18.4; off shift, no plan at all."""
    assert default_plan_per_hour(LINE) == 4.0
    _, events = record(LINE, 11.1)
    live = LiveLine(LINE, begin_h=0.0)
    for e in events:
        live(e)
    shift = live.status(11.1).shift
    assert shift is not None
    assert (shift.start_h, shift.end_h, shift.name) == (6.0, 14.0, "early")
    assert shift.plan == pytest.approx(18.4)
    assert shift.good == 18
    kpis = live.shift_kpis(11.1)
    assert kpis is not None
    assert (kpis.start_h, kpis.good) == (6.0, 18)
    _, events = record(LINE, 23.5)
    night = LiveLine(LINE, begin_h=0.0)
    for e in events:
        night(e)
    shift = night.status(23.5).shift
    assert shift is not None
    # the late shift's last unit, finished at 22:00 sharp, counts where its instant falls: in the stretch from 22:00
    assert (shift.start_h, shift.end_h, shift.name, shift.good, shift.plan) == (22.0, 30.0, "off_shift", 1, 0.0)


def test_a_line_without_a_calendar_keeps_its_fixed_shifts_and_a_plan_for_every_hour() -> None:
    line = make_line({"id": "A", "cycle_time": 0.25})
    live = LiveLine(line, begin_h=0.0, shift_hours=12.0, shift_origin_h=6.0)
    _, events = record(line, 9.0)
    for e in events:
        live(e)
    shift = live.status(9.0).shift
    assert shift is not None
    assert (shift.start_h, shift.end_h, shift.name) == (6.0, 18.0, "")
    assert shift.plan == pytest.approx(12.0)


def test_the_constraint_of_a_tree_counts_its_rate_in_units_shipped() -> None:
    """The anode branch's notcher makes 10 sheets an hour, the stacker takes 2 per cell: 5 cells an hour, below the
    stacker's 6; the plan is 5 times the yield from the notcher to the end."""
    line = make_line(
        {"id": "A_NOTCH", "cycle_time": 0.1, "buffer_after": 4, "scrap": 0.1},
        {"id": "C_NOTCH", "inputs": [], "cycle_time": 0.125, "buffer_after": 4, "scrap": 0.5},
        {"id": "STACK", "inputs": [{"station": "A_NOTCH", "per_unit": 2}, "C_NOTCH"], "cycle_time": 1 / 6, "buffer_after": 2},
        {"id": "TEST", "cycle_time": 0.1, "scrap": 0.2},
    )
    assert units_per_shipped(line) == {"A_NOTCH": 2, "C_NOTCH": 1, "STACK": 1, "TEST": 1}
    index, station = constraint_of(line)
    assert (index, station.id) == (0, "A_NOTCH")
    # the cathode branch's scrap is not on the path from the constraint to the end
    assert default_plan_per_hour(line) == pytest.approx(5.0 * 0.9 * 0.8)


def test_the_history_must_cover_the_longest_shift() -> None:
    long_shifts = make_line({"id": "A", "cycle_time": 1}, calendar={"shifts": [{"start": "06:00", "hours": 12}]})
    with pytest.raises(ValueError, match="at least one shift"):
        LiveLine(long_shifts, history_h=10.0)
    LiveLine(long_shifts, history_h=12.0)
