"""What-ifs: a scenario against the baseline, from the live plant's state now or from steady state, run as a job.

``POST`` validates the scenario against the line (422 naming the field) and queues it (:mod:`api.whatif_jobs`),
answering ``202`` with the job and its ``Location``; ``GET`` the job for its state, progress and result, or follow
its progress over Server-Sent Events; ``DELETE`` cancels it. Running and cancelling need the operator role; reading
needs the viewer role.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.deps import LineDep, OperatorDep
from api.errors import ApiError, error_response
from api.forecaster import NotReady
from api.schemas import (
    ERROR_RESPONSES,
    MAX_WHATIF_HOURS,
    ErrorOut,
    WhatIfIn,
    WhatIfJobOut,
    WhatIfJobsOut,
    WhatIfProgressOut,
    WhatIfScenarioOut,
    WhatIfScenariosOut,
    hours_to_datetime,
)
from api.security import require
from api.served import ServedLine
from api.whatif_jobs import FINISHED, JobView, QueueFull, WhatIfJobs, WhatIfSpec, replication_hours
from connectors.scenariofile import read_scenario
from twin.errors import SnapshotError
from twin.knowledge import LineKnowledge
from twin.scenario import Scenario, ScenarioError, apply_scenario, load_scenario_data
from twin.schema import Line
from twin.whatif import starts_from

__all__ = ["JSON_ERRORS", "events_router", "router"]

router = APIRouter(prefix="/lines/{line}", tags=["what-if"], dependencies=[Depends(require("viewer"))])

# The progress stream's errors are JSON, not events. FastAPI documents the responses of a model in the route's media
# type (text/event-stream here), so the stream has a router of its own, included without the models of
# ``ERROR_RESPONSES``, its errors documented as JSON by reference.
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": str(spec.get("description", "")),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }
    for status, spec in ERROR_RESPONSES.items()
}
events_router = APIRouter(
    prefix="/lines/{line}", tags=["what-if"], dependencies=[Depends(require("viewer"))], responses=JSON_ERRORS
)

JobId = Annotated[str, Path(description="The job's id (from the POST's answer)", max_length=64)]

_EVENT_POLL_S = 0.25  # how often a progress stream looks at its job (a replication takes longer)
_MAX_SCENARIO_FILES = 200


def jobs_of(request: Request) -> WhatIfJobs:
    """The app's what-if jobs (made by the app's lifespan)."""
    jobs: WhatIfJobs | None = getattr(request.app.state, "whatifs", None)
    if jobs is None:
        raise ApiError(503, "the service is not running what-ifs (starting or stopping)", code="unavailable")
    return jobs


Jobs = Annotated[WhatIfJobs, Depends(jobs_of)]


def _iso_s(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def job_out(view: JobView, *, with_result: bool = True) -> WhatIfJobOut:
    """A job as the API returns it."""
    return WhatIfJobOut(
        id=view.id,
        line=view.line,
        state=view.state,
        progress=WhatIfProgressOut(done=view.done, total=view.total),
        cancel_requested=view.cancel_requested,
        created=datetime.fromtimestamp(view.created_s, UTC),
        started=_iso_s(view.started_s),
        finished=_iso_s(view.finished_s),
        as_of=hours_to_datetime(view.as_of_h) if view.as_of_h is not None else None,
        parameters=view.parameters,
        request=view.request,
        result=view.result if with_result else None,
        error=view.error,
    )


def _loc(path: str) -> list[str]:
    """A scenario's field path (``changes[0].scale.x``, ``changes[1] -> line stations[2].buffer_after``) as the
    ``loc`` of the API's error details, under ``body``."""
    return ["body", *[p for p in re.split(r"[.\[\]]+", path.split(" -> ")[0]) if p]]


def _invalid(exc: ScenarioError) -> ApiError:
    details = [{"loc": _loc(path), "msg": f"{path}: {msg}", "type": "invalid_scenario"} for path, msg in exc.problems]
    where = "; ".join(f"{path}: {msg}" for path, msg in exc.problems)
    return ApiError(422, f"invalid scenario: {where}", code="invalid_request", details=details)


def _field_error(field: str, message: str, kind: str = "value_error") -> ApiError:
    return ApiError(422, message, code="invalid_request", details=[{"loc": ["body", field], "msg": message, "type": kind}])


