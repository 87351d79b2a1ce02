"""When a line is asked to work: its shift calendar and planned stops, as stretches of the engine's clock.

The engine's clock is hours since the Unix epoch (UTC), as the live plant's is (``t = ts_ms / 3_600_000``); a
simulation started at 0 starts on Thursday 1970-01-01 00:00 UTC. Calendar times (a shift's start, a break, a
holiday, a planned stop's start) are local times in the calendar's ``timezone`` (an IANA name, default UTC), so
shifts keep their wall-clock times across daylight-saving changes.

Outside working time a station is in a PLANNED_STOP whose reason says why: ``off_shift`` (no shift), ``break``
(a break inside a shift), ``holiday`` (a dated exception that cancels the shifts starting that day), or a
planned stop's name. Where several apply at once the reason is the first of: the station's own planned stop,
the line's planned stop, holiday, break, off_shift. A line without a calendar works round the clock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from twin.durations import to_hours

__all__ = [
    "BREAK",
    "HOLIDAY",
    "OFF_SHIFT",
    "Break",
    "Calendar",
    "PlannedStop",
    "Shift",
    "StopTimeline",
    "StopWindow",
    "epoch_hours",
]

OFF_SHIFT, BREAK, HOLIDAY = "off_shift", "break", "holiday"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])(:00)?$")  # a calendar dumped as JSON says 06:00:00
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_hours(moment: dt.datetime) -> float:
    """``moment`` (timezone-aware) as hours since the Unix epoch, the engine's clock."""
    return (moment - _EPOCH).total_seconds() / 3600.0


