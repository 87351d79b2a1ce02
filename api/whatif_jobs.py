"""What-ifs asked of the service: a bounded queue of jobs, run one at a time in a thread of their own, kept a while.

A what-if takes seconds to minutes, longer than a request should wait: ``POST .../whatif`` validates it, queues a
:class:`WhatIfSpec` here and answers at once with the job's id; the job runs whether or not its client stays.

- **Bounded.** At most ``queue_size`` jobs wait; one more is refused with :class:`QueueFull` (the route's 429, with
  an estimate of when a place frees). One job runs at a time: its replications fan out on one executor
  (``connectors.executors.open_executor``: a process pool of ``workers`` processes, this process with 1, or the Dask
  cluster of ``scheduler``), opened for the job and closed after it, so a pool broken by one job does not break the
  next.
- **Cancellable.** :meth:`WhatIfJobs.cancel` drops a queued job at once; a running one stops between replications:
  the replications not started are cancelled in the executor, and ``twin.whatif.compare``'s progress callback raises
  at the next replication that finishes (the few already handed to a process finish first and are dropped).
- **Kept, then forgotten.** A finished job (done, failed or cancelled) is kept ``keep_s`` seconds after it finished,
  and at most :data:`MAX_FINISHED` of them (the newest); then it is forgotten (a 404). The service's shutdown cancels
  whatever is queued or running.
- **From now.** A what-if "from now" carries the plant's knowledge as the request found it (its ``as_of``): the job
  draws one starting state per replication from it (``twin.whatif.starts_from``) when it runs, so a job that waited
  in the queue still answers the question as it was asked.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, TypeVar

from connectors.executors import open_executor
from connectors.stores.forecasts import finite_json
from twin.knowledge import LineKnowledge
from twin.scenario import Scenario
from twin.schema import Line
from twin.whatif import compare, starts_from

__all__ = [
    "MAX_FINISHED",
    "JobState",
    "JobView",
    "QueueFull",
    "StartKind",
    "WhatIfJobs",
    "WhatIfSpec",
    "replication_hours",
]

log = logging.getLogger("gigatwin.whatif")

P = ParamSpec("P")
T = TypeVar("T")

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
"""Where a job stands: ``queued``, ``running``, then ``done``, ``failed`` or ``cancelled``."""
StartKind = Literal["now", "steady_state"]
"""Where a what-if starts: the live plant's state now, or steady state after a warm-up."""
FINISHED: frozenset[JobState] = frozenset({"done", "failed", "cancelled"})

MAX_FINISHED = 100
"""The most finished jobs kept (the newest), whatever their age: their results are tens of kilobytes each."""
DEFAULT_RETRY_AFTER_S = 10.0
"""What a refused request is told to wait when the running job cannot say yet how long it takes."""
CLOSE_WAIT_S = 10.0
"""How long the service's shutdown waits for the running job to stop."""


class QueueFull(Exception):
    """The queue holds ``queue_size`` jobs already; try again in about ``retry_after_s`` seconds."""

    def __init__(self, queue_size: int, retry_after_s: float) -> None:
        super().__init__(f"{queue_size} what-ifs are waiting already (setting whatif_queue): try again later")
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s


class _Cancelled(Exception):
    """Raised in ``compare``'s progress callback to stop a job whose cancellation was asked."""


@dataclass(frozen=True)
class WhatIfSpec:
    """A validated what-if, ready to run: a scenario against ``line`` (the line forecasts use, ``parameters`` says
    which values), ``hours`` measured after ``warmup`` (steady state) or from ``knowledge`` (now)."""

    line: Line
    parameters: str
    scenario: Scenario
    hours: float
    replications: int
    seed: int
    start: StartKind
    warmup: float = 0.0
    knowledge: LineKnowledge | None = None
    """The plant's knowledge when the what-if was asked (``start == "now"``)."""

    def __post_init__(self) -> None:
        if (self.start == "now") != (self.knowledge is not None):
            raise ValueError("a what-if from now needs the plant's knowledge, and only it")

    @property
    def as_of_h(self) -> float | None:
        """The instant a what-if from now starts at (the line's clock when it was asked); None from steady state."""
        return self.knowledge.time_h if self.knowledge is not None else None

    def request(self) -> dict[str, Any]:
        """What was asked, as JSON-ready data (the scenario as given, validated)."""
        return {
            "scenario": self.scenario.model_dump(mode="json", by_alias=True, exclude_none=True),
            "hours": self.hours,
            "replications": self.replications,
            "seed": self.seed,
            "start": self.start,
            "warmup": self.warmup,
        }


