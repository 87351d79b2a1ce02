"""Shifts and the production plan: which shift a time falls in, and the good output a line is planned to make.

Shifts are consecutive blocks of ``hours`` aligned at ``origin_h`` (06:00, 14:00 and 22:00 UTC for 8-hour shifts
with origin 6 on an epoch clock; on an engine clock starting at 0, the first shift is ``[-2, 6)``).

The default plan is the constraint's ideal rate (the station with the lowest ``Station.ideal_rate``, the first in
flow order on ties) times the yield from it to the end, the product of ``1 - scrap`` over it and every station
after it: the good output per hour of a line that loses nothing but scrap. The plan so far in a shift is the plan
per hour times the hours since the shift began (or since the live state began, if later).
"""

from __future__ import annotations

import math

from twin.schema import Line
from twin.status import constraint_of

__all__ = ["default_plan_per_hour", "shift_of"]


def shift_of(t: float, hours: float, origin_h: float) -> tuple[float, float]:
    """The shift ``[start, end)`` of ``hours`` aligned at ``origin_h`` that time ``t`` falls in."""
    start = origin_h + math.floor((t - origin_h) / hours) * hours
    # floor of a quotient can land one shift off by rounding; the interval must hold t
    if start > t:
        start -= hours
    elif start + hours <= t:
        start += hours
    return start, start + hours


def default_plan_per_hour(line: Line) -> float:
    """The good output per hour of ``line`` if it lost nothing but scrap (see the module docstring)."""
    index, constraint = constraint_of(line)
    return constraint.ideal_rate * math.prod(1.0 - s.scrap for s in line.stations[index:])
