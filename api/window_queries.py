"""Window queries as module-level functions of plain values, to run in the window-query process pool.

Each takes the line, a :class:`~twin.history.HistoryView` (sent as ``view.since(start)``: what the window needs) and
the window, replays the history and returns the response model; nothing here reads the live state or the
settings, so a function and its arguments can be pickled to another process (:meth:`api.live.LiveStatePublisher.query`)
and answer there exactly what they answer in the service's own process. A bad window raises ``ValueError`` (a 400).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from api.schemas import (
    AttributedStopOut,
    AttributionOut,
    CauseOut,
    DowntimeOut,
    DowntimeReasonOut,
    OeeOut,
    StationDowntimeOut,
    TraceStepOut,
    hours_to_datetime,
)
from api.views import oee_out
from twin.history import HistoryView
from twin.schema import Line
from twin.stops import DowntimeEntry, attribute_stops, downtime_pareto

__all__ = ["AsJson", "downtime", "oee", "stops"]


class AsJson:
    """A window query whose answer comes back as its response's JSON body: the replay, the response model and its
    serialisation all happen where the query runs (the window-query process), and the service's event loop only
    passes the bytes on. ``fn`` must be a module-level function (it is pickled by reference)."""

    def __init__(self, fn: Callable[..., BaseModel]) -> None:
        self.fn = fn

    def __call__(self, line: Line, view: HistoryView, start_h: float, end_h: float, *args: Any) -> bytes:
        """``fn``'s answer as JSON (by field alias, non-finite numbers as null, as FastAPI writes a response model)."""
        return self.fn(line, view, start_h, end_h, *args).model_dump_json(by_alias=True).encode()


def oee(line: Line, view: HistoryView, start_h: float, end_h: float) -> OeeOut:
    """The OEE of ``line`` and each station over ``[start_h, end_h]`` of ``view``."""
    return oee_out(line, view.kpis(start_h, end_h, shares=True))


def _reason(e: DowntimeEntry) -> DowntimeReasonOut:
    return DowntimeReasonOut(
        station=e.station,
        state=e.state.value,
        reason=e.reason,
        hours=e.hours,
        stops=e.stops,
        share=e.share,
        cumulative_share=e.cumulative_share,
    )


def downtime(line: Line, view: HistoryView, start_h: float, end_h: float, top: int) -> DowntimeOut:
    """The downtime Pareto of ``[start_h, end_h)`` of ``view``, the ``top`` line-wide entries and every station's."""
    p = downtime_pareto(view.state_events(start_h, end_h), line, start_h, end_h)
    return DowntimeOut(
        start=hours_to_datetime(p.start_h),
        end=hours_to_datetime(p.end_h),
        hours=p.hours,
        line=[_reason(e) for e in p.line[:top]],
        stations={
            sid: StationDowntimeOut(hours=d.hours, reasons=[_reason(e) for e in d.entries]) for sid, d in p.stations.items()
        },
    )


def stops(
    line: Line,
    view: HistoryView,
    start_h: float,
    end_h: float,
    station: str | None,
    limit: int,
    plan_per_hour: float = 0.0,
) -> AttributionOut:
    """The stops of ``station`` (None: the last) in ``[start_h, end_h)`` of ``view`` traced to their causes with the
    output each cost against a plan of ``plan_per_hour``, the ``limit`` newest listed."""
    a = attribute_stops(view.state_events(start_h, end_h), line, start_h, end_h, station=station)
    listed = a.stops[::-1][:limit]
    return AttributionOut(
        station=a.station,
        start=hours_to_datetime(a.start_h),
        end=hours_to_datetime(a.end_h),
        stopped_hours=a.stopped_h,
        causes=[
            CauseOut(
                station=c.station,
                kind=c.kind.value,
                reason=c.reason,
                hours=c.hours,
                stops=c.stops,
                share=c.share,
                cumulative_share=c.cumulative_share,
                lost_units=c.hours * plan_per_hour,
                share_of_plan=c.hours / (a.end_h - a.start_h) if a.end_h > a.start_h else 0.0,
            )
            for c in a.causes
        ],
        total_stops=len(a.stops),
        stops=[
            AttributedStopOut(
                start=hours_to_datetime(s.start_h),
                end=hours_to_datetime(s.end_h),
                hours=s.duration_h,
                cause_station=s.cause_station,
                cause_kind=s.cause_kind.value,
                cause_reason=s.cause_reason,
                chain=[
                    TraceStepOut(
                        station=c.station, state=c.state.value, at=hours_to_datetime(c.t), since=hours_to_datetime(c.since_h)
                    )
                    for c in s.chain
                ],
            )
            for s in listed
        ],
    )
