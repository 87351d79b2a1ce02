"""Forecasts of the line from its live state: good output to the horizon with its spread, the plan, station risks."""

from __future__ import annotations

import logging
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from api.deps import LineDep
from api.errors import ApiError
from api.forecaster import NotReady
from api.schemas import ErrorOut, ForecastAccuracyOut, ForecastOut, hours_to_datetime
from api.security import require
from twin.forecast import MAX_HORIZON_H, MIN_HORIZON_H
from twin.scoring import Score, accuracy

log = logging.getLogger("gigatwin.api")

router = APIRouter(prefix="/lines/{line}", tags=["forecast"], dependencies=[Depends(require("viewer"))])

MAX_ACCURACY_DAYS = 31.0
"""The longest look-back of the accuracy (the store's longest query span)."""
MAX_SCORED = 100_000
"""The most kept forecasts one accuracy request reads (about 69 days at one a minute)."""
MAX_REPLICATIONS = 5000
"""The most replications one request may ask for (a forecast on demand holds a process for its duration)."""


@router.get(
    "/forecast",
    response_model=ForecastOut,
    summary="Forecast of good output and downtime",
    responses={
        409: {"model": ErrorOut, "description": "No telemetry yet to forecast from (not_ready)"},
        503: {"model": ErrorOut, "description": "The first default forecast is not made yet (not_ready)"},
    },
)
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


def _nan_none(d: dict[str, float]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in d.items()}


@router.get("/forecast/accuracy", response_model=ForecastAccuracyOut, summary="How right the forecasts were")
async def forecast_accuracy(
    rt: LineDep,
    days: Annotated[
        float, Query(gt=0, le=MAX_ACCURACY_DAYS, description="Look back this many days from the line's newest data")
    ] = 7.0,
) -> ForecastAccuracyOut:
    """The service's kept default forecasts made in the last ``days`` (on the line's clock), each scored once its
    horizon had passed: per lead (hours ahead) the P50's mean absolute percentage error and the share of actuals
    within [P10, P90]; ``p_failure``'s Brier score against the base rate's, and its AUC, over all and per lead of the
    whole horizon."""
    clock = rt.snapshot.clock_h
    end_h = clock if clock is not None else time.time() / 3600  # no data yet: nothing kept either
    start_h = end_h - days * 24
    start_ms, end_ms = round(start_h * 3_600_000), round(end_h * 3_600_000) + 1  # the newest forecast included

    def read() -> ForecastAccuracyOut:
        kept = rt.store.forecasts(start_ms=start_ms, end_ms=end_ms, site=rt.topics.site, line=rt.topics.line, limit=MAX_SCORED)
        scores = []
        for k in kept:
            try:
                if k.score is not None:
                    scores.append(Score.from_dict(k.score))
            except (KeyError, TypeError, ValueError):  # a record another writer left: not a score, not counted
                log.warning("the kept forecast as of %d ms has a score this service cannot read: left out", k.as_of_ms)
        a = accuracy(scores)
        return ForecastAccuracyOut.model_validate(
            {
                "start": hours_to_datetime(start_h),
                "end": hours_to_datetime(end_h),
                "forecasts": len(scores),
                "pending": len(kept) - len(scores),
                "by_lead": [_nan_none({**r, "lead_h": r["lead"]}) for r in a["by_lead"]],
                "p_failure": _nan_none(a["p_failure"]),
                "p_failure_by_lead": [_nan_none({**r, "lead_h": r["lead"]}) for r in a["p_failure_by_lead"]],
            }
        )

    return await run_in_threadpool(read)
