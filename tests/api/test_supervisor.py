"""The supervisor: a task that dies is restarted; one that keeps dying has failed for good and says why."""

from __future__ import annotations

import threading
import time

from api.supervisor import RestartPolicy, Supervisor

FAST = RestartPolicy(min_backoff_s=0.01, max_backoff_s=0.02, healthy_after_s=60.0, max_restarts=3, restart_window_s=60.0)


def _wait(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_task_that_keeps_dying_fails_for_good_with_its_error() -> None:
    calls = []

    def broken(_stop: threading.Event) -> None:
        calls.append(1)
        raise RuntimeError("the store exploded")

    sup = Supervisor(FAST)
    sup.start("ingest", broken)
    assert sup.failed.wait(10)
    (status,) = sup.failures()
    assert status.name == "ingest"
    assert status.state == "failed"
    assert status.restarts == 3
    assert "RuntimeError: the store exploded" in status.last_error
    assert "not restarted" in status.last_error
    assert len(calls) == 4  # the first run and three restarts, then no more
    assert sup.stop(1.0) == []


def test_a_task_that_dies_now_and_then_is_restarted_and_not_failed() -> None:
    deaths = []

    def flaky(stop: threading.Event) -> None:
        if len(deaths) < 2:
            deaths.append(1)
            raise RuntimeError("transient")
        stop.wait()

    sup = Supervisor(FAST)
    sup.start("feed", flaky)
    _wait(lambda: sup.status()[0].restarts == 2 and sup.status()[0].state == "running")
    assert not sup.failed.is_set()
    assert sup.stop(5.0) == []
    assert sup.status()[0].state == "stopped"