def _check_fits(scenario: Scenario, line: Line, knowledge: LineKnowledge | None, body: WhatIfIn, warmup: float) -> None:
    """Raise ScenarioError unless the scenario applies to ``line`` over the what-if's window (and, from now, to the
    plant's state): what ``compare`` would find, found before the job is queued."""
    window_start = knowledge.time_h if knowledge is not None else warmup
    applied = apply_scenario(scenario, line, window_start, body.hours, "scenario")
    if knowledge is not None:
        start = starts_from(line, knowledge, 1, body.seed, body.hours)[0]
        try:
            start.check(applied.line)
        except SnapshotError as exc:
            raise ScenarioError("scenario", [("changes", f"the scenario's line does not fit the plant's state: {exc}")]) from None


@router.post(
    "/whatif",
    status_code=202,
    response_model=WhatIfJobOut,
    summary="Run a what-if (operator)",
    responses={
        409: {"model": ErrorOut, "description": "A what-if from now before any telemetry (not_ready)"},
        429: {"model": ErrorOut, "description": "The queue is full (queue_full); Retry-After says when to try again"},
    },
)
async def run_whatif(
    rt: LineDep, body: WhatIfIn, jobs: Jobs, request: Request, response: Response, _role: OperatorDep
) -> WhatIfJobOut | JSONResponse:
    """Queue a what-if of the scenario in the body against the baseline, paired (replication ``i`` of both with the
    same random numbers and, from now, the same starting state). ``202`` with the job (``Location``: where to ask for
    it). ``422`` naming the field for a scenario that does not fit the line (an unknown station or parameter, a scale
    <= 0, a change that makes the line invalid, a planned stop or outage outside the window), a missing or misplaced
    ``warmup``, or a what-if costlier than ``whatif_max_replication_hours``; ``409`` from now before any telemetry;
    ``429`` when ``whatif_queue`` jobs wait already."""
    settings = rt.settings
    if body.start == "steady_state" and body.warmup is None:
        raise _field_error("warmup", "warmup (hours) is required with start steady_state", "missing")
    if body.start == "now" and body.warmup:
        raise _field_error("warmup", "warmup is for start steady_state: a what-if from now starts from the plant's state")
    warmup = body.warmup or 0.0
    cost = replication_hours(body.replications, body.hours, warmup)
    budget = settings.whatif_max_replication_hours
    if cost > budget:
        message = (
            f"replications x (hours + warmup) x 2 runs = {cost:g} replication-hours is more than this service runs for "
            f"one what-if ({budget:g}, setting whatif_max_replication_hours): ask for fewer replications or hours"
        )
        raise _field_error("replications", message, "too_costly")
    try:
        scenario = load_scenario_data(
            {"name": body.name, "description": body.description, "changes": body.changes}, source="scenario"
        )
    except ScenarioError as exc:
        raise _invalid(exc) from None
    try:
        line, parameters, knowledge = await rt.whatif_basis(body.start == "now")
    except NotReady as exc:
        raise ApiError(409, str(exc), code="not_ready") from None
    try:
        await run_in_threadpool(_check_fits, scenario, line, knowledge, body, warmup)
    except ScenarioError as exc:
        raise _invalid(exc) from None
    spec = WhatIfSpec(
        line=line,
        parameters=parameters,
        scenario=scenario,
        hours=body.hours,
        replications=body.replications,
        seed=body.seed,
        start=body.start,
        warmup=warmup,
        knowledge=knowledge,
    )
    try:
        view = jobs.submit(spec)
    except QueueFull as exc:
        # the error's shape, with the header a client (or a proxy) waits by
        retry = str(max(1, math.ceil(exc.retry_after_s)))
        return error_response(429, str(exc), "queue_full", headers={"Retry-After": retry})
    except RuntimeError as exc:  # stopping
        raise ApiError(503, str(exc), code="unavailable") from None
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{view.id}"
    return job_out(view)


@router.get("/whatif", response_model=WhatIfJobsOut, summary="The what-ifs kept")
async def list_whatifs(rt: LineDep, jobs: Jobs) -> WhatIfJobsOut:
    """Every what-if queued, running, or finished within ``whatif_keep_s`` (at most the newest 100 finished), newest
    first, without results."""
    views = [v for v in jobs.recent() if v.line == rt.line.name]
    return WhatIfJobsOut(jobs=[job_out(v, with_result=False) for v in views], queue_size=jobs.queue_size, keep_s=jobs.keep_s)


def _job(rt: ServedLine, jobs: WhatIfJobs, job_id: str) -> JobView:
    view = jobs.get(job_id)
    if view is None or view.line != rt.line.name:
        message = f"no what-if {job_id!r} (never asked, or forgotten {jobs.keep_s:g} s after it finished)"
        raise ApiError(404, message, details=[{"loc": ["path", "job_id"], "msg": message, "type": "unknown_job"}])
    return view


