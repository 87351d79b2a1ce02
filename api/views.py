"""Twin results as API responses: the line, its live status and its KPIs in the shapes of :mod:`api.schemas`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import pairwise

from api.live import LiveSnapshot
from api.schemas import (
    LineOeeOut,
    LineOut,
    MachineOut,
    OeeOut,
    ProcessValueOut,
    ShiftOut,
    StationOeeOut,
    StationOut,
    StationSpecOut,
    StatusOut,
    StoreOut,
    hours_to_datetime,
)
from twin.kpis import RunKpis
from twin.schema import Line
from twin.state import LineStatus, StationStatus, line_oee

__all__ = ["line_out", "oee_out", "station_out", "status_out"]


def line_out(line: Line, constraint: str, plan_per_hour: float, shift_hours: float) -> LineOut:
    """The line's description and topology, with the plan (as of a snapshot)."""
    stations = []
    for st in line.stations:
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
            )
        )
    ids = [st.id for st in line.stations]
    return LineOut(
        id=line.name,
        stations=stations,
        edges=list(pairwise(ids)),
        constraint=constraint,
        plan_per_hour=plan_per_hour,
        shift_hours=shift_hours,
        config_hash=line.config_hash(),
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
    )
