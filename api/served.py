"""What the API reads and asks of the watched line, wherever its pipeline runs.

Routes, metrics, health and the stream depend on :class:`ServedLine` only. Two implementations: the runtime itself
(:class:`api.runtime.LineRuntime`, the pipeline in the API's own process) and :class:`api.line_process.RemoteLine`
(the pipeline, live state and feed in a process of their own, the default for ``serve`` and ``demo``: the API's
event loop then shares its interpreter with nothing busy).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from api.live import LiveSnapshot
from api.settings import PipelineSettings
from api.stream import StreamHub
from api.supervisor import TaskStatus
from connectors.ingest import IngestStats
from connectors.stores.base import StoreReader
from connectors.telemetry import Topics
from twin.knowledge import LineKnowledge
from twin.schema import Line

__all__ = ["ServedLine", "ThroughputRows"]

T = TypeVar("T")

ThroughputRows = tuple[float, list[tuple[float, int]]]
"""(interval in hours, [(interval start in hours, good units)])."""


class ServedLine(Protocol):
    """One watched line as the API sees it: its latest published state, its counters, and its queries."""

    line: Line
    settings: PipelineSettings
    topics: Topics
    hub: StreamHub

    @property
    def store(self) -> StoreReader:
        """The store's read side (ranges, buckets, dead letters, health)."""
        ...

    @property
    def snapshot(self) -> LiveSnapshot:
        """The latest published live state (read it once per request: a later read may be a newer one)."""
        ...

    @property
    def constraint(self) -> str:
        """The line's constraint station."""
        ...

    @property
    def source_ok(self) -> bool:
        """Whether telemetry can come in now."""
        ...

    @property
    def failed(self) -> threading.Event:
        """Set when the pipeline has failed for good (the service should exit non-zero)."""
        ...

    def cached(self, key: str, build: Callable[[LiveSnapshot], T]) -> T:
        """``build(snapshot)`` of the latest snapshot, reused while it is the latest."""
        ...

    def ingest_stats(self) -> IngestStats:
        """The pipeline's counters now."""
        ...

    def tasks(self) -> list[TaskStatus]:
        """The background tasks now."""
        ...

    def failures(self) -> list[TaskStatus]:
        """The background tasks that failed for good, with their last errors."""
        ...

    def counters(self) -> dict[str, Any]:
        """Dead letters and the pipeline's counters, for the stream's ``kpi`` messages."""
        ...

    def describe(self) -> str:
        """Where telemetry comes from and goes (no secret in it)."""
        ...

    async def window(self, fn: Callable[..., T], start_h: float, end_h: float, *args: Any, clamp: bool = True) -> T:
        """``fn(line, view, w0, end_h, *args)``: a window query of :mod:`api.window_queries` over the retained history
        from ``w0 = max(start_h, history start)`` (``clamp``; else ``start_h``, refused if before the history), off the
        event loop. ValueError for a bad window."""
        ...

    async def throughput(self, start_h: float, end_h: float, every_s: float) -> ThroughputRows:
        """Good output per interval of about ``every_s`` over ``[start_h, end_h)`` of the retained history."""
        ...

    async def set_plan(self, plan_per_hour: float) -> LiveSnapshot:
        """Measure the shift against a new plan from now on; the snapshot published with it."""
        ...

    async def forecast(self, horizon_h: float | None, replications: int | None, seed: int) -> dict[str, Any]:
        """A forecast from the live state now (:meth:`api.forecaster.Forecaster.compute`), off the event loop.
        ValueError for bad parameters; ``api.forecaster.NotReady`` before any telemetry."""
        ...

    async def calibration(
        self, action: str, since_ms: int | None = None, until_ms: int | None = None, min_failures: int = 30
    ) -> dict[str, Any]:
        """``show`` the line calibrated from the store's history of the window, ``apply`` it to forecasts, or
        ``reset`` forecasts to the line file (:meth:`api.runtime.LineRuntime.calibration_now`), off the event loop.
        ``connectors.calibrate.CalibrationError`` when the store cannot give one."""
        ...

    async def latest_forecast(self) -> tuple[dict[str, Any] | None, str]:
        """The latest default forecast (None before the first) and why the last refresh failed (empty if it did not)."""
        ...

    async def whatif_basis(self, now: bool) -> tuple[Line, str, LineKnowledge | None]:
        """What a what-if runs: the line forecasts use, what its values are (``line-file`` or ``calibrated``), and
        with ``now`` what the telemetry tells of the plant at the live state's clock (else None).
        ``api.forecaster.NotReady`` for ``now`` before any telemetry."""
        ...
