"""Live status: every station's state, since when and why, counts and buffers, the shift against plan, OEE so far."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from api.deps import LineDep, known_station
from api.errors import ApiError
from api.schemas import StationOut, StatusOut
from api.security import require
from api.views import station_out, status_out

router = APIRouter(prefix="/lines/{line}/status", tags=["status"], dependencies=[Depends(require("viewer"))])


@router.get("", response_model=StatusOut, summary="The line now")
async def get_status(rt: LineDep, machines: bool = Query(False, description="Include every machine")) -> Response:
    """Per station: state, since when, reason, machine counts, output, buffer level and latest process values; the
    shift's output against plan; OEE with its losses for the line and each station over the shift so far."""
    key = "status+machines" if machines else "status"
    # Built once per published snapshot and reused (serialised) until the next one: no lock, no replay.
    seen = rt.ingest_stats().data_seen_at
    stale_after = rt.settings.stale_after_s
    body = rt.cached(key, lambda snap: status_out(rt.line, snap, machines, seen, stale_after).model_dump_json().encode())
    return Response(body, media_type="application/json")


@router.get("/{station}", response_model=StationOut, summary="One station now, with every machine")
async def get_station(rt: LineDep, station: str) -> StationOut:
    """A station's live status with the state, since when, reason and counts of each machine."""

    known_station(rt, station, ("path", "station"))
    st = rt.snapshot.status.stations.get(station)  # the latest published snapshot: an attribute read
    if st is None:
        raise ApiError(503, f"station {station!r} has no live state yet")
    return station_out(st, machines=True, seen_at=rt.ingest_stats().data_seen_at.get(station))
