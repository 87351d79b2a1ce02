"""Where what-if replications run: the same seeds give the same result in this process, on a process pool and on a
Dask cluster (a real local one, two worker processes on loopback); and ``open_executor`` says clearly when it cannot
give the executor asked for."""

from __future__ import annotations

import json
import math
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import distributed
import pytest

from connectors.executors import ExecutorError, open_executor
from tests.conftest import make_line
from twin import whatif
from twin.engine import Engine
from twin.scenario import load_scenario_data
from twin.snapshot import LineSnapshot
from twin.whatif import compare

LINE = make_line(
    {
        "id": "COAT",
        "cycle_time": {"dist": "lognormal", "mean": 0.05, "sigma": 0.3},
        "failures": [
            {
                "name": "web_break",
                "ttf": {"dist": "weibull", "shape": 1.5, "mean": 3.0},
                "ttr": {"dist": "exponential", "mean": 0.4},
            }
        ],
        "scrap": 0.02,
        "buffer_after": 20,
    },
    {"id": "AGE", "kind": "delay", "capacity": 60, "dwell": 1.5, "buffer_after": 20},
    {
        "id": "EOL",
        "machines": 2,
        "cycle_time": {"dist": "gamma", "mean": 0.09, "cv": 0.4},
        "failures": [{"name": "breakdown", "ttf": {"dist": "exponential", "mean": 5.0}, "ttr": 0.25, "crew": "fitters"}],
    },
    repair_crews={"fitters": 1},
)
SCENARIO = load_scenario_data(
    {
        "name": "faster_repairs_and_a_stop",
        "changes": [
            {"station": "COAT", "scale": {"failures.*.ttr": 0.5}},
            {"station": "EOL", "planned_stop": {"start": "2h", "duration": "30min"}},
            {"station": "COAT", "down": {"at": 0, "for": "1h", "reason": "roll_change"}},
        ],
    }
)
HOURS = 8.0


def _starts(replications: int) -> list[LineSnapshot]:
    """One starting state per replication (the line warmed up with different seeds): the from-now path."""
    out = []
    for i in range(replications):
        engine = Engine(LINE, 100 + i)
        engine.run(20.0 + i)
        out.append(engine.snapshot())
    return out


def _compare(executor: Any, replications: int, starts: list[LineSnapshot] | None, progress: Any = None) -> str:
    """The what-if's JSON, exactly as written (so NaN and every float's last digit count)."""
    result = compare(
        LINE,
        [SCENARIO],
        HOURS,
        warmup=4.0,
        replications=replications,
        seed=7,
        starts=starts,
        executor=executor,
        progress=progress,
    )
    return json.dumps(result.to_dict(), sort_keys=True)


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[distributed.LocalCluster]:
    """A local Dask cluster of two single-threaded worker processes on loopback, no dashboard."""
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.mark.parametrize(
    ("start", "replications"),
    [
        ("steady_state", 45),  # sent in tasks of a few replications (the last one shorter)
        ("snapshot", 6),  # one replication a task
    ],
)
def test_the_same_seeds_give_the_same_what_if_on_any_executor(
    start: str, replications: int, dask_cluster: distributed.LocalCluster
) -> None:
    starts = _starts(replications) if start == "snapshot" else None
    here = _compare(None, replications, starts)
    data = json.loads(here)
    assert (data["start"], data["replications"]) == (start, replications)
    # not a trivial comparison: the scenario moves the line (an hour of coating lost, a stop at end of line)
    assert data["scenarios"]["faster_repairs_and_a_stop"]["delta"]["good"]["mean"] != 0

    seen: list[tuple[int, int]] = []
    with open_executor(2, None) as pool:
        assert isinstance(pool, ProcessPoolExecutor)
        assert _compare(pool, replications, starts, lambda done, total: seen.append((done, total))) == here
    # progress counts replications, whatever the tasks hold
    assert seen[-1] == (replications, replications)
    assert [d for d, _ in seen] == sorted({d for d, _ in seen})

    with (
        distributed.Client(dask_cluster.scheduler_address, set_as_default=False) as observer,
        distributed.get_task_stream(client=observer) as stream,
        open_executor(1, dask_cluster.scheduler_address) as dask,
    ):
        on_dask = _compare(dask, replications, starts)
    assert on_dask == here
    # and the replications did run on the cluster's workers, a few to a task
    ran = [t for t in stream.data if str(t["key"]).startswith("_replicate")]
    per_task = whatif._chunk_size(replications)
    assert len(ran) == math.ceil(replications / per_task)
    assert (per_task > 1) == (replications > 6)
    assert {t["worker"] for t in ran} <= set(dask_cluster.scheduler_info["workers"])


def test_one_worker_runs_here_and_a_pool_is_closed_on_exit() -> None:
    with open_executor(1, None) as here:
        assert here is None
    with open_executor(2, None) as pool:
        assert pool is not None
        assert pool.submit(abs, -3).result() == 3
    with pytest.raises(RuntimeError):
        pool.submit(abs, -3)
    with pytest.raises(ExecutorError, match="at least 1"):
        open_executor(0, None).__enter__()


def test_a_dask_executor_is_closed_on_exit(dask_cluster: distributed.LocalCluster) -> None:
    with open_executor(4, dask_cluster.scheduler_address) as dask:
        assert dask is not None
        assert dask.submit(abs, -3).result() == 3
    with pytest.raises(RuntimeError):
        dask.submit(abs, -3)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_a_scheduler_out_of_reach_is_a_clear_error_within_the_timeout() -> None:
    address = f"tcp://127.0.0.1:{_unused_port()}"
    began = time.monotonic()
    with pytest.raises(ExecutorError, match="cannot reach the Dask scheduler") as err:
        open_executor(1, address, connect_timeout_s=2.0).__enter__()
    assert address in str(err.value)
    # the timeout holds: refused connections are retried only until it runs out (generous bound for a loaded machine)
    assert time.monotonic() - began < 15.0


def test_a_bad_scheduler_address_is_a_clear_error() -> None:
    with pytest.raises(ExecutorError, match="unknown address scheme 'udp'"):
        open_executor(1, "udp://127.0.0.1:8786", connect_timeout_s=2.0).__enter__()
    with pytest.raises(ExecutorError, match="address is empty"):
        open_executor(1, "  ").__enter__()


def test_dask_not_installed_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ExecutorError, match=r"pip install 'gigatwin\[dask\]'"):
        open_executor(2, "tcp://127.0.0.1:8786").__enter__()


def test_a_what_if_stopped_by_its_progress_callback_cancels_the_tasks_not_started() -> None:
    """The callback raising (a cancelled job, Ctrl-C) stops the what-if: the executor's tasks not yet started are
    cancelled, not run to no one."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import make_line
    from twin.scenario import load_scenario_data
    from twin.whatif import compare

    line = make_line(
        {"id": "A", "cycle_time": {"dist": "exponential", "mean": 1.0}, "buffer_after": 2}, {"id": "B", "cycle_time": 0.9}
    )
    scenario = load_scenario_data({"name": "s", "changes": [{"station": "A", "set": {"buffer_after": 3}}]})

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Stop

    submitted: list[Any] = []

    class Recording(ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            fut = super().submit(fn, *args, **kwargs)
            submitted.append(fut)
            return fut

    with Recording(max_workers=1) as pool, pytest.raises(Stop):
        compare(line, [scenario], hours=200.0, replications=60, seed=1, executor=pool, progress=stop)
    assert len(submitted) >= 10
    assert sum(f.cancelled() for f in submitted) >= len(submitted) - 3  # at most the running and next one ran