@dataclass(frozen=True)
class JobView:
    """One job as it stood when asked (a copy: it does not change)."""

    id: str
    line: str
    state: JobState
    done: int
    """Replications finished (each one of the baseline and of the scenario)."""
    total: int
    created_s: float
    """When it was asked (wall clock, seconds since the epoch); ``started_s``, ``finished_s`` likewise (None: not yet)."""
    started_s: float | None
    finished_s: float | None
    cancel_requested: bool
    request: dict[str, Any]
    as_of_h: float | None
    parameters: str
    result: dict[str, Any] | None
    """``twin.whatif.WhatIfResult.to_dict()`` (non-finite numbers as None), once done."""
    error: str | None
    """Why it failed (or that it was cancelled)."""


@dataclass
class _Job:
    id: str
    spec: WhatIfSpec
    created_s: float
    state: JobState = "queued"
    done: int = 0
    started_s: float | None = None
    finished_s: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    executor: _CancellableExecutor | None = None
    started_mono: float | None = None

    def view(self) -> JobView:
        spec = self.spec
        return JobView(
            id=self.id,
            line=spec.line.name,
            state=self.state,
            done=self.done,
            total=spec.replications,
            created_s=self.created_s,
            started_s=self.started_s,
            finished_s=self.finished_s,
            cancel_requested=self.cancel.is_set(),
            request=spec.request(),
            as_of_h=spec.as_of_h,
            parameters=spec.parameters,
            result=self.result,
            error=self.error,
        )


class _CancellableExecutor(Executor):
    """An executor that hands tasks to ``inner`` and remembers them, so that a cancellation cancels those not yet
    started (``compare`` submits every replication at once; the pool would otherwise run them all)."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self._futures: list[Future[Any]] = []
        self._lock = threading.Lock()
        self._cancelled = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """``inner.submit``; refused once cancelled."""
        with self._lock:
            if self._cancelled:
                raise _Cancelled("the what-if was cancelled")
            future = self.inner.submit(fn, *args, **kwargs)
            self._futures.append(future)
            return future

    def cancel(self) -> None:
        """Cancel every task not started yet, and any submitted later."""
        with self._lock:
            self._cancelled = True
            futures = list(self._futures)
        for future in futures:
            future.cancel()

    def stop_now(self) -> None:
        """Stop at once (the service is stopping): a process pool's processes are ended, the replications under way are
        not worth waiting for (the executor has no public way to do it; the forecaster does the same); elsewhere (a
        Dask cluster) the tasks not started are cancelled. The pool's tasks are left for the broken pool to fail: on
        Python 3.11 a cancelled task of a broken pool raises in the pool's own thread (so a pool whose tasks were
        cancelled already is left to finish the few under way)."""
        processes: dict[Any, Any] | None = getattr(self.inner, "_processes", None)
        if processes is None:
            self.cancel()
            return
        with self._lock:
            if self._cancelled:  # cancelled already: what is left runs out (a broken pool would trip on its cancels)
                return
            self._cancelled = True
        for process in list(processes.values()):
            process.terminate()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing: ``inner`` belongs to whoever opened it."""


