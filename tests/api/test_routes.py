"""The API over the running demo pipeline: topology, live status, OEE, history, dead letters, health and metrics."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.live import LiveStatePublisher
from connectors.mqtt import Delivery
from connectors.stores import DeadLetter
from tests.api.conftest import LINE_ID, OPERATOR, demo_settings, runtime_of, wait_for
from tests.conftest import MIXED_LINE
from twin.events import MachineState, StateChanged
from twin.state import LiveLine, line_oee
from twin.stops import attribute_stops, downtime_pareto

BASE = f"/api/v1/lines/{LINE_ID}"


def _error(r: object, status: int, code: str) -> str:
    resp = r  # a response in the one error shape
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    body = resp.json()["error"]  # type: ignore[attr-defined]
    assert body["status"] == status
    assert body["code"] == code
    assert body["message"]
    return str(body["message"])


def test_lines_give_the_topology(client: TestClient) -> None:
    assert client.get("/api/v1/lines").json() == [
        {"id": LINE_ID, "stations": 4, "constraint": runtime_of(client).live.live.constraint}
    ]
    line = client.get(BASE).json()
    assert [s["id"] for s in line["stations"]] == ["A", "B", "S", "C"]
    assert line["edges"] == [["A", "B"], ["B", "S"], ["S", "C"]]
    assert [s["kind"] for s in line["stations"]] == ["process", "process", "delay", "process"]
    assert line["stations"][0]["buffer_after"] == 3
    assert line["stations"][2]["capacity"] == 8
    assert line["config_hash"] == MIXED_LINE.config_hash()


def test_status_is_the_live_state(client: TestClient) -> None:
    rt = runtime_of(client)
    wait_for(lambda: rt.live.read(lambda live: live.status().good) > 5, what="shipped units")
    body = client.get(f"{BASE}/status").json()
    truth = rt.live.read(lambda live: live.status())
    # the response reflects one consistent state, no older than the one read before it
    assert body["events"] <= truth.events
    assert [s["id"] for s in body["stations"]] == ["A", "B", "S", "C"]
    for st in body["stations"]:
        spec = MIXED_LINE.station(st["id"])
        assert sum(st["machine_counts"].values()) == (spec.machines if spec.kind == "process" else 0)
        assert st["state"] in ("WORKING", "STARVED", "BLOCKED", "DOWN", None)
        if st["buffer_fill"] is not None:
            assert 0 <= st["buffer_fill"] <= 1
    assert body["wip"] == body["released"] - body["scrapped"] - body["good"] + rt.live.live.wip0
    shift = body["shift"]
    assert datetime.fromisoformat(shift["start"]) <= datetime.fromisoformat(body["now"]) < datetime.fromisoformat(shift["end"])
    oee = body["oee"]["line"]
    constraint = next(s for s in body["oee"]["stations"] if s["id"] == oee["constraint"])
    assert {k: oee[k] for k in ("availability", "performance", "quality", "oee")} == {
        k: constraint[k] for k in ("availability", "performance", "quality", "oee")
    }
    assert 0 <= oee["availability"] <= 1
    assert 0 <= oee["quality"] <= 1
    assert abs(oee["oee"] - oee["availability"] * oee["performance"] * oee["quality"]) < 1e-9


def test_status_per_machine_and_per_station(client: TestClient) -> None:
    body = client.get(f"{BASE}/status", params={"machines": "true"}).json()
    b = next(s for s in body["stations"] if s["id"] == "B")
    assert [m["machine"] for m in b["machines"]] == [0, 1]
    one = client.get(f"{BASE}/status/B").json()
    assert len(one["machines"]) == 2
    _error(client.get(f"{BASE}/status/NOPE"), 404, "not_found")
    assert client.get(f"{BASE}/status").json()["stations"][0].get("machines") is None


def test_status_is_cached_until_the_next_event() -> None:
    view = LiveStatePublisher(LiveLine(MIXED_LINE))
    view(StateChanged(1.0, "A", 0, MachineState.WORKING, ""))
    view.end_batch()  # the pipeline publishes after each batch
    first = view.cached("probe", lambda snap: object())
    assert view.cached("probe", lambda snap: object()) is first  # no event since: the same body is served
    view(StateChanged(2.0, "A", 0, MachineState.DOWN, "f"))
    view.end_batch()
    assert view.cached("probe", lambda snap: object()) is not first


def test_oee_over_a_window_matches_the_twin(client: TestClient) -> None:
    rt = runtime_of(client)
    wait_for(lambda: (rt.live.read(lambda live: (live.clock_h or 0) - (live.history_start_h or 0))) > 3, what="3 h of history")
    start_h, end_h = rt.live.read(lambda live: (live.history_start_h, live.clock_h))
    assert start_h is not None
    assert end_h is not None
    start = datetime.fromtimestamp((start_h + 0.5) * 3600, UTC)
    end = datetime.fromtimestamp((start_h + 2.5) * 3600, UTC)
    body = client.get(f"{BASE}/oee", params={"start": start.isoformat(), "end": end.isoformat()}).json()
    kpis = rt.live.read(lambda live: live.kpis(start.timestamp() / 3600, end.timestamp() / 3600))
    lo = line_oee(MIXED_LINE, kpis)
    assert body["line"]["oee"] == lo.oee
    assert body["line"]["availability"] == lo.availability
    assert body["line"]["good"] == kpis.good
    assert {s["id"]: s["oee"] for s in body["stations"]} == {sid: s.oee for sid, s in kpis.stations.items()}


def test_oee_before_the_retained_history_says_so(client: TestClient) -> None:
    msg = _error(
        client.get(f"{BASE}/oee", params={"start": "2001-01-01T00:00:00Z", "end": "2001-01-01T08:00:00Z"}), 400, "bad_request"
    )
    assert "retained history" in msg


def test_throughput_counts_every_shipped_unit(client: TestClient) -> None:
    rt = runtime_of(client)
    wait_for(lambda: rt.live.read(lambda live: live.status().good) > 3, what="shipped units")
    # with the writers' lock held, so that the series and the count are of one moment
    good, series = rt.live.read(
        lambda live: (live.status().good, rt.live.output.series(live.history_start_h or 0, live.clock_h or 0, 1.0))
    )
    assert sum(g for _, g in series) == good
    body = client.get(f"{BASE}/throughput", params={"hours": 24, "every_s": 3600}).json()
    assert body["every_s"] == 3600
    assert len(body["start"]) == len(body["good"]) == len(body["per_hour"]) == len(body["covered_s"])
    assert sum(body["good"]) >= good
    end = datetime.fromisoformat(body["end"])
    starts = [datetime.fromisoformat(t) for t in body["start"]]
    # the newest interval is still filling: it covers up to the line's clock, and its rate is over that part only
    assert body["covered_s"][-1] == pytest.approx((end - starts[-1]).total_seconds())
    assert 0 < body["covered_s"][-1] <= 3600
    assert all(c == 3600 for c in body["covered_s"][1:-1])
    for g, c, r in zip(body["good"], body["covered_s"], body["per_hour"], strict=True):
        assert r == pytest.approx(g * 3600 / c)


def test_history_pages_and_aggregates_from_the_store(client: TestClient) -> None:
    rt = runtime_of(client)

    def clock() -> datetime:
        return datetime.fromtimestamp(rt.live.read(lambda live: live.clock_h or 0) * 3600, UTC)

    began = clock()
    wait_for(lambda: clock() - began > timedelta(hours=8), what="8 simulated hours")
    end = clock()
    start = end - timedelta(hours=8)
    params = {"start": start.isoformat(), "end": end.isoformat(), "limit": 5}
    first = client.get(f"{BASE}/history/state", params=params).json()
    assert len(first["points"]) == 5
    assert first["next_offset"] == 5
    second = client.get(f"{BASE}/history/state", params={**params, "offset": 5}).json()
    stamps = [p["ts"] for p in first["points"] + second["points"]]
    assert stamps == sorted(stamps)
    assert first["points"][-1] != second["points"][0]
    assert all(p["fields"]["state"] in ("WORKING", "STARVED", "BLOCKED", "DOWN") for p in first["points"])
    only_a = client.get(f"{BASE}/history/state", params={**params, "station": "A"}).json()
    assert {p["station"] for p in only_a["points"]} == {"A"}
    agg = client.get(
        f"{BASE}/history/buffer/aggregate",
        params={"field": "level", "every_s": 3600, "start": start.isoformat(), "end": end.isoformat()},
    ).json()
    assert agg["every_s"] == 3600
    assert agg["buckets"]
    for b in agg["buckets"]:
        assert b["min"] <= b["mean"] <= b["max"]
        assert b["count"] > 0


def test_history_is_bounded(client: TestClient) -> None:
    msg = _error(
        client.get(f"{BASE}/history/state", params={"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}),
        400,
        "bad_request",
    )
    assert "from 2026-01-01T00:00:00Z to 2026-03-01T00:00:00Z spans 59.0 days" in msg
    assert "at most 31" in msg
    _error(client.get(f"{BASE}/history/state", params={"limit": 20_000}), 422, "invalid_request")
    msg = _error(client.get(f"{BASE}/history/state/aggregate", params={"field": "reason"}), 400, "bad_request")
    assert "not a numeric field" in msg
    _error(client.get(f"{BASE}/history/nonsense"), 422, "invalid_request")
    msg = _error(
        client.get(f"{BASE}/history/state", params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}),
        400,
        "bad_request",
    )
    assert "must be after start" in msg


def _details(r: object, status: int) -> list[dict[str, object]]:
    _error(r, status, "bad_request" if status == 400 else "not_found")
    details: list[dict[str, object]] = r.json()["error"]["details"]  # type: ignore[attr-defined]
    assert details, "a 4xx without details"
    return details


def test_the_window_rules_are_the_same_on_every_route(client: TestClient) -> None:
    """A window in the future, a start before the retained history and an unknown station get one answer each,
    whatever the route, in the user's units (ISO times, the parameter's name)."""
    future = {"start": "2029-12-31T00:00:00Z", "end": "2030-01-01T00:00:00Z"}
    agg = {"field": "value"}
    for path, extra in (("oee", {}), ("downtime", {}), ("stops", {}), ("history/state", {}), ("history/process/aggregate", agg)):
        details = _details(client.get(f"{BASE}/{path}", params={**future, **extra}), 400)
        assert details[0]["loc"] == ["query", "end"], path
        assert details[0]["type"] == "window_in_future", path
        assert "end 2030-01-01T00:00:00Z is in the future" in str(details[0]["msg"]), path
    old = {"start": "2001-01-01T00:00:00Z", "end": "2001-01-01T08:00:00Z"}
    for path in ("oee", "downtime", "stops"):
        details = _details(client.get(f"{BASE}/{path}", params=old), 400)
        assert details[0]["loc"] == ["query", "start"], path
        assert "start 2001-01-01T00:00:00Z is before the retained history, which begins at" in str(details[0]["msg"])
    for path, extra in (("stops", {}), ("history/state", {}), ("history/process/aggregate", agg)):
        details = _details(client.get(f"{BASE}/{path}", params={"station": "NOPE", **extra}), 404)
        assert details[0]["loc"] == ["query", "station"], path
    assert _details(client.get(f"{BASE}/status/NOPE"), 404)[0]["loc"] == ["path", "station"]
    details = _details(client.get(f"{BASE}/history/process/aggregate", params={"field": "value", "every_s": 0.5}), 400)
    assert details[0]["loc"] == ["query", "every_s"]
    assert "every_s=0.5 makes 57,600 intervals" in str(details[0]["msg"])


def test_errors_have_one_shape(client: TestClient) -> None:
    msg = _error(client.get("/api/v1/lines/other_line"), 404, "not_found")
    assert "other_line" in msg
    _error(client.get("/api/v1/nowhere"), 404, "not_found")
    r = client.get(f"{BASE}/status", params={"machines": "perhaps"})
    msg = _error(r, 422, "invalid_request")
    assert "machines" in msg
    assert r.json()["error"]["details"][0]["loc"] == ["query", "machines"]


def test_dead_letters_keep_the_rejected_messages_with_reasons(tmp_path: Path) -> None:
    app = create_app(demo_settings(tmp_path, demo_malformed=0.2), line=MIXED_LINE)
    with TestClient(app, headers={"X-API-Key": OPERATOR}) as c:
        rt = runtime_of(c)
        wait_for(lambda: rt.ingest.stats.rejected >= 5, what="rejected messages")
        body = c.get("/api/v1/dead-letters", params={"limit": 3}).json()
        assert body["count"] >= 5
        assert len(body["latest"]) == 3
        for d in body["latest"]:
            assert d["topic"].startswith("gigatwin/plant1/")
            assert d["reason"]
            assert base64.b64decode(d["payload_base64"]).decode("utf-8", errors="replace") == d["payload"]
            # on the line's clock too: no later than the accepted lead after its receipt (the clock is of readings
            # received before it), once the demo's readings were stored
            received = datetime.fromisoformat(d["received"])
            if d["line_time"] is not None:
                assert datetime.fromisoformat(d["line_time"]) <= received + timedelta(seconds=rt.settings.max_lead_s)
        assert any(d["line_time"] is not None for d in body["latest"])
        # exactly the line clock stored with each letter: days away from the receive clock, or none yet
        topic = f"{rt.topics.base}/A/state"
        later_ms = 4_102_444_800_000  # 2100-01-01, after every letter of the demo
        line_ms = later_ms - 3 * 86_400_000 + 123
        rt.store.write_dead_letters([DeadLetter(later_ms, topic, b"{", "r"), DeadLetter(later_ms + 1, topic, b"[", "r", line_ms)])
        first, second = c.get("/api/v1/dead-letters", params={"limit": 2}).json()["latest"]
        assert datetime.fromisoformat(first["received"]) == datetime(2100, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)
        assert datetime.fromisoformat(first["line_time"]) == datetime(2099, 12, 29, 0, 0, 0, 123_000, tzinfo=UTC)
        assert second["line_time"] is None


def test_health_readiness_and_metrics(client: TestClient) -> None:
    live = client.get("/api/v1/health/live", headers={"X-API-Key": ""}).json()
    assert live["status"] == "ok"
    assert {t["name"] for t in live["tasks"]} == {"ingest", "feed", "forecast"}
    ready = client.get("/api/v1/health/ready", headers={"X-API-Key": ""})
    assert ready.status_code == 200
    assert ready.json()["store_writable"] is True
    assert ready.json()["source"] == "demo"
    client.get(f"{BASE}/status")
    text = client.get("/metrics").text
    received = next(line for line in text.splitlines() if line.startswith("gigatwin_messages_received_total "))
    assert float(received.split()[1]) > 0
    assert 'gigatwin_task_up{task="ingest"} 1.0' in text
    assert 'gigatwin_http_request_duration_seconds_count{method="GET",route="/api/v1/lines/{line}/status",status="200"}' in text


def test_a_task_that_dies_is_restarted_with_backoff_and_shown_in_health(tmp_path: Path) -> None:
    app = create_app(demo_settings(tmp_path), line=MIXED_LINE)
    with TestClient(app) as c:
        rt = runtime_of(c)
        real_submit = rt.ingest.submit
        failures = []

        def submit_failing_once(delivery: Delivery) -> None:
            if not failures:
                failures.append(time.monotonic())
                raise RuntimeError("the virtual PLC lost power")
            real_submit(delivery)

        rt.ingest.submit = submit_failing_once  # type: ignore[method-assign]  # the feed's publisher hands messages here
        wait_for(lambda: bool(failures), what="the feed to fail")
        wait_for(lambda: any(t.name == "feed" and t.restarts == 1 for t in rt.supervisor.status()), what="the failure to be seen")
        during = c.get("/api/v1/health/live").json()
        feed = next(t for t in during["tasks"] if t["name"] == "feed")
        assert feed["last_error"] == "RuntimeError: the virtual PLC lost power"
        # restarted after its backoff, and the feed goes on where it stopped
        wait_for(lambda: any(t.name == "feed" and t.state == "running" for t in rt.supervisor.status()), what="the restart")
        events = rt.ingest.stats.events
        wait_for(lambda: rt.ingest.stats.events > events + 20, what="events after the restart")
        after = c.get("/api/v1/health/live").json()
        assert after["status"] == "ok"
        assert next(t for t in after["tasks"] if t["name"] == "feed")["restarts"] == 1


def test_downtime_pareto_and_stop_attribution_are_the_twins(client: TestClient) -> None:
    rt = runtime_of(client)
    wait_for(lambda: rt.live.read(lambda live: (live.clock_h or 0) - (live.history_start_h or 0)) > 12, what="12 h of history")
    h0, h1 = rt.live.read(lambda live: (live.history_start_h, live.clock_h))
    assert h0 is not None
    assert h1 is not None
    start = datetime.fromtimestamp((h0 + 1) * 3600, UTC)
    end = datetime.fromtimestamp((h0 + 11) * 3600, UTC)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    w0, w1 = start.timestamp() / 3600, end.timestamp() / 3600

    pareto = client.get(f"{BASE}/downtime", params=window).json()
    truth = rt.live.read(lambda live: downtime_pareto(live.state_events(w0, w1), MIXED_LINE, w0, w1))
    assert pareto["hours"] == truth.hours
    assert [(e["station"], e["reason"], e["hours"], e["stops"]) for e in pareto["line"]] == [
        (e.station, e.reason, e.hours, e.stops) for e in truth.line
    ]
    assert set(pareto["stations"]) == {"A", "B", "S", "C"}
    hours = [e["hours"] for e in pareto["line"]]
    assert hours == sorted(hours, reverse=True)

    stops = client.get(f"{BASE}/stops", params={**window, "station": "C", "limit": 3}).json()
    attribution = rt.live.read(lambda live: attribute_stops(live.state_events(w0, w1), MIXED_LINE, w0, w1, station="C"))
    assert stops["station"] == "C"
    assert stops["total_stops"] == len(attribution.stops)
    assert len(stops["stops"]) == min(3, len(attribution.stops))
    assert abs(sum(c["hours"] for c in stops["causes"]) - stops["stopped_hours"]) < 1e-9
    # the output each cause cost, against the plan: its hours at the plan's rate, and its share of the window's plan
    plan = client.get(f"{BASE}").json()["plan_per_hour"]
    assert plan > 0
    for c in stops["causes"]:
        assert c["lost_units"] == pytest.approx(c["hours"] * plan)
        assert c["share_of_plan"] == pytest.approx(c["hours"] / (w1 - w0))
    assert sum(c["lost_units"] for c in stops["causes"]) == pytest.approx(stops["stopped_hours"] * plan)
    if stops["stops"]:
        newest = stops["stops"][0]
        assert newest["chain"][0]["station"] == "C"
        assert newest["cause_station"] == (
            newest["chain"][-1]["station"] if newest["cause_kind"] not in ("supply", "shipping") else None
        )
    default = client.get(f"{BASE}/stops", params=window).json()
    assert default["station"] == "C"  # the line's output: its last station
    _error(client.get(f"{BASE}/stops", params={"station": "Z"}), 404, "not_found")
