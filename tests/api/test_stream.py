"""The live stream over real HTTP (uvicorn): state changes and KPI updates arrive as Server-Sent Events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.live import LiveStatePublisher
from api.stream import StreamHub
from tests.api.conftest import LINE_ID, VIEWER, LiveServer, demo_settings, wait_for
from tests.conftest import MIXED_LINE
from twin.events import MachineState, StateChanged
from twin.state import LiveLine


def _events(
    response: httpx.Response, wanted: set[str], timeout_s: float, *, until: Callable[[dict[str, Any]], bool] = lambda _: True
) -> dict[str, list[dict[str, Any]]]:
    """Read SSE messages until each wanted event name was seen and ``until(got)`` holds (or the time is up)."""
    got: dict[str, list[dict[str, Any]]] = {}
    name = ""
    deadline = time.monotonic() + timeout_s
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            got.setdefault(name, []).append(json.loads(line.removeprefix("data: ")))
        if (wanted <= set(got) and until(got)) or time.monotonic() > deadline:
            break
    return got


def _has_changes(got: dict[str, Any]) -> bool:
    return any(m["changes"] for m in got.get("state", []))


@pytest.mark.parametrize("pipeline_process", [False, True], ids=["in-process", "pipeline-process"])
def test_state_changes_and_kpis_stream_to_clients(tmp_path: Path, pipeline_process: bool) -> None:
    with LiveServer(demo_settings(tmp_path, pipeline_process=pipeline_process), line=MIXED_LINE) as server:
        url = f"{server.url}/api/v1/lines/{LINE_ID}/stream"
        with httpx.Client(timeout=10) as http, http.stream("GET", url, params={"api_key": VIEWER}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            # a state message may carry station summaries alone (a store's occupancy, or a station sent again once a
            # newer snapshot is out): read on until state changes came
            got = _events(r, {"hello", "state", "kpi"}, timeout_s=10, until=_has_changes)
        assert got["hello"] == [{"line": LINE_ID}]
        assert _has_changes(got)
        for message in got["state"]:
            changes, stations = message["changes"], message["stations"]
            assert isinstance(changes, list)
            assert isinstance(stations, dict)
            assert changes or stations  # no empty message is sent
            for c in changes:
                assert c["station"] in stations  # every change comes with its station's new summary
                assert c["state"] in ("WORKING", "STARVED", "BLOCKED", "DOWN")
        kpi = got["kpi"][-1]
        assert set(kpi) >= {"now", "shift", "good", "wip", "oee", "buffers", "dead_letters"}
        # the client left and is forgotten (noticed at the next message or within a second)
        wait_for(lambda: server.runtime.hub.clients == 0, timeout_s=5, what="the stream to notice the client left")


def test_a_client_that_falls_behind_is_told_to_resync() -> None:
    hub = StreamHub(MIXED_LINE, LiveStatePublisher(LiveLine(MIXED_LINE)), client_queue=8)
    slow, other = hub.subscribe(), hub.subscribe()
    for i in range(20):
        hub.broadcast("kpi", {"i": i})
        if i % 2 == 0:
            while not other.queue.empty():  # this one keeps up
                other.queue.get_nowait()
    names = [slow.queue.get_nowait()[1] for _ in range(slow.queue.qsize())]
    assert "resync" in names
    assert len(names) <= 8  # memory per client stays bounded
    assert slow.resyncs >= 1
    assert other.resyncs == 0


def test_a_station_changed_before_the_snapshot_is_sent_again_once_a_newer_one_is_out() -> None:
    publisher = LiveStatePublisher(LiveLine(MIXED_LINE, begin_h=0.0))
    hub = StreamHub(MIXED_LINE, publisher)
    for observer in (publisher, hub):  # the ingest's order: the live state, then the stream
        observer(StateChanged(1.0, "A", 0, MachineState.WORKING, ""))
    publisher.end_batch()
    for observer in (publisher, hub):
        observer(StateChanged(2.0, "A", 0, MachineState.DOWN, "jam"))  # the pipeline is mid-batch: not published yet
    first = hub.state_message()
    assert first is not None
    assert [c["state"] for c in first["changes"]] == ["WORKING", "DOWN"]
    assert first["stations"]["A"]["state"] == "WORKING"  # the latest snapshot, from before the DOWN
    assert hub.state_message() is None  # nothing newer published yet: nothing to send
    publisher.end_batch()
    again = hub.state_message()
    assert again is not None
    assert again["changes"] == []
    assert again["stations"]["A"]["state"] == "DOWN"
    assert again["stations"]["A"]["reason"] == "jam"
    assert hub.state_message() is None


def test_changes_handed_from_the_pipeline_process_are_bounded_and_lose_no_station() -> None:
    # the pipeline's process drains its hub into each report; the API's hub takes them (api.line_process)
    sending = StreamHub(MIXED_LINE, LiveStatePublisher(LiveLine(MIXED_LINE)))
    for i in range(600):
        sending(StateChanged(1.0 + i * 1e-6, "A" if i < 599 else "C", 0, MachineState.DOWN, "jam"))
    listed, more, stations = changes = sending.drain(max_changes=500)
    assert (len(listed), more, stations) == (500, 100, frozenset({"A", "C"}))
    assert listed == sorted(listed)  # the first, in order
    assert sending.drain() == ([], 0, frozenset())  # drained: nothing is sent twice
    receiving = StreamHub(MIXED_LINE, LiveStatePublisher(LiveLine(MIXED_LINE)))
    receiving.take(changes)
    message = receiving.state_message()
    assert message is not None
    assert message["more_changes"] == 100
    assert set(message["stations"]) == {"A", "C"}  # C changed only among the changes not listed
    assert receiving.state_message() is None
