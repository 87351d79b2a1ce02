"""Twin results as API responses: the line, its live status and its KPIs in the shapes of :mod:`api.schemas`."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from api.live import LiveSnapshot
from api.schemas import (
    BranchOut,
    CalendarNowOut,
    CalendarOut,
    ChangeoverOut,
    LineOeeOut,
    LineOut,
    MachineOut,
    OeeOut,
    PlannedStopOut,
    ProcessValueOut,
    ShiftOut,
    ShiftSpecOut,
    StationInputOut,
    StationOeeOut,
    StationOut,
    StationSpecOut,
    StatusOut,
    StoreOut,
    StretchOut,
    hours_to_datetime,
)
from twin.calendar import WEEKDAYS, Calendar, PlannedStop, StopTimeline
from twin.kpis import RunKpis
from twin.schema import Line
from twin.state import LineStatus, StationStatus, line_oee

__all__ = ["TRUNK", "Branch", "branches", "calendar_now", "line_out", "oee_out", "station_out", "status_out"]

TRUNK = "trunk"
"""The branch id of the chain of stations that ends at the line's last station."""


class Branch(NamedTuple):
    """A chain of stations, each feeding the next (see :func:`branches`)."""

    id: str
    stations: list[str]
    into: str | None


def branches(line: Line) -> list[Branch]:
    """The line split at its merge stations into chains, in the line file's order of their first stations (so each
    chain comes before the one it merges into, and the trunk last). A chain starts at a branch start (a station taking
    from the line's supply) or at a merge station (one with several inputs) and runs down the flow to the station
    before the next merge station, or to the last station: that chain is the trunk (id ``trunk``); the others are
    named by their first station. A serial line is one chain, its trunk."""
    inputs, consumer = line.inputs, line.consumer
    merges = {sid for sid, ins in inputs.items() if len(ins) > 1}
    out = []
    for st in line.stations:
        if inputs[st.id] and st.id not in merges:
            continue  # inside a chain
        chain = [st.id]
        while chain[-1] in consumer and consumer[chain[-1]] not in merges:
            chain.append(consumer[chain[-1]])
        into = consumer.get(chain[-1])
        out.append(Branch(TRUNK if into is None else chain[0], chain, into))
    return out


def _planned_stop_out(stop: PlannedStop, zone: str) -> PlannedStopOut:
    return PlannedStopOut(
        name=stop.name,
        start=hours_to_datetime(stop.start_h(zone)),
        duration_h=stop.duration,
        every_h=stop.every,
        after_batch=stop.after_batch,
    )


def _calendar_out(cal: Calendar) -> CalendarOut:
    return CalendarOut(
        timezone=cal.timezone,
        days=list(cal.days),
        shifts=[ShiftSpecOut(name=s.name, start=f"{s.start:%H:%M}", hours=s.hours) for s in cal.shifts],
        breaks=[ShiftSpecOut(name=b.name, start=f"{b.start:%H:%M}", hours=b.duration) for b in cal.breaks],
        holidays=[d.isoformat() for d in cal.holidays],
    )


def line_out(line: Line, constraint: str, plan_per_hour: float, shift_hours: float) -> LineOut:
    """The line's description and topology (each station's inputs, the station it feeds and its branch; the line's
    chains of stations), its calendar and planned stops, with the plan (as of a snapshot)."""
    zone = line.calendar.timezone if line.calendar is not None else "UTC"
    chains = branches(line)
    branch_of = {sid: b.id for b in chains for sid in b.stations}
    consumer = line.consumer
    stations = []
    for st in line.stations:
        change = st.changeover
        stations.append(
            StationSpecOut(
                id=st.id,
                name=st.name or st.id,
                kind=st.kind,
                machines=st.machines,
                ideal_rate_per_hour=st.ideal_rate,
                batch_size=st.batch_size,
                scrap=st.scrap,
                capacity=st.capacity,
                dwell_h=st.dwell.mean_value if st.dwell is not None else None,
                buffer_after=st.buffer_after if st is not line.stations[-1] else 0,
                signals={name: sig.unit for name, sig in st.signals.items()},
                inputs=[StationInputOut(station=i.station, per_unit=i.per_unit) for i in line.inputs[st.id]],
                feeds=consumer.get(st.id),
                branch=branch_of[st.id],
                changeover=None
                if change is None
                else ChangeoverOut(
                    name=change.name,
                    mean_duration_h=change.duration.mean_value,
                    every_units=change.every_units,
                    schedule=None if change.schedule is None else _planned_stop_out(change.schedule, zone),
                ),
                planned_stops=[_planned_stop_out(p, zone) for p in st.planned_stops],
            )
        )
    return LineOut(
        id=line.name,
        stations=stations,
        edges=[(i.station, st.id) for st in line.stations for i in line.inputs[st.id]],
        constraint=constraint,
        plan_per_hour=plan_per_hour,
        shift_hours=shift_hours,
        config_hash=line.config_hash(),
        branches=[BranchOut(id=b.id, stations=b.stations, into=b.into) for b in chains],
        calendar=None if line.calendar is None else _calendar_out(line.calendar),
        planned_stops=[_planned_stop_out(p, zone) for p in line.planned_stops],
    )


