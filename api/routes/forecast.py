"""Forecasts of the line from its live state: good output to the horizon with its spread, the plan, station risks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.deps import LineDep
from api.errors import ApiError
from api.forecaster import NotReady
from api.schemas import ForecastOut
from api.security import require
from twin.forecast import MAX_HORIZON_H, MIN_HORIZON_H

router = APIRouter(prefix="/lines/{line}", tags=["forecast"], dependencies=[Depends(require("viewer"))])

MAX_REPLICATIONS = 2000
"""The most replications one request may ask for (a forecast on demand holds a process for its duration)."""


@router.get("/forecast", response_model=ForecastOut, summary="Forecast of good output and downtime")
async def forecast(
    rt: LineDep,
    horizon_h: Annotated[
        float | None,
        Query(
            ge=MIN_HORIZON_H,
            le=MAX_HORIZON_H,
            description="Hours ahead, a minute to a week (default: to the shift's end, at least an hour)",
        ),
    ] = None,
    replications: Annotated[
        int | None, Query(ge=1, le=MAX_REPLICATIONS, description="Replications (default: the setting forecast_replications)")
    ] = None,
    seed: Annotated[int, Query(ge=0, description="The forecast's seed")] = 0,
) -> dict[str, Any]:
    """Without parameters: the service's latest default forecast (to the end of the current shift, against its plan,
    refreshed every ``forecast_period_s``; ``as_of`` says when; the first is waited for, up to two minutes after
    the service's start). With any (or with ``forecast_period_s`` 0): one computed now for them."""
    budget = rt.settings.forecast_max_replication_hours
    asked = (replications or rt.settings.forecast_replications) * (horizon_h or rt.settings.shift_hours)
    if (horizon_h is not None or replications is not None) and asked > budget:
        message = (
            f"replications x horizon_h = {asked:g} replication-hours is more than this service computes for one request "
            f"({budget:g}, setting forecast_max_replication_hours): ask for fewer replications or a shorter horizon"
        )
        raise ApiError(400, message, details=[{"loc": ["query", "replications"], "msg": message, "type": "too_costly"}])
    try:
        if horizon_h is None and replications is None and seed == 0 and rt.settings.forecast_period_s > 0:
            latest, error = await rt.latest_forecast()  # the first one is computed from the service's start: wait
            if latest is None:
                why = f"the last attempt failed: {error}" if error else "it is still being computed"
                raise ApiError(503, f"the service has no forecast yet: {why}", code="not_ready")
            return latest
        return await rt.forecast(horizon_h, replications, seed)
    except NotReady as exc:
        raise ApiError(409, str(exc), code="not_ready") from None
    except ValueError as exc:
        raise ApiError(400, str(exc), details=[{"loc": ["query"], "msg": str(exc), "type": "value_error"}]) from None