class WhatIfJobs:
    """The service's what-if jobs (module docstring). Thread-safe; :meth:`close` at shutdown."""

    def __init__(
        self,
        *,
        queue_size: int,
        keep_s: float,
        workers: int,
        scheduler: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if not keep_s > 0:
            raise ValueError(f"keep_s must be positive, got {keep_s}")
        self.queue_size = queue_size
        self.keep_s = keep_s
        self.workers = workers
        self.scheduler = scheduler
        self._clock = clock
        self._jobs: dict[str, _Job] = {}  # in the order they were asked
        self._queue: collections.deque[_Job] = collections.deque()
        self._lock = threading.Condition()
        self._runner: threading.Thread | None = None
        self._closed = False
        self._seq = itertools.count(1)

    # -- asking ---------------------------------------------------------------------------------------------------
    def submit(self, spec: WhatIfSpec) -> JobView:
        """Queue ``spec``; the new job's view. :class:`QueueFull` when ``queue_size`` jobs wait already;
        RuntimeError once closed."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the service is stopping: no new what-ifs")
            self._forget_old()
            if len(self._queue) >= self.queue_size:
                raise QueueFull(self.queue_size, self._retry_after_s())
            job = _Job(id=f"{next(self._seq):x}{secrets.token_hex(6)}", spec=spec, created_s=self._clock())
            self._jobs[job.id] = job
            self._queue.append(job)
            if self._runner is None:
                self._runner = threading.Thread(target=self._run, name="gigatwin-whatif", daemon=True)
                self._runner.start()
            self._lock.notify_all()
            return job.view()

    def get(self, job_id: str) -> JobView | None:
        """The job's view now (None: never asked, or forgotten)."""
        with self._lock:
            self._forget_old()
            job = self._jobs.get(job_id)
            return job.view() if job is not None else None

    def recent(self) -> list[JobView]:
        """Every job kept, newest first."""
        with self._lock:
            self._forget_old()
            return [job.view() for job in reversed(self._jobs.values())]

    def cancel(self, job_id: str) -> JobView | None:
        """Cancel the job: a queued one at once, a running one between replications (its state says ``running``
        with ``cancel_requested`` until it stops); a finished one is left as it is. None: no such job."""
        with self._lock:
            self._forget_old()
            job = self._jobs.get(job_id)
            if job is None:
                return None
            self._cancel(job)
            return job.view()

    def _cancel(self, job: _Job) -> None:
        if job.state in FINISHED:
            return
        job.cancel.set()
        if job.state == "queued":
            self._queue.remove(job)
            self._finish(job, "cancelled", error="cancelled before it started")
        elif job.executor is not None:
            job.executor.cancel()

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Cancel every queued and running job and stop the runner (the running job's processes are ended)."""
        with self._lock:
            self._closed = True
            for job in list(self._jobs.values()):
                if job.state == "running" and job.executor is not None:
                    job.cancel.set()
                    job.executor.stop_now()
                else:
                    self._cancel(job)
            runner = self._runner
            self._lock.notify_all()
        if runner is not None:
            runner.join(wait_s)
            if runner.is_alive():
                log.warning("the running what-if did not stop within %g s; left to end with the process", wait_s)

    # -- bookkeeping (under the lock) -------------------------------------------------------------------------------
    def _finish(self, job: _Job, state: JobState, *, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        job.state = state
        job.result = result
        job.error = error
        job.finished_s = self._clock()
        job.executor = None
        self._lock.notify_all()

    def _forget_old(self) -> None:
        now = self._clock()
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        finished.sort(key=lambda j: j.finished_s or 0.0)
        excess = len(finished) - MAX_FINISHED
        for i, job in enumerate(finished):
            assert job.finished_s is not None
            if i < excess or now - job.finished_s >= self.keep_s:
                del self._jobs[job.id]

    def _retry_after_s(self) -> float:
        """About when the running job ends and the first queued one starts, freeing a place."""
        running = next((j for j in self._jobs.values() if j.state == "running"), None)
        if running is None or running.started_mono is None or running.done == 0:
            return DEFAULT_RETRY_AFTER_S
        per = (time.monotonic() - running.started_mono) / running.done
        left = per * (running.spec.replications - running.done)
        return min(max(left, 1.0), 3600.0)

    # -- the runner -------------------------------------------------------------------------------------------------
    def _next(self) -> Iterator[_Job]:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                job = self._queue.popleft()
                job.state = "running"
                job.started_s = self._clock()
                job.started_mono = time.monotonic()
            yield job

    def _run(self) -> None:
        for job in self._next():
            try:
                result = self._execute(job)
            except (_Cancelled, CancelledError, BrokenProcessPool) as exc:
                with self._lock:
                    if job.cancel.is_set():
                        self._finish(job, "cancelled", error="cancelled")
                    else:
                        log.exception("what-if %s failed", job.id)
                        self._finish(job, "failed", error=f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a scenario that does not fit the plant's state, a cluster gone: the job's error
                log.warning("what-if %s failed: %s", job.id, exc)
                with self._lock:
                    if job.cancel.is_set():
                        self._finish(job, "cancelled", error="cancelled")
                    else:
                        self._finish(job, "failed", error=str(exc) or type(exc).__name__)
            else:
                with self._lock:
                    self._finish(job, "done", result=result)

    def _execute(self, job: _Job) -> dict[str, Any]:
        spec = job.spec
        starts = None
        if spec.knowledge is not None:
            starts = starts_from(spec.line, spec.knowledge, spec.replications, spec.seed, spec.hours)

        def progress(done: int, _total: int) -> None:
            with self._lock:
                job.done = done
                self._lock.notify_all()
            if job.cancel.is_set():
                raise _Cancelled("the what-if was cancelled")

        if job.cancel.is_set():
            raise _Cancelled("the what-if was cancelled")
        with open_executor(self.workers, self.scheduler) as inner:
            executor = _CancellableExecutor(inner) if inner is not None else None
            with self._lock:
                job.executor = executor
                if job.cancel.is_set() and executor is not None:
                    executor.cancel()
            try:
                result = compare(
                    spec.line,
                    [spec.scenario],
                    spec.hours,
                    warmup=spec.warmup,
                    replications=spec.replications,
                    seed=spec.seed,
                    starts=starts,
                    executor=executor,
                    progress=progress,
                    parameters=spec.parameters,
                    source=lambda s: f"scenario {s.name}",
                )
            except BaseException:
                with self._lock:
                    closing = self._closed
                if executor is not None and not closing:  # closing: stop_now has seen to them
                    executor.cancel()  # the replications not started yet: the pool's shutdown would run them all
                raise
        return dict(finite_json(result.to_dict()))


def replication_hours(replications: int, hours: float, warmup: float, variants: int = 2) -> float:
    """What a what-if costs: simulated hours over every replication of every variant (the baseline and the
    scenario), its warm-up included."""
    return replications * (hours + warmup) * variants if math.isfinite(hours + warmup) else math.inf