async def _known_job(rt: LineDep, jobs: Jobs, job_id: JobId) -> JobView:
    """The job of the path, or 404 (a dependency: the progress stream must refuse before it starts)."""
    return _job(rt, jobs, job_id)


KnownJob = Annotated[JobView, Depends(_known_job)]


@router.get("/whatif/{job_id}", response_model=WhatIfJobOut, summary="A what-if: state, progress, result")
async def get_whatif(view: KnownJob) -> WhatIfJobOut:
    """The job's state (``queued``, ``running``, ``done``, ``failed``, ``cancelled``), its progress in replications,
    its result once ``done`` and its error once ``failed``. ``404`` once forgotten."""
    return job_out(view)


@router.delete("/whatif/{job_id}", response_model=WhatIfJobOut, summary="Cancel a what-if (operator)")
async def cancel_whatif(rt: LineDep, jobs: Jobs, job_id: JobId, _role: OperatorDep) -> WhatIfJobOut:
    """A queued job is cancelled at once; a running one stops after the replications under way (``cancel_requested``
    until then); a finished one is left as it is (and kept)."""
    _job(rt, jobs, job_id)
    view = jobs.cancel(job_id) or _job(rt, jobs, job_id)  # None: forgotten in between (the 404)
    return job_out(view, with_result=False)


def _progress_message(view: JobView) -> str:
    return json.dumps(
        {"id": view.id, "state": view.state, "done": view.done, "total": view.total, "error": view.error},
        separators=(",", ":"),
    )


@events_router.get(
    "/whatif/{job_id}/events", response_class=EventSourceResponse, summary="A what-if's progress (Server-Sent Events)"
)
async def whatif_events(view: KnownJob, jobs: Jobs, request: Request) -> AsyncIterator[ServerSentEvent]:
    """``event: progress`` (``state``, ``done``, ``total``) when it changes, then ``event: end`` (the same, with
    ``error``) when the job has finished, and the stream ends; then ``GET`` the job for its result. Browsers pass the
    key as ``?api_key=``."""
    last = None
    while True:
        key = (view.state, view.done)
        if view.state in FINISHED:
            yield ServerSentEvent(event="end", raw_data=_progress_message(view))
            return
        if key != last:
            yield ServerSentEvent(event="progress", raw_data=_progress_message(view))
            last = key
        await asyncio.sleep(_EVENT_POLL_S)
        if await request.is_disconnected():
            return
        current = jobs.get(view.id)
        if current is None:  # forgotten while followed (a keep time shorter than the stream's poll)
            yield ServerSentEvent(event="end", raw_data=_progress_message(view))
            return
        view = current


@router.get("/scenarios", response_model=WhatIfScenariosOut, summary="Example scenarios for what-ifs")
async def list_scenarios(rt: LineDep) -> WhatIfScenariosOut:
    """The scenario files (``*.yaml``) of the folder ``scenario_dir``, each as a what-if's body takes it, and whether it
    fits the watched line (its stations, fields and values; a stop's time is checked against a request's hours)."""
    folder: FilePath = rt.settings.scenario_dir
    return await run_in_threadpool(_read_scenarios, folder, rt.line)


def _problems(exc: ScenarioError) -> str:
    return "; ".join(f"{path}: {msg}" for path, msg in exc.problems)


def _read_scenarios(folder: FilePath, line: Line) -> WhatIfScenariosOut:
    out: list[WhatIfScenarioOut] = []
    files = sorted(folder.glob("*.yaml"))[:_MAX_SCENARIO_FILES] if folder.is_dir() else []
    for path in files:
        problem: str | None = None
        try:
            scenario = read_scenario(path)
        except ScenarioError as exc:
            out.append(
                WhatIfScenarioOut(file=path.name, name=path.stem, description="", changes=[], fits=False, problem=_problems(exc))
            )
            continue
        try:
            # the longest window a what-if may ask for: a stop at 30 h fits, whether a request's hours reach it is its own
            apply_scenario(scenario, line, 0.0, MAX_WHATIF_HOURS, path.name)
        except ScenarioError as exc:
            problem = _problems(exc)
        data = scenario.model_dump(mode="json", by_alias=True, exclude_none=True)
        out.append(
            WhatIfScenarioOut(
                file=path.name,
                name=scenario.name,
                description=scenario.description,
                changes=data.get("changes", []),
                fits=problem is None,
                problem=problem,
            )
        )
    return WhatIfScenariosOut(scenarios=out)
