"""Background tasks that must keep running: each in its own thread, restarted with backoff when it dies.

A task is a function ``run(stop)`` that works until the ``threading.Event`` is set. If it raises, or returns
while not asked to stop, the supervisor logs it, waits (exponential backoff with jitter, reset after a task
has run well for a while) and calls it again. Each task's state, restarts and last error are what the health
route and the metrics show.

A task that dies ``max_restarts`` times within ``restart_window_s`` has failed **for good**: restarting it in
process evidently does not help (a message that kills it on every redelivery, a bug), so it is left
``failed`` and :attr:`Supervisor.failed` is set. The commands then exit with a non-zero status so that a
service manager (systemd ``Restart=on-failure``, a container's restart policy) restarts the whole process
and an operator sees it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RestartPolicy", "Supervisor", "TaskStatus"]

log = logging.getLogger("gigatwin.tasks")

TaskFn = Callable[[threading.Event], None]


@dataclass(frozen=True)
class RestartPolicy:
    """How a dead task is restarted, and when it has failed for good."""

    min_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    healthy_after_s: float = 60.0
    """A task that ran this long before dying starts its backoff afresh."""
    max_restarts: int = 5
    """Deaths within ``restart_window_s`` after which the task has failed for good (not restarted again)."""
    restart_window_s: float = 300.0


@dataclass(frozen=True)
class TaskStatus:
    """A background task now: ``running``, ``restarting`` (waiting out its backoff), ``failed`` (for good) or
    ``stopped``."""

    name: str
    state: str
    restarts: int
    last_error: str
    since_s: float
    """Seconds (monotonic clock) at which the task entered its state."""


class _Task:
    def __init__(self, name: str, fn: TaskFn) -> None:
        self.name = name
        self.fn = fn
        self.state = "stopped"
        self.restarts = 0
        self.last_error = ""
        self.since = time.monotonic()
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()
        self.deaths: list[float] = []
        """Monotonic times of its recent deaths (within the policy's window)."""


class Supervisor:
    """Runs named tasks in threads and restarts any that dies, with backoff, until one fails for good (``policy``)."""

    def __init__(self, policy: RestartPolicy | None = None) -> None:
        self.policy = policy if policy is not None else RestartPolicy()
        self.failed = threading.Event()
        """Set when a task has failed for good; :meth:`failures` says which and why."""
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()

    def start(self, name: str, fn: TaskFn) -> None:
        """Start ``fn(stop)`` in a thread named after the task, supervised."""
        if name in self._tasks:
            raise ValueError(f"task {name!r} already started")
        task = _Task(name, fn)
        self._tasks[name] = task
        task.thread = threading.Thread(target=self._loop, args=(task,), name=f"gigatwin-{name}", daemon=True)
        task.thread.start()

    def _set(self, task: _Task, state: str, error: str | None = None) -> None:
        with self._lock:
            task.state = state
            task.since = time.monotonic()
            if error is not None:
                task.last_error = error

    def _loop(self, task: _Task) -> None:
        policy = self.policy
        backoff = policy.min_backoff_s
        while not task.stop.is_set():
            self._set(task, "running")
            began = time.monotonic()
            try:
                task.fn(task.stop)
                if task.stop.is_set():
                    break
                error = "returned while the service runs"
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.exception("background task %s died", task.name)
            else:
                log.error("background task %s %s", task.name, error)
            now = time.monotonic()
            if now - began >= policy.healthy_after_s:
                backoff = policy.min_backoff_s  # it had run well: a new failure starts the backoff afresh
            task.deaths = [t for t in task.deaths if now - t < policy.restart_window_s] + [now]
            if len(task.deaths) > policy.max_restarts:
                error = f"{error} (died {len(task.deaths)} times within {policy.restart_window_s:g} s; not restarted)"
                self._set(task, "failed", error)
                log.error("background task %s failed for good: %s", task.name, error)
                self.failed.set()
                return
            with self._lock:
                task.restarts += 1
            self._set(task, "restarting", error)
            delay = backoff * random.uniform(0.5, 1.0)  # jitter: restarts of several tasks do not fall in step
            log.info("restarting %s in %.1f s", task.name, delay)
            if task.stop.wait(delay):
                break
            backoff = min(backoff * 2, policy.max_backoff_s)
        self._set(task, "stopped")

    def status(self) -> list[TaskStatus]:
        """Every task's state, in the order they were started."""
        with self._lock:
            return [TaskStatus(t.name, t.state, t.restarts, t.last_error, t.since) for t in self._tasks.values()]

    def failures(self) -> list[TaskStatus]:
        """The tasks that have failed for good, with their last error."""
        return [t for t in self.status() if t.state == "failed"]

    def stop(self, timeout_s: float = 30.0) -> list[str]:
        """Stop the tasks one by one, the last started first (a producer stops before the consumer that drains it);
        returns the names of any still running after ``timeout_s`` in all."""
        stuck = []
        deadline = time.monotonic() + timeout_s
        for task in reversed(list(self._tasks.values())):
            task.stop.set()
            if task.thread is not None:
                task.thread.join(max(0.0, deadline - time.monotonic()))
                if task.thread.is_alive():
                    stuck.append(task.name)
        return stuck
