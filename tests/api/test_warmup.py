"""The service warms its read-only pages in-process at start-up: each answers as a client would be answered, and
none of it shows in the request metrics that clients' requests make."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import LINE_ID, VIEWER, demo_settings
from tests.conftest import MIXED_LINE


def test_the_pages_are_warmed_with_a_key_and_not_counted(tmp_path: Path) -> None:
    app = create_app(demo_settings(tmp_path), line=MIXED_LINE)
    with TestClient(app, headers={"X-API-Key": VIEWER}) as client:
        assert app.state.warmed == {
            "/": 200,
            f"/api/v1/lines/{LINE_ID}/status": 200,  # behind a key: warmed through to its answer
            "/api/v1/health/ready": 200,
            "/metrics": 200,
            "/api/v1/-": 404,  # no such page: every router's matching is built on the way
        }
        text = client.get("/metrics").text
    counted = [line for line in text.splitlines() if line.startswith("gigatwin_http_request_duration_seconds_count")]
    assert counted == [], f"warm-up requests were counted: {counted}"


def test_without_keys_the_pages_are_warmed_too(tmp_path: Path) -> None:
    app = create_app(demo_settings(tmp_path, viewer_keys=[], operator_keys=[], auth_disabled=True), line=MIXED_LINE)
    with TestClient(app):
        assert app.state.warmed[f"/api/v1/lines/{LINE_ID}/status"] == 200