# -- the calendar's position -----------------------------------------------------------------------------------------
LOOK_BACK_H = 168.0
"""How far back the current stretch's start is looked for (a stretch that began earlier has no ``since``)."""
LOOK_AHEAD_MAX_H = 400 * 24.0
"""How far ahead the current stretch's end is looked for (a stretch that lasts longer has no ``until``)."""


def _stretches(timeline: StopTimeline, t0: float, limit: float) -> Iterator[tuple[float, float, str | None]]:
    """The line's stretches from ``t0`` on, each ``(start, end, reason)`` with neighbours of one reason merged (the
    timeline cuts its windows at the edges of the weeks it computes); the last one yielded ends at or after ``limit``,
    its end ``math.inf`` if it lasts beyond it."""
    start, end, reason = t0, t0, None
    t = t0
    first = True
    while t < limit:
        w = timeline.at(t)
        if first or w.reason == reason:
            end = w.end
            reason = w.reason if first else reason
            first = False
        else:
            yield start, end, reason
            start, end, reason = w.start, w.end, w.reason
        t = end
    yield start, (end if end < limit else math.inf), reason


def _shift_at(cal: Calendar, t: float) -> tuple[str, float, float] | None:
    """The calendar's shift that ``t`` falls in, as (name, start, end): a shift that started on a working day that is
    not a holiday (None outside shifts)."""
    today = datetime.fromtimestamp(t * 3600.0, cal.zone).date()
    holidays = set(cal.holidays)
    for day in (today - dt.timedelta(days=1), today):
        if WEEKDAYS[day.weekday()] not in cal.days or day in holidays:
            continue
        for s in cal.shifts:
            a = cal.local_at(day, s.offset_h)
            if a <= t < a + s.hours:
                return s.name or f"{s.start:%H:%M}", a, a + s.hours
    return None


def calendar_now(line: Line, at_h: float, ahead_h: float = 24.0) -> CalendarNowOut:
    """Where the line's calendar stands at ``at_h`` (hours since the epoch): working or why not (the calendar's
    off-shift time, breaks and holidays, and the line's planned stops), since and until when, the shift it falls in,
    and the stretches through the next ``ahead_h`` hours. A station's own planned stops are not the line's: they show
    in its state."""
    at = hours_to_datetime(at_h)
    timeline = StopTimeline(line.calendar, line.planned_stops)
    if timeline.always_working:
        return CalendarNowOut(
            at=at, working=True, reason=None, since=None, until=None, shift=None, shift_start=None, shift_end=None, stretches=[]
        )
    stretches: list[tuple[float, float, str | None]] = []
    current: tuple[float, float, str | None] | None = None
    for a, b, reason in _stretches(timeline, at_h - LOOK_BACK_H, at_h + LOOK_AHEAD_MAX_H):
        if b <= at_h:
            continue
        if current is None:
            current = (a, b, reason)
        if a >= at_h + ahead_h:
            break
        stretches.append((a, b, reason))
        if b >= at_h + ahead_h:
            break
    assert current is not None  # the stretches cover every time up to the limit
    start, end, reason = current
    shift = _shift_at(line.calendar, at_h) if line.calendar is not None else None

    def when(h: float) -> datetime | None:
        return hours_to_datetime(h) if math.isfinite(h) else None

    return CalendarNowOut(
        at=at,
        working=reason is None,
        reason=reason,
        since=None if start <= at_h - LOOK_BACK_H else hours_to_datetime(start),
        until=when(end),
        shift=None if shift is None else shift[0],
        shift_start=None if shift is None else hours_to_datetime(shift[1]),
        shift_end=None if shift is None else hours_to_datetime(shift[2]),
        stretches=[StretchOut(start=hours_to_datetime(a), end=when(b), reason=r) for a, b, r in stretches],
    )


