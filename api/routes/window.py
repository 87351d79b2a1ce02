"""Time windows of queries: ISO 8601 times in, twin hours and store milliseconds out, with defaults from the line's clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from fastapi import Response
from pydantic import BaseModel

from api.errors import ApiError
from api.schemas import hours_to_iso
from api.served import ServedLine
from api.window_queries import AsJson

__all__ = ["Window", "answer", "check_intervals", "check_span", "window"]


class Window(NamedTuple):
    """``[start_h, end_h)`` in hours since the epoch."""

    start_h: float
    end_h: float

    @property
    def start_ms(self) -> int:
        """The start in ms since the epoch."""
        return round(self.start_h * 3_600_000)

    @property
    def end_ms(self) -> int:
        """The end in ms since the epoch."""
        return round(self.end_h * 3_600_000)


FUTURE_SLACK_H = 60.0 / 3600.0
"""How far past the line's clock a window may end: a client's "now" a little ahead of the newest telemetry is not the
future; beyond this the answer would be made up (the state of the last event, extrapolated)."""


def _hours(t: datetime) -> float:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)  # a time without a zone is UTC, like every time the API returns
    return t.timestamp() / 3600.0


_iso = hours_to_iso


def _refuse(param: str, message: str, kind: str) -> ApiError:
    return ApiError(400, message, details=[{"loc": ["query", param], "msg": message, "type": kind}])


def window(
    rt: ServedLine, start: datetime | None, end: datetime | None, default_hours: float, *, retained: bool = False
) -> Window:
    """The window asked for; ``end`` defaults to the line's clock (the latest source timestamp, else now) and ``start``
    to ``default_hours`` before the end. The same rules on every route, each a 400 naming the parameter: the end
    must be after the start and not in the future (past the line's clock); with ``retained`` (a query of the live
    state), a start given must lie within the retained history (a default start is moved to its beginning)."""
    clock = rt.snapshot.clock_h
    now_h = clock if clock is not None else time.time() / 3600.0
    if end is not None:
        end_h = _hours(end)
        if end_h > now_h + FUTURE_SLACK_H:
            raise _refuse(
                "end", f"end {_iso(end_h)} is in the future: the line's newest data is from {_iso(now_h)}", "window_in_future"
            )
    else:
        end_h = now_h
    start_h = _hours(start) if start is not None else end_h - default_hours
    if not end_h > start_h:
        raise _refuse("end", f"end {_iso(end_h)} must be after start {_iso(start_h)}", "empty_window")
    if retained and start is not None:
        began = rt.snapshot.history_start_h
        if began is not None and start_h < began:
            raise _refuse(
                "start",
                f"start {_iso(start_h)} is before the retained history, which begins at {_iso(began)}"
                f" (the service keeps {rt.settings.history_hours:g} h: history_hours)",
                "before_retained_history",
            )
    return Window(start_h, end_h)


def check_span(w: Window, max_days: float) -> None:
    """400 naming ``start`` if the window spans more than ``max_days``."""
    days = (w.end_h - w.start_h) / 24.0
    if days > max_days:
        raise _refuse(
            "start",
            f"the window from {_iso(w.start_h)} to {_iso(w.end_h)} spans {days:.1f} days; at most {max_days:g} are allowed",
            "window_too_long",
        )


def check_intervals(w: Window, every_s: float, most: int, param: str = "every_s") -> None:
    """400 naming ``param`` if intervals of ``every_s`` seconds over the window would be more than ``most``."""
    count = (w.end_h - w.start_h) * 3600.0 / every_s if every_s > 0 else math.inf
    if count > most:
        many = f"{math.ceil(count):,}" if math.isfinite(count) else "countless"
        raise _refuse(
            param,
            f"{param}={every_s:g} makes {many} intervals from {_iso(w.start_h)} to {_iso(w.end_h)}; at most {most:,}"
            f" are allowed: ask for longer intervals or a shorter window",
            "too_many_intervals",
        )


async def answer(
    rt: ServedLine, fn: Callable[..., BaseModel], start_h: float, end_h: float, *args: Any, clamp: bool = True
) -> Response:
    """The response of window query ``fn`` (of :mod:`api.window_queries`) over ``[start_h, end_h)``, serialised where
    it ran: a long window's answer (hundreds of stops, every station's losses) is no longer validated and written
    out again on the event loop. The route's ``response_model`` still documents it."""
    body: bytes = await rt.window(AsJson(fn), start_h, end_h, *args, clamp=clamp)
    return Response(content=body, media_type="application/json")
