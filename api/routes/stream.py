"""The live stream (Server-Sent Events): ``state`` messages as machines change state, ``kpi`` messages with the shift
against plan and OEE, and ``resync`` when a client fell behind (it should fetch the status afresh)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import LineDep
from api.security import require
from api.stream import CLOSED

router = APIRouter(prefix="/lines/{line}/stream", tags=["stream"], dependencies=[Depends(require("viewer"))])

_WAIT_S = 1.0  # how often a quiet stream checks whether its client has gone


@router.get("", response_class=EventSourceResponse, summary="Live state changes and KPI updates (Server-Sent Events)")
async def stream(rt: LineDep, request: Request) -> AsyncIterator[ServerSentEvent]:
    """``event: state`` (``changes``: machines that changed, ``stations``: their stations' new summaries),
    ``event: kpi`` (shift, OEE, buffers, counts), ``event: resync``. Browsers pass the key as ``?api_key=``."""
    hub = rt.hub
    client = hub.subscribe()
    try:
        yield ServerSentEvent(event="hello", raw_data=json.dumps({"line": rt.line.name}), retry=2000)
        while True:
            try:
                seq, event, data = await asyncio.wait_for(client.queue.get(), _WAIT_S)
            except TimeoutError:
                if await request.is_disconnected():
                    break
                continue
            if (seq, event, data) == CLOSED:
                break  # the service is shutting down
            yield ServerSentEvent(event=event, raw_data=data, id=str(seq))
    finally:
        hub.unsubscribe(client)
