"""Warming the app before its first client: the service asks itself for its read-only pages once, in-process.

The first request to each router paid for work done once per process (FastAPI builds a router's matching state at its
first match, the file response imports anyio's file and stream modules): 35-75 ms on the event loop, a stall that every
restart showed its first clients. Done in the lifespan, before ``gc.freeze()``, that state is built once and frozen
with the rest of what lives as long as the service.

Warm-up requests carry :data:`WARMUP_KEY` in their ASGI scope: the latency histogram leaves them out, and no access log
sees them (they never reach the server). They carry one of the service's own keys, when it has any, so that the
pages behind a key are warmed through to their answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Scope

__all__ = ["WARMUP_KEY", "warm_up"]

log = logging.getLogger("gigatwin.api")

WARMUP_KEY = "gigatwin.warmup"
"""The ASGI scope key that marks a request the service made to itself at start-up."""


async def warm_up(app: ASGIApp, paths: Iterable[str], key: str | None = None) -> dict[str, int]:
    """GET each of ``paths`` from ``app`` in-process, with API key ``key`` if given; the status each answered (a
    warm-up that fails is logged, never raised: the service serves without it)."""
    headers = [(b"host", b"localhost"), (b"accept", b"*/*")]
    if key:
        headers.append((b"x-api-key", key.encode()))
    answered: dict[str, int] = {}
    for path in paths:
        try:
            answered[path] = await _get(app, path, headers)
        except Exception as exc:  # a page that cannot answer yet must not stop the service from starting
            log.warning("warming %s failed: %s", path, exc)
            answered[path] = 0
    return answered


async def _get(app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """GET ``path`` from ``app`` as a server would ask it; the status of the answer."""
    status = 0
    asked = False
    done = asyncio.Event()

    async def receive() -> Message:
        # the request once, then (as a server does) nothing until the response is complete: a response that listens
        # for the client's disconnect would otherwise spin on requests that never end
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {},
        WARMUP_KEY: True,
    }
    try:
        await app(scope, receive, send)
    finally:
        done.set()
    return status