def _wall(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def station_out(st: StationStatus, machines: bool = False, seen_at: float | None = None) -> StationOut:
    """One station's live status (since when and why by the one station-summary rule of ``twin.status``), when its
    newest data was taken (``seen_at``, wall clock); per machine only when ``machines``."""
    since = st.since_h
    capacity = st.buffer_capacity
    fill = None
    if st.buffer_level is not None and capacity:
        fill = min(1.0, st.buffer_level / capacity)
    store = None
    if st.store is not None:
        s = st.store
        store = StoreOut(
            dwelling=s.dwelling,
            held=s.held,
            intake_blocked=s.intake_blocked,
            capacity=s.capacity,
            fill=min(1.0, (s.dwelling + s.held) / s.capacity),
        )
    return StationOut(
        id=st.id,
        kind=st.kind,
        data_seen_at=_wall(seen_at),
        state=None if st.state is None else st.state.value,
        since=None if since is None else hours_to_datetime(since),
        reason=st.reason,
        machine_counts=st.machine_counts,
        down_share=st.down_share,
        good=st.good,
        scrapped=st.scrapped,
        buffer_level=st.buffer_level,
        buffer_capacity=capacity,
        buffer_fill=fill,
        store=store,
        process_values={
            name: ProcessValueOut(value=v.value, unit=v.unit, at=hours_to_datetime(v.t), machine=v.machine)
            for name, v in st.process_values.items()
        },
        machines=[
            MachineOut(
                machine=m.machine,
                state=None if m.state is None else m.state.value,
                since=None if m.since_h is None else hours_to_datetime(m.since_h),
                reason=m.reason,
                good=m.good,
                scrapped=m.scrapped,
            )
            for m in st.machines
        ]
        if machines
        else None,
    )


def _defined(x: float) -> float | None:
    """``x``, or None where it is not defined (NaN: a window spent wholly in a planned stop)."""
    return None if math.isnan(x) else x


def oee_out(line: Line, kpis: RunKpis) -> OeeOut:
    """OEE over the window of ``kpis``: the line's (its constraint station's), and every station's."""
    lo = line_oee(line, kpis)
    return OeeOut(
        start=hours_to_datetime(kpis.start_h),
        end=hours_to_datetime(kpis.end_h),
        line=LineOeeOut(
            constraint=lo.constraint,
            availability=_defined(lo.availability),
            performance=_defined(lo.performance),
            quality=lo.quality,
            oee=_defined(lo.oee),
            throughput_per_hour=kpis.throughput_per_hour,
            good=kpis.good,
            scrapped=kpis.scrapped,
        ),
        stations=[
            StationOeeOut(
                id=sid,
                availability=_defined(s.availability),
                performance=_defined(s.performance),
                quality=s.quality,
                oee=_defined(s.oee),
                state_fractions=s.state_fractions,
                throughput_per_hour=s.throughput_per_hour,
                good=s.good,
                scrapped=s.scrapped,
            )
            for sid, s in kpis.stations.items()
        ],
        bottleneck=kpis.bottleneck,
        bottleneck_shares=kpis.bottleneck_shares,
        active_periods=kpis.active_periods,
    )


def status_out(
    line: Line,
    snapshot: LiveSnapshot,
    machines: bool = False,
    seen_at: Mapping[str, float] | None = None,
    stale_after_s: float = 120.0,
) -> StatusOut:
    """The live status of a snapshot: stations, the shift against plan, and the shift's OEE so far; with when each
    station's newest data was taken (``seen_at``, wall clock), for clients to tell stale data from live."""
    seen = seen_at or {}
    st: LineStatus = snapshot.status
    shift = None
    if st.shift is not None:
        sh = st.shift
        shift = ShiftOut(
            start=hours_to_datetime(sh.start_h),
            end=hours_to_datetime(sh.end_h),
            good=sh.good,
            plan=sh.plan,
            attainment=sh.good / sh.plan if sh.plan > 0 else None,
        )
    kpis = snapshot.shift_kpis
    return StatusOut(
        line=st.line,
        now=None if st.clock_h is None else hours_to_datetime(st.clock_h),
        shift=shift,
        good=st.good,
        scrapped=st.scrapped,
        released=st.released,
        wip=st.wip,
        events=st.events,
        late_events=st.late_events,
        dropped_events=st.dropped_events,
        stations=[station_out(s, machines, seen.get(s.id)) for s in st.stations.values()],
        oee=None if kpis is None else oee_out(line, kpis),
        data_seen_at=_wall(max(seen.values(), default=None)),
        history_start=None if st.history_start_h is None else hours_to_datetime(st.history_start_h),
        stale_after_s=stale_after_s,
        calendar=None if st.clock_h is None else calendar_now(line, st.clock_h),
    )
