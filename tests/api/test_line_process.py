"""The service's default: the pipeline, live state, feed and window queries in a process of their own
(``api.line_process``), the API's process reading what it reports. Every route answers as the store says, the process
goes with the service, and a pipeline process that dies fails the service rather than leaving it answering stale."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.line_process import RemoteLine
from connectors.errors import ConnectorError
from connectors.rebuild import rebuild
from connectors.stores.sqlite import SqliteStore
from connectors.telemetry import MS_PER_HOUR
from tests.api.conftest import LINE_ID, OPERATOR, VIEWER, demo_settings, served_of, wait_for
from tests.conftest import MIXED_LINE
from twin.counters import CumulativeCounters
from twin.state import LiveLine

BASE = f"/api/v1/lines/{LINE_ID}"


def _iso(hours: float) -> str:
    return datetime.fromtimestamp(hours * 3600, UTC).isoformat()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_every_route_answers_from_the_pipeline_process_as_the_store_says(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path, pipeline_process=True)
    app = create_app(settings, line=MIXED_LINE)
    with TestClient(app, headers={"X-API-Key": VIEWER}) as client:
        rt = served_of(client)
        assert isinstance(rt, RemoteLine)
        assert rt.pid is not None
        assert rt.pid != os.getpid()
        pid = rt.pid
        wait_for(lambda: (rt.snapshot.clock_h or 0) - (rt.snapshot.history_start_h or 0) > 6, what="6 h of history")
        status = client.get(f"{BASE}/status").json()
        assert [s["id"] for s in status["stations"]] == [s.id for s in MIXED_LINE.stations]
        assert status["good"] > 0
        assert client.get(f"{BASE}/status/C").json()["id"] == "C"
        # a window well inside the history, closed: its answer cannot change, so the store's replay must give it too
        h0 = rt.snapshot.history_start_h
        assert h0 is not None
        w0, w1 = h0 + 1.0, h0 + 5.0
        window = {"start": _iso(w0), "end": _iso(w1)}
        oee = client.get(f"{BASE}/oee", params=window).json()
        downtime = client.get(f"{BASE}/downtime", params=window)
        stops = client.get(f"{BASE}/stops", params=window)
        assert downtime.status_code == stops.status_code == 200
        assert client.get(f"{BASE}/oee").status_code == 200  # the shift so far
        before = client.get(f"{BASE}/oee", params={"start": "2001-01-01T00:00:00Z", "end": "2001-01-01T08:00:00Z"})
        assert before.status_code == 400
        assert "retained history" in before.json()["error"]["message"]
        throughput = client.get(f"{BASE}/throughput", params={"hours": 4, "every_s": 3600}).json()
        assert sum(throughput["good"]) > 0
        # the plan goes to the pipeline's process and comes back in the snapshot
        plan = client.put(f"{BASE}/plan", json={"plan_per_hour": 12.5}, headers={"X-API-Key": OPERATOR})
        assert plan.status_code == 200, plan.text
        assert plan.json()["plan_per_hour"] == 12.5
        assert rt.snapshot.plan_per_hour == 12.5  # the snapshot published with it, as the status reads it
        assert client.get(BASE).json()["plan_per_hour"] == 12.5
        # the store's read side is the pipeline process's store
        history = client.get(f"{BASE}/history/state", params={**window, "limit": 5}).json()
        assert len(history["points"]) == 5
        assert client.get("/api/v1/dead-letters").json()["count"] == 0
        ready = client.get("/api/v1/health/ready").json()
        assert ready["ready"] is True, ready
        assert {t["name"] for t in ready["tasks"]} == {"ingest", "feed", "forecast"}
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {VIEWER}"}).text
        assert "gigatwin_events_total" in metrics
        assert "gigatwin_source_up 1.0" in metrics
    # the service stopped its pipeline process, which stored what it took
    assert not _alive(pid)
    store = SqliteStore(tmp_path / "api.db")
    replayed = LiveLine(MIXED_LINE, history_h=10_000)
    # from before the demo's first reading to after the window
    span = (round((h0 - 1) * MS_PER_HOUR), round((w1 + 1) * MS_PER_HOUR))
    rebuild(store, rt.topics, [replayed], start_ms=span[0], end_ms=span[1], counters=CumulativeCounters())
    store.close()
    truth = replayed.kpis(w0, w1)
    assert oee["line"]["good"] == truth.good
    assert oee["line"]["scrapped"] == truth.scrapped
    by_station = {s["id"]: s for s in oee["stations"]}
    for sid, st in truth.stations.items():
        assert by_station[sid]["oee"] == pytest.approx(st.oee, abs=1e-9), sid


def test_a_pipeline_process_that_dies_fails_the_service(tmp_path: Path) -> None:
    app = create_app(demo_settings(tmp_path, pipeline_process=True), line=MIXED_LINE)
    with TestClient(app, headers={"X-API-Key": VIEWER}) as client:
        rt = served_of(client)
        assert isinstance(rt, RemoteLine)
        assert rt.pid is not None
        wait_for(lambda: rt.ingest_stats().events > 50, what="the demo's first events")
        os.kill(rt.pid, signal.SIGKILL)
        wait_for(rt.failed.is_set, what="the service to see its pipeline process gone")
        (failure,) = rt.failures()
        assert failure.name == "pipeline"
        assert "exited with code -9" in failure.last_error
        live = client.get("/api/v1/health/live").json()
        assert live["status"] == "degraded"
        assert live["tasks"][0]["state"] == "failed"
        assert client.get("/api/v1/health/ready").status_code == 503
        gone = client.get(f"{BASE}/oee")
        assert gone.status_code == 503
        assert "pipeline is not running" in gone.json()["error"]["message"]
        # what was read last stays readable: the status says how old it is (its clock), not a 500
        assert client.get(f"{BASE}/status").status_code == 200


def test_a_store_that_cannot_be_opened_stops_the_start_with_its_error(tmp_path: Path) -> None:
    app = create_app(
        demo_settings(tmp_path, pipeline_process=True, store_url=f"sqlite:{tmp_path / 'missing' / 'x.db'}"), line=MIXED_LINE
    )
    began = time.monotonic()
    with pytest.raises(ConnectorError, match="missing"), TestClient(app):
        pass
    assert time.monotonic() - began < 60
