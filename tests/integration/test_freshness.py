"""Stale data is reported as stale: a station whose telemetry stopped is named by readiness and the metrics, and the
status says when each station's newest data was taken, through real mosquitto and the service as it ships."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from api.settings import load_settings
from connectors.mqtt import MqttPublisher, parse_mqtt_url
from tests.api.conftest import LiveServer
from tests.integration.mqtt_server import MosquittoServer
from tests.integration.streams import REFERENCE_LINE, buffer_stream, wait_for

pytestmark = pytest.mark.integration

STALE_AFTER_S = 1.5


def _metric(text: str, name: str) -> float:
    line = next(ln for ln in text.splitlines() if ln.startswith(name + " ") or ln.startswith(name + "{"))
    return float(line.rsplit(" ", 1)[1])


def test_a_station_whose_data_stopped_is_reported_stale(broker: MosquittoServer, tmp_path: Path) -> None:
    settings = load_settings(
        source="mqtt",
        mqtt_url=broker.url,
        mqtt_client_id="freshness",
        line_file=REFERENCE_LINE,
        store_url=f"sqlite:{tmp_path / 'fresh.db'}",
        auth_disabled=True,
        max_lead_s=10 * 365 * 86400.0,
        stale_after_s=STALE_AFTER_S,
    )
    with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        publisher = MqttPublisher(parse_mqtt_url(broker.url, client_id="plant"))
        publisher.start()
        try:
            sent = time.time()
            for topic, payload, _ in buffer_stream(20):
                publisher.publish(topic, payload)
        finally:
            publisher.stop()
        wait_for(lambda: http.get("/api/v1/health/ready").json()["data_age_s"] is not None, 10, "the data to be taken")
        ready = http.get("/api/v1/health/ready").json()
        assert ready["stale_stations"] == []
        assert ready["data_age_s"] < STALE_AFTER_S
        status = http.get("/api/v1/lines/reference_cell_line/status").json()
        seen = {s["id"]: s["data_seen_at"] for s in status["stations"]}
        assert seen["COAT_C"] is not None
        assert datetime.fromisoformat(seen["COAT_C"]).timestamp() >= sent - 1
        assert {sid for sid, at in seen.items() if at is not None} == {"COAT_C"}
        assert status["stale_after_s"] == STALE_AFTER_S

        # nothing more comes: past stale_after_s the station is stale, and the service still ready
        wait_for(lambda: http.get("/api/v1/health/ready").json()["stale_stations"] == ["COAT_C"], 10, "COAT_C to go stale")
        ready_response = http.get("/api/v1/health/ready")
        assert ready_response.status_code == 200
        assert ready_response.json()["data_age_s"] > STALE_AFTER_S
        metrics = http.get("/metrics").text
        assert _metric(metrics, "gigatwin_stale_stations") == 1
        assert _metric(metrics, 'gigatwin_station_data_age_seconds{station="COAT_C"}') > STALE_AFTER_S
        status = http.get("/api/v1/lines/reference_cell_line/status").json()
        assert status["data_seen_at"] == next(s["data_seen_at"] for s in status["stations"] if s["id"] == "COAT_C")
