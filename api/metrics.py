"""Prometheus metrics: the pipeline's counters, queue depths, the store's spool, the background tasks, the stream
and the latency of every request (by route template, method and status).

Each app has its own registry (no process-global state), so several apps in one process (tests) do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.freshness import freshness
from api.served import ServedLine
from api.store_health import store_health
from api.warmup import WARMUP_KEY

__all__ = ["LatencyMiddleware", "RuntimeCollector", "make_registry"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class RuntimeCollector(Collector):
    """Reads the runtime's counters at scrape time (nothing is counted twice, nothing on the hot path)."""

    def __init__(self, runtime: Callable[[], ServedLine | None]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        """The metrics now."""
        rt = self._runtime()
        if rt is None:
            return
        s = rt.ingest_stats()
        counters = {
            "messages_received": (s.received, "Telemetry messages taken from the source"),
            "messages_rejected": (s.rejected, "Messages kept as dead letters (malformed, unknown station, ...)"),
            "messages_duplicate": (s.duplicates, "Exact duplicates dropped"),
            "readings_written": (s.stored, "Readings written or spooled to the store"),
            "spooled_batches": (s.spooled_batches, "Batches spooled to disk because the store was down"),
            "store_failures": (s.store_failures, "Batches the store could neither write nor spool (retried)"),
            "events": (s.events, "Twin events handed to the live state"),
            "observer_errors": (s.observer_errors, "Events the live state or stream failed on"),
            "stream_messages": (rt.hub.sent, "Messages broadcast on the live stream"),
        }
        for name, (value, doc) in counters.items():
            yield CounterMetricFamily(f"gigatwin_{name}", doc, value=value)
        yield GaugeMetricFamily("gigatwin_ingest_queue_depth", "Messages waiting in the ingest queue", value=s.queue_depth)
        yield GaugeMetricFamily("gigatwin_stream_clients", "Live-stream clients connected", value=rt.hub.clients)
        yield GaugeMetricFamily(
            "gigatwin_stream_pending", "State changes waiting for the next stream message", value=rt.hub.pending
        )
        health = store_health(rt).latest()  # the latest background probe: a scrape never waits for the store
        if health is not None:
            yield GaugeMetricFamily(
                "gigatwin_store_writable", "1 if a write reached the database at the latest probe", value=int(health.writable)
            )
            yield GaugeMetricFamily(
                "gigatwin_store_spool_batches", "Batches waiting in the disk spool", value=health.spooled_batches
            )
        yield GaugeMetricFamily(
            "gigatwin_source_up", "1 if telemetry can come in (broker connected / demo feed running)", value=int(rt.source_ok)
        )
        up = GaugeMetricFamily("gigatwin_task_up", "1 if the background task is running", labels=["task"])
        restarts = CounterMetricFamily(
            "gigatwin_task_restarts", "Times the background task died and was restarted", labels=["task"]
        )
        for t in rt.tasks():
            up.add_metric([t.name], int(t.state == "running"))
            restarts.add_metric([t.name], t.restarts)
        yield up
        yield restarts
        age = GaugeMetricFamily(
            "gigatwin_station_data_age_seconds",
            "Seconds since the service last took data of the station (wall clock; stations seen since the start)",
            labels=["station"],
        )
        now = time.time()
        for sid, seen_at in sorted(s.data_seen_at.items()):
            age.add_metric([sid], now - seen_at)
        yield age
        yield GaugeMetricFamily(
            "gigatwin_stale_stations",
            "Stations whose newest data is older than the stale_after_s setting",
            value=len(freshness(s.data_seen_at, rt.settings.stale_after_s, now).stale),
        )
        clock = rt.snapshot.clock_h
        if clock is not None:
            yield GaugeMetricFamily(
                "gigatwin_line_clock_seconds", "The line's clock: the latest source timestamp", value=clock * 3600
            )


def make_registry(runtime: Callable[[], ServedLine | None]) -> tuple[CollectorRegistry, Histogram]:
    """A registry with the runtime's metrics and the request-latency histogram."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RuntimeCollector(runtime))
    latency = Histogram(
        "gigatwin_http_request_duration_seconds",
        "Time to answer a request, by route template, method and status",
        ["route", "method", "status"],
        buckets=_BUCKETS,
        registry=registry,
    )
    return registry, latency


class LatencyMiddleware:
    """Times every HTTP request into the histogram (plain ASGI: no per-request tasks, unlike BaseHTTPMiddleware).

    A stream is timed to its first byte: its length is the client's choice."""

    def __init__(self, app: ASGIApp, latency: Histogram) -> None:
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(WARMUP_KEY):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500
        timed = False

        async def timed_send(message: Message) -> None:
            nonlocal status, timed
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if (
                not timed
                and message["type"] == "http.response.body"
                and (not message.get("more_body", False) or (status == 200 and _is_stream(scope)))
            ):
                timed = True
                self._observe(scope, status, began)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if not timed:
                self._observe(scope, status, began)

    def _observe(self, scope: Scope, status: int, began: float) -> None:
        self.latency.labels(_template(scope), scope.get("method", ""), str(status)).observe(time.perf_counter() - began)


def _template(scope: Scope) -> str:
    """The route's template with the prefixes it was included under (one series per route, whatever the ids asked for).

    FastAPI keeps an included router's routes with their own paths, so the prefix is taken from the request's path:
    the route's template matches its last segments (no path parameter here spans segments)."""
    inner = str(getattr(scope.get("route"), "path", "") or "")
    if not inner:
        return "unmatched"
    segments = str(scope.get("path", "")).split("/")
    keep = len(segments) - inner.count("/")
    return "/".join(segments[:keep]) + inner if keep > 0 else inner


def _is_stream(scope: Scope) -> bool:
    return str(scope.get("path", "")).endswith("/stream")
