"""The API serving a plant's telemetry through real parts: the virtual plant publishes to mosquitto, the service
consumes it into InfluxDB (both started by the test), and the API answers from the live state and the database. The
service runs as it ships: its pipeline in a process of its own."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from api.line_process import REPORT_MAX_S
from api.settings import load_settings
from connectors.feed import VirtualPlant
from connectors.mqtt import MqttPublisher, parse_mqtt_url
from connectors.rebuild import rebuild
from connectors.stores.influx import InfluxStore
from tests.api.conftest import OPERATOR, VIEWER, LiveServer, wait_for
from tests.conftest import make_line
from tests.integration.influx_server import InfluxServer
from tests.integration.mqtt_server import MosquittoServer
from twin.counters import CumulativeCounters
from twin.state import LiveLine

pytestmark = pytest.mark.integration

# A two-station line in minutes, so that a few wall seconds at x600 hold many state changes.
LINE = make_line(
    {
        "id": "COAT",
        "cycle_time": {"dist": "exponential", "mean": 1 / 60},
        "failures": [
            {"name": "web_break", "ttf": {"dist": "exponential", "mean": 0.5}, "ttr": {"dist": "exponential", "mean": 0.1}}
        ],
        "buffer_after": 20,
    },
    {"id": "PACK", "cycle_time": {"dist": "exponential", "mean": 1 / 70}},
)


def test_the_api_serves_a_plant_through_mosquitto_and_influxdb(
    tmp_path: Path, broker: MosquittoServer, influx: InfluxServer
) -> None:
    host_port = influx.url.removeprefix("http://")
    settings = load_settings(
        source="mqtt",
        mqtt_url=broker.url,
        mqtt_client_id="api-under-test",
        store_url=f"influxdb://{host_port}/gigatwin",
        spool_dir=tmp_path / "spool",
        viewer_keys=[VIEWER],
        operator_keys=[OPERATOR],
        stream_period_s=0.1,
    )
    with LiveServer(settings, line=LINE) as server:
        ready = httpx.get(f"{server.url}/api/v1/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["source_ok"] is True
        publisher = MqttPublisher(parse_mqtt_url(broker.url, client_id="plant"))
        publisher.start()
        stop = threading.Event()
        # 3 simulated hours from 3 h ago: the plant's clock ends at the present, within the accepted lead (300 s)
        origin_ms = round(time.time() * 1000) - 3 * 3_600_000
        plant = VirtualPlant(LINE, topics=server.runtime.topics, publisher=publisher, speed=1200, seed=3, origin_ms=origin_ms)
        feeder = threading.Thread(target=plant.run, kwargs={"stop": stop, "until_h": 3.0}, daemon=True)
        feeder.start()
        try:
            feeder.join(60)  # 3 simulated hours at x1200: 9 s
        finally:
            stop.set()
            feeder.join(10)
            publisher.flush()
            publisher.stop()
        http = httpx.Client(base_url=f"{server.url}/api/v1", headers={"X-API-Key": VIEWER}, timeout=10)
        sent = sum(plant.stats().messages.values())
        wait_for(lambda: server.runtime.ingest_stats().received >= sent, what="every message")
        time.sleep(2 * REPORT_MAX_S)  # the pipeline's process reports what it took
        status = http.get("/lines/test/status").json()
        assert [s["id"] for s in status["stations"]] == ["COAT", "PACK"]
        assert status["good"] > 100
        # what the store holds, replayed, is what the live state says
        store = InfluxStore(influx.url, "gigatwin", spool_dir=tmp_path / "spool-check")
        replayed = LiveLine(LINE)
        span = (origin_ms - 3_600_000, round(time.time() * 1000) + 600_000)
        rebuild(store, server.runtime.topics, [replayed], start_ms=span[0], end_ms=span[1], counters=CumulativeCounters())
        store.close()
        assert status["good"] == replayed.status().good
        assert [s["good"] for s in status["stations"]] == [replayed.status().stations[s].good for s in ("COAT", "PACK")]

        # history comes from InfluxDB: every state change the plant published is there
        now = datetime.fromisoformat(status["now"])
        window = {"start": (now - timedelta(hours=3)).isoformat(), "end": (now + timedelta(seconds=1)).isoformat()}
        states, offset = [], 0
        while offset is not None:
            page = http.get("/lines/test/history/state", params={**window, "limit": 500, "offset": offset}).json()
            states += page["points"]
            offset = page["next_offset"]
        assert len(states) == plant.stats().messages["state"]
        assert {p["fields"]["state"] for p in states} >= {"WORKING", "DOWN"}
        agg = http.get("/lines/test/history/buffer/aggregate", params={**window, "field": "level", "every_s": 600}).json()
        assert sum(b["count"] for b in agg["buckets"]) == plant.stats().messages["buffer"]

        # the stops of the output trace back to the coater's web breaks
        # (the default start: the retained history began with the plant, less than 3 h ago, and an earlier start is a 400)
        stops = http.get("/lines/test/stops", params={"end": window["end"]}).json()
        down = [c for c in stops["causes"] if c["kind"] == "down"]
        assert down
        assert {c["station"] for c in down} == {"COAT"}
        assert {c["reason"] for c in down} == {"web_break"}
        assert datetime.fromisoformat(stops["end"]) <= now.astimezone(UTC) + timedelta(seconds=1)
        metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {VIEWER}"}).text
        assert "gigatwin_source_up 1.0" in metrics
        assert "gigatwin_store_writable 1.0" in metrics
        http.close()