def _clock(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        # YAML 1.1 reads an unquoted 06:00 as the sexagesimal number 360 (minutes)
        return dt.time(value // 60, value % 60)
    if not isinstance(value, str) or not _CLOCK.match(value.strip()):
        raise ValueError(f"expected a clock time such as '06:00', got {value!r}")
    hours, minutes = value.strip().split(":")[:2]
    return dt.time(int(hours), int(minutes))


def _duration(value: Any, info: ValidationInfo) -> float:
    return to_hours(value, (info.context or {}).get("time_unit", "h"))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Shift(_Model):
    """A shift: it starts at local clock time ``start`` on each working day and lasts ``hours``."""

    name: str = ""
    start: dt.time
    hours: float = Field(gt=0, le=24)
    """Its length in hours (a plain number: a shift's length is always given in hours)."""

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> dt.time:
        return _clock(value)

    @property
    def offset_h(self) -> float:
        """The start as hours after local midnight."""
        return self.start.hour + self.start.minute / 60.0


class Break(_Model):
    """A break at local clock time ``start`` lasting ``duration``, taken in whichever shift it falls in."""

    name: str = ""
    start: dt.time
    duration: float = Field(gt=0)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> dt.time:
        return _clock(value)

    @field_validator("duration", mode="before")
    @classmethod
    def _dur(cls, value: Any, info: ValidationInfo) -> float:
        return _duration(value, info)

    @property
    def offset_h(self) -> float:
        """The start as hours after local midnight."""
        return self.start.hour + self.start.minute / 60.0


class Calendar(_Model):
    """The line's working pattern: shifts starting on working ``days``, breaks, and dated ``holidays``.

    Examples: 3 x 8 h on 5 days = shifts at 06:00, 14:00, 22:00 of 8 h with ``days: [mon, tue, wed, thu, fri]``;
    4-crew continuous = shifts at 06:00 and 18:00 of 12 h on every day (the default ``days``).
    """

    timezone: str = "UTC"
    shifts: tuple[Shift, ...] = Field(min_length=1)
    days: tuple[str, ...] = WEEKDAYS
    """The weekdays (mon .. sun) on which shifts start; a shift starting late on the last one runs into the next day."""
    breaks: tuple[Break, ...] = ()
    holidays: tuple[dt.date, ...] = ()
    """Dates on which no shift starts (a shift started the day before runs to its end)."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known IANA time zone such as 'UTC' or 'Europe/Berlin'") from None
        return value

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            out = []
            for d in value:
                name = str(d).strip().lower()[:3]
                if name not in WEEKDAYS:
                    raise ValueError(f"{d!r} is not a weekday; use mon, tue, wed, thu, fri, sat, sun")
                out.append(name)
            if len(set(out)) != len(out):
                raise ValueError(f"weekdays repeat: {list(value)}")
            return tuple(out)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Calendar:
        # shifts on the 24-hour circle: two that share any time of day would both run then
        spans = sorted((s.offset_h, s.offset_h + s.hours, i) for i, s in enumerate(self.shifts))
        for a in range(len(spans)):
            for b in range(a + 1, len(spans)):
                s1, e1, i = spans[a]
                s2, e2, j = spans[b]
                if s2 < e1 or s1 + 24 < e2:
                    first, second = sorted((i, j))
                    raise ValueError(
                        f"shifts[{first}] and shifts[{second}] overlap "
                        f"({self.shifts[first].start:%H:%M} for {self.shifts[first].hours:g} h, "
                        f"{self.shifts[second].start:%H:%M} for {self.shifts[second].hours:g} h)"
                    )
        for k, brk in enumerate(self.breaks):
            inside = any(
                s.offset_h <= o and o + brk.duration <= s.offset_h + s.hours
                for s in self.shifts
                for o in (brk.offset_h, brk.offset_h + 24)
            )
            if not inside:
                raise ValueError(f"breaks[{k}] ({brk.start:%H:%M}, {brk.duration * 60:g} min) does not lie inside any shift")
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone."""
        return ZoneInfo(self.timezone)

    def local_at(self, date: dt.date, offset_h: float) -> float:
        """The engine time of local ``date`` + ``offset_h`` hours of clock time."""
        minutes = round(offset_h * 60)
        base = dt.datetime(date.year, date.month, date.day, tzinfo=self.zone)
        local = base + dt.timedelta(minutes=minutes)
        # wall-clock arithmetic, then the zone's offset at that wall time (a shift at 06:00 stays at 06:00)
        local = dt.datetime.combine(local.date(), local.time(), tzinfo=self.zone)
        return epoch_hours(local)

    def stretches(self, t0: float, t1: float) -> list[tuple[float, float, str | None]]:
        """The calendar's stretches overlapping ``[t0, t1)`` in time order, each ``(start, end, reason)``: reason
        None while working, else ``off_shift``, ``break`` or ``holiday`` (clipped to ``[t0, t1)``)."""
        zone = self.zone
        first = dt.datetime.fromtimestamp(t0 * 3600.0, zone).date() - dt.timedelta(days=2)
        last = dt.datetime.fromtimestamp(t1 * 3600.0, zone).date() + dt.timedelta(days=1)
        holidays = set(self.holidays)
        working: list[tuple[float, float]] = []
        cancelled: list[tuple[float, float]] = []
        breaks: list[tuple[float, float]] = []
        day = first
        while day <= last:
            if WEEKDAYS[day.weekday()] in self.days:
                for s in self.shifts:
                    a = self.local_at(day, s.offset_h)
                    span = (a, a + s.hours)
                    (cancelled if day in holidays else working).append(span)
            for brk in self.breaks:
                at = self.local_at(day, brk.offset_h)
                breaks.append((at, at + brk.duration))
            day += dt.timedelta(days=1)
        # elementary pieces between every boundary, each labelled by what covers it
        cuts = {t0, t1}
        for a, b in (*working, *cancelled, *breaks):
            if b > t0 and a < t1:
                cuts.update(x for x in (a, b) if t0 < x < t1)
        points = sorted(cuts)
        out: list[tuple[float, float, str | None]] = []
        for a, b in itertools.pairwise(points):
            mid = (a + b) / 2.0
            reason: str | None
            if any(x <= mid < y for x, y in working):
                reason = BREAK if any(x <= mid < y for x, y in breaks) else None
            elif any(x <= mid < y for x, y in cancelled):
                reason = HOLIDAY
            else:
                reason = OFF_SHIFT
            if out and out[-1][2] == reason:
                out[-1] = (out[-1][0], b, reason)
            else:
                out.append((a, b, reason))
        return out

    def working_hours(self, t0: float, t1: float) -> float:
        """Hours of working time in ``[t0, t1)``."""
        return sum(b - a for a, b, r in self.stretches(t0, t1) if r is None)


class PlannedStop(_Model):
    """A planned stop: from ``start`` (a local date-time in the calendar's zone, or with its own offset) for
    ``duration``, repeated every ``every`` if given (before ``start`` as well as after it).

    ``after_batch``: machines working on a batch (or a unit) when the stop begins finish it first and stop for
    the rest of the window; otherwise work stops at once and resumes where it was after the stop.
    """

    name: str = Field(default="planned_stop", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    start: dt.datetime
    duration: float = Field(gt=0)
    every: float | None = Field(default=None, gt=0)
    after_batch: bool = False

    @field_validator("duration", "every", mode="before")
    @classmethod
    def _dur(cls, value: Any, info: ValidationInfo) -> float | None:
        return None if value is None else _duration(value, info)

    @model_validator(mode="after")
    def _fits(self) -> PlannedStop:
        if self.every is not None and self.duration >= self.every:
            raise ValueError(
                f"duration {self.duration:g} h is not shorter than its period every {self.every:g} h (the stop would never end)"
            )
        return self

    def start_h(self, zone: str) -> float:
        """The first window's start on the engine clock (a naive ``start`` is local time in ``zone``)."""
        start = self.start if self.start.tzinfo is not None else self.start.replace(tzinfo=ZoneInfo(zone))
        return epoch_hours(start)

    def windows(self, t0: float, t1: float, zone: str) -> list[tuple[float, float]]:
        """The stop's windows overlapping ``[t0, t1)``, unclipped."""
        s = self.start_h(zone)
        if self.every is None:
            return [(s, s + self.duration)] if s < t1 and s + self.duration > t0 else []
        k = math.floor((t0 - s - self.duration) / self.every)
        out = []
        while True:
            a = s + k * self.every
            if a >= t1:
                break
            if a + self.duration > t0:
                out.append((a, a + self.duration))
            k += 1
        return out


@dataclass(frozen=True, slots=True)
class StopWindow:
    """A stretch of a station's time: ``reason`` None while asked to work, else why it is in a planned stop.

    ``after_batch``: the stop lets machines finish the batch they are working on first.
    """

    start: float
    end: float
    reason: str | None
    after_batch: bool = False


class StopTimeline:
    """A station's planned stops over time: the calendar's, the line's planned stops, its own.

    :meth:`at` answers for one instant with the stretch it falls in; computed a week at a time and cached.
    """

    CHUNK_H = 168.0

    def __init__(
        self,
        calendar: Calendar | None,
        line_stops: Iterable[PlannedStop] = (),
        own_stops: Iterable[PlannedStop] = (),
    ) -> None:
        self.calendar = calendar
        self.zone = calendar.timezone if calendar is not None else "UTC"
        self.own = tuple(own_stops)
        self.line = tuple(line_stops)
        self._windows: list[StopWindow] = []
        self._span = (math.inf, -math.inf)

    @property
    def always_working(self) -> bool:
        """True when nothing ever stops the station (no calendar, no planned stops)."""
        return self.calendar is None and not self.own and not self.line

    def _compute(self, t0: float, t1: float) -> list[StopWindow]:
        pieces: list[tuple[float, float, int, str, bool]] = []  # (start, end, priority, reason, after_batch)
        for stops, prio in ((self.own, 0), (self.line, 1)):
            for ps in stops:
                for a, b in ps.windows(t0, t1, self.zone):
                    pieces.append((max(a, t0), min(b, t1), prio, ps.name, ps.after_batch))
        if self.calendar is not None:
            order = {HOLIDAY: 2, BREAK: 3, OFF_SHIFT: 4}
            for a, b, reason in self.calendar.stretches(t0, t1):
                if reason is not None:
                    pieces.append((a, b, order[reason], reason, False))
        cuts = sorted({t0, t1, *(p[0] for p in pieces), *(p[1] for p in pieces)})
        out: list[StopWindow] = []
        for a, b in itertools.pairwise(cuts):
            if b <= a:
                continue
            mid = (a + b) / 2.0
            covering = [p for p in pieces if p[0] <= mid < p[1]]
            if covering:
                best = min(covering, key=lambda p: p[2])
                w = StopWindow(a, b, best[3], best[4])
            else:
                w = StopWindow(a, b, None)
            if out and out[-1].reason == w.reason and out[-1].after_batch == w.after_batch:
                out[-1] = StopWindow(out[-1].start, b, w.reason, w.after_batch)
            else:
                out.append(w)
        return out

    def at(self, t: float) -> StopWindow:
        """The stretch ``t`` falls in (its end may be a chunk boundary where nothing changes)."""
        if self.always_working:
            return StopWindow(-math.inf, math.inf, None)
        lo, hi = self._span
        if not (lo <= t < hi):
            start = t
            self._windows = self._compute(start, start + self.CHUNK_H)
            self._span = (start, start + self.CHUNK_H)
        for w in self._windows:
            if w.start <= t < w.end:
                return w
        # unreachable: the chunk covers t
        return StopWindow(t, t + self.CHUNK_H, None)  # pragma: no cover
