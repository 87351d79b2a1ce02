"""Time windows of queries: ISO 8601 times in, twin hours and store milliseconds out, with defaults from the line's clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from fastapi import Response
from pydantic import BaseModel

from api.errors import ApiError
from api.served import ServedLine
from api.window_queries import AsJson

__all__ = ["Window", "answer", "window"]


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


def _hours(t: datetime) -> float:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)  # a time without a zone is UTC, like every time the API returns
    return t.timestamp() / 3600.0


def window(rt: ServedLine, start: datetime | None, end: datetime | None, default_hours: float) -> Window:
    """The window asked for; ``end`` defaults to the line's clock (the latest source timestamp, else now) and ``start``
    to ``default_hours`` before the end. 400 if the end is not after the start."""
    if end is not None:
        end_h = _hours(end)
    else:
        clock = rt.snapshot.clock_h
        end_h = clock if clock is not None else time.time() / 3600.0
    start_h = _hours(start) if start is not None else end_h - default_hours
    if not end_h > start_h:
        raise ApiError(400, f"end ({end_h * 3600:.0f} s since the epoch) must be after start ({start_h * 3600:.0f} s)")
    return Window(start_h, end_h)


async def answer(
    rt: ServedLine, fn: Callable[..., BaseModel], start_h: float, end_h: float, *args: Any, clamp: bool = True
) -> Response:
    """The response of window query ``fn`` (of :mod:`api.window_queries`) over ``[start_h, end_h)``, serialised where
    it ran: a long window's answer (hundreds of stops, every station's losses) is no longer validated and written
    out again on the event loop. The route's ``response_model`` still documents it."""
    body: bytes = await rt.window(AsJson(fn), start_h, end_h, *args, clamp=clamp)
    return Response(content=body, media_type="application/json")
