"""A warmed-up line to start a run from, stopped at an instant whose next hour is a typical one.

A line started empty ships nothing from its end until the first units have crossed it (the reference line's aging
store holds them 14 days), so a feed or a demo starts from a snapshot of the line after a warm-up. Where the
warm-up stops matters to whoever watches the first minutes: the aging store releases in any hour what entered it
14 days earlier, so a slow hour two weeks before the stop shows again at the line's end right after it. With seed
0, the reference line's first hour after exactly 504 h ships about 1,600 good cells where a typical hour ships
2,800: the dashboard would open on a crisis that is an accident of the stop time.

:func:`typical_start` therefore runs the warm-up (at least ``hours``), then looks a day ahead from each
candidate stop, in a separate run from its snapshot with the seed the feed will use (runs are deterministic given
snapshot and seed, so the feed then lives exactly that day), and stops at the first candidate, hour by hour, whose
first hour ships at least the median hour of that day at the line's end, with no quarter of it below half a
median quarter: an hour typical of the day it opens. (The warm-up's own last week is no measure: at 504 h its
line end still ships what entered the aging store during the first week, while the line was filling.) After
``max_extra_h`` candidates it takes the one whose first hour came closest and says that it found no typical one.

A line with a calendar or planned stops of its own ships nothing off shift: its typical hour is the median over
the day's hours that are wholly working time (``twin.shifts.working_hours``), and a candidate stop is typical only
if its first hour is one of them, so a demo opens on a working hour, not on a night or a break.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.engine import Engine
from twin.events import UnitsCompleted
from twin.schema import Line
from twin.shifts import working_hours
from twin.snapshot import LineSnapshot

__all__ = ["WarmStart", "typical_start"]

LOOKAHEAD_H = 24
"""How many hours ahead of a candidate stop the warm-up looks: a day, whose median hour is a typical hour."""
QUARTER_FLOOR = 0.5
"""No quarter of the first hour may ship less than this share of a typical hour's quarter."""


@dataclass(frozen=True)
class WarmStart:
    """Where a warm-up stopped and why: the snapshot to start from and how its first hour compares."""

    snapshot: LineSnapshot
    hours: float
    """Simulated hours run from empty (at least the asked warm-up; more when its first candidates were atypical)."""
    typical_per_hour: float
    """The median hourly line-end good output of the day after the snapshot (the feed's seed): a typical hour."""
    first_hour_good: int
    """Good units the line's end ships in the first hour after the snapshot."""
    typical: bool
    """Whether that hour is a typical one (see the module docstring); False after ``max_extra_h`` atypical tries,
    or when the line ships nothing in the working hours of the day ahead (then the snapshot is the one after
    ``hours``)."""


class _LineEnd:
    """Good units completed by the line's last station, per ``bin_h`` from ``origin_h``."""

    def __init__(self, last: str, origin_h: float, bin_h: float) -> None:
        self.last = last
        self.origin_h = origin_h
        self.bin_h = bin_h
        self.bins: dict[int, int] = {}

    def __call__(self, t: float, station: str, machine: int, good: int, scrap: int) -> None:
        if station == self.last and good:
            k = int((t - self.origin_h) // self.bin_h)
            self.bins[k] = self.bins.get(k, 0) + good

    def counts(self, first: int, n: int) -> list[int]:
        return [self.bins.get(k, 0) for k in range(first, first + n)]


def _day_ahead(line: Line, seed: int | tuple[int, ...], snapshot: LineSnapshot) -> tuple[float, list[int], bool, bool]:
    """The median hourly good output at the line's end over the day after ``snapshot`` (run with ``seed``; over its
    wholly working hours when it has any), the good output of each quarter of its first hour, whether that hour is
    wholly working time, and whether the day has any such hour."""
    engine = Engine(line, seed, snapshot)
    quarters = _LineEnd(line.stations[-1].id, snapshot.time_h, 0.25)
    engine.subscribe_fields(UnitsCompleted, quarters)
    engine.run(snapshot.time_h + LOOKAHEAD_H)
    counts = np.array(quarters.counts(0, 4 * LOOKAHEAD_H)).reshape(LOOKAHEAD_H, 4)
    hourly = counts.sum(axis=1)
    t0 = snapshot.time_h
    working = np.array([working_hours(line, t0 + h, t0 + h + 1) >= 1.0 - 1e-9 for h in range(LOOKAHEAD_H)])
    median = float(np.median(hourly[working])) if working.any() else float(np.median(hourly))
    return median, [int(q) for q in counts[0]], bool(working[0]), bool(working.any())


def _is_typical(median: float, quarters: list[int], working: bool = True) -> bool:
    return working and median > 0 and sum(quarters) >= median and min(quarters) >= QUARTER_FLOOR * median / 4


def typical_start(
    line: Line,
    seed: int | tuple[int, ...],
    hours: float,
    *,
    feed_seed: int | tuple[int, ...] | None = None,
    max_extra_h: int = 48,
) -> WarmStart:
    """Warm ``line`` up from empty for at least ``hours`` (seed ``seed``) and stop where the next hour, run with
    ``feed_seed`` (default ``seed``), is typical of the day it opens; see the module docstring."""
    if not (hours > 0 and np.isfinite(hours)):
        raise ValueError(f"warmup: simulated hours must be > 0, got {hours}")
    if max_extra_h < 0:
        raise ValueError(f"max_extra_h must be >= 0, got {max_extra_h}")
    ahead_seed = seed if feed_seed is None else feed_seed
    engine = Engine(line, seed)
    best: WarmStart | None = None
    last: WarmStart | None = None
    for extra in range(max_extra_h + 1):
        engine.run(hours + extra)
        snapshot = engine.snapshot()
        median, quarters, working, works = _day_ahead(line, ahead_seed, snapshot)
        here = WarmStart(snapshot, hours + extra, median, sum(quarters), _is_typical(median, quarters, working))
        if here.typical:
            return here
        if median <= 0 and works:  # the line ships nothing in a day's work: no hour is typical, waiting will not tell
            return here
        if (
            working
            and median > 0
            and (best is None or here.first_hour_good / median > best.first_hour_good / best.typical_per_hour)
        ):
            best = here
        last = here
    assert last is not None  # max_extra_h >= 0: at least one candidate
    return best if best is not None else last
