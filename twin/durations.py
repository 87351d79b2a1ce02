"""Durations with units: ``"90s"``, ``"20min"``, ``"4h"``, ``"14d"`` or a bare number in the line's time unit.

The engine keeps time in hours; every duration in a line file is converted to hours at validation.
"""

from __future__ import annotations

import re
from typing import Final, Literal

TimeUnit = Literal["s", "min", "h", "d"]

HOURS_PER_UNIT: Final[dict[str, float]] = {
    "s": 1.0 / 3600.0,
    "sec": 1.0 / 3600.0,
    "min": 1.0 / 60.0,
    "h": 1.0,
    "hr": 1.0,
    "d": 24.0,
    "day": 24.0,
    "days": 24.0,
    "w": 168.0,
}

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]+)\s*$")


def to_hours(value: object, time_unit: str) -> float:
    """The duration ``value`` (a number in ``time_unit`` or a string with a unit) in hours.

    Raises ``ValueError`` naming the value when it is not a non-negative duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), time_unit
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration such as '90s', '20min', '4h' or '2d'")
        number, unit = float(match.group(1)), match.group(2)
    else:
        raise ValueError(f"expected a duration, got {value!r}")
    if unit not in HOURS_PER_UNIT:
        raise ValueError(f"unknown time unit {unit!r} in {value!r}; use one of s, min, h, d")
    if number < 0 or number != number:
        raise ValueError(f"a duration cannot be negative or NaN: {value!r}")
    return number * HOURS_PER_UNIT[unit]
