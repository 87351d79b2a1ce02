"""Calibration: the line's parameters estimated from its stored history, and forecasts that use them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.deps import LineDep, OperatorDep
from api.errors import ApiError
from api.schemas import ErrorOut
from api.security import require
from connectors.calibrate import CalibrationError
from twin.calibration import MIN_FAILURES

router = APIRouter(
    prefix="/lines/{line}/calibration",
    tags=["calibration"],
    dependencies=[Depends(require("viewer"))],
    responses={409: {"model": ErrorOut, "description": "Nothing to calibrate from in the store's window (not_calibratable)"}},
)

Since = Annotated[datetime | None, Query(description="Window start, ISO 8601 (default: the oldest stored reading)")]
Until = Annotated[datetime | None, Query(description="Window end, ISO 8601 (default: the newest stored reading)")]
MinFailures = Annotated[int, Query(ge=1, le=1_000_000, description="Complete failures a mode needs for its fit to be used")]


def _ms(when: datetime | None) -> int | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # the line's clock is UTC
    return round(when.timestamp() * 1000)


async def _run(rt: Any, action: str, since: datetime | None, until: datetime | None, min_failures: int) -> dict[str, Any]:
    since_ms, until_ms = _ms(since), _ms(until)
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        message = f"until ({until}) must be after since ({since})"
        raise ApiError(400, message, details=[{"loc": ["query", "until"], "msg": message, "type": "value_error"}])
    try:
        result: dict[str, Any] = await rt.calibration(action, since_ms, until_ms, min_failures)
        return result
    except CalibrationError as exc:
        raise ApiError(409, str(exc), code="not_calibratable") from None


@router.get("", summary="The line's parameters estimated from its history")
async def get_calibration(
    rt: LineDep, since: Since = None, until: Until = None, min_failures: MinFailures = MIN_FAILURES
) -> dict[str, Any]:
    """Per station and failure mode: the fitted time to failure and to repair (censored maximum likelihood, the
    family by AIC, the 95 % interval of the mean), against the line file's design values, with `used` (`fitted` or
    `design`, and why); the cycle time and scrap; `flagged`: the parameters that drifted (the design value outside
    the interval and more than 10 % away). Durations in the line file's time unit. 409 `not_calibratable` when the
    store holds nothing to fit in the window."""
    return await _run(rt, "show", since, until, min_failures)


@router.post("/apply", summary="Forecast with the calibrated parameters (operator)")
async def apply_calibration(
    rt: LineDep, _role: OperatorDep, since: Since = None, until: Until = None, min_failures: MinFailures = MIN_FAILURES
) -> dict[str, Any]:
    """Calibrate as `GET` does, and make forecasts use the fitted values that are used (each fitted failure mode,
    drifted scrap) from their next refresh on; they then say `parameters: calibrated`."""
    return await _run(rt, "apply", since, until, min_failures)


@router.delete("/apply", summary="Forecast with the line file's parameters again (operator)")
async def reset_calibration(rt: LineDep, _role: OperatorDep) -> dict[str, Any]:
    """Forecasts use the line file's values again (`parameters: line-file`)."""
    return await _run(rt, "reset", None, None, MIN_FAILURES)
