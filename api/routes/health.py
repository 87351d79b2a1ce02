"""Health: liveness (the process answers; its background tasks) and readiness (telemetry can come in and be stored).
Neither needs an API key: orchestrators probe them."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import RuntimeDep
from api.freshness import freshness
from api.schemas import HealthOut, ReadinessOut, TaskOut
from api.store_health import store_health

router = APIRouter(prefix="/health", tags=["health"])


def _tasks(rt: RuntimeDep) -> list[TaskOut]:
    return [TaskOut(name=t.name, state=t.state, restarts=t.restarts, last_error=t.last_error) for t in rt.tasks()]


@router.get("/live", response_model=HealthOut, summary="Liveness")
async def live(rt: RuntimeDep) -> HealthOut:
    """``ok`` while every background task runs; ``degraded`` while one is being restarted (the process still answers)."""
    tasks = _tasks(rt)
    return HealthOut(status="ok" if all(t.state == "running" for t in tasks) else "degraded", tasks=tasks)


@router.get("/ready", response_model=ReadinessOut, summary="Readiness", responses={503: {"model": ReadinessOut}})
async def ready(rt: RuntimeDep) -> JSONResponse:
    """200 when the source is up (broker connected, or demo feed running), the store takes writes and every task
    runs; 503 otherwise, with what is not. Also how old the newest data is and which stations' data is stale (older
    than ``stale_after_s``): quiet telemetry does not make the service unready, but it is reported. The store's
    health is its latest probe (a few seconds old at most; probes run in the background, never on the event loop)."""
    health = await store_health(rt).first()
    tasks = _tasks(rt)
    source_ok = rt.source_ok
    ok = source_ok and health.writable and all(t.state == "running" for t in tasks)
    fresh = freshness(rt.ingest_stats().data_seen_at, rt.settings.stale_after_s, time.time())
    body = ReadinessOut(
        ready=ok,
        data_age_s=fresh.age_s,
        stale_stations=fresh.stale,
        source=rt.settings.source,
        source_ok=source_ok,
        store_writable=health.writable,
        store_detail=health.detail,
        spooled_batches=health.spooled_batches,
        tasks=tasks,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)
