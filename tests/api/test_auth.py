"""API keys: no key, a wrong key, a key of too low a role, and the right role; health needs none."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import LINE_ID, OPERATOR, VIEWER, demo_settings
from tests.conftest import MIXED_LINE

BASE = f"/api/v1/lines/{LINE_ID}"
READ_ROUTES = [
    "/api/v1/lines",
    BASE,
    f"{BASE}/status",
    f"{BASE}/oee",
    f"{BASE}/throughput",
    f"{BASE}/history/state",
    "/api/v1/dead-letters",
    "/metrics",
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    app = create_app(demo_settings(tmp_path_factory.mktemp("auth")), line=MIXED_LINE)
    with TestClient(app) as c:
        yield c  # type: ignore[misc]


@pytest.mark.parametrize("path", READ_ROUTES)
def test_reading_needs_a_key(service: TestClient, path: str) -> None:
    r = service.get(path)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "API key" in r.json()["error"]["message"]
    wrong = service.get(path, headers={"X-API-Key": "not-a-key"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "the API key is not valid"
    assert service.get(path, headers={"X-API-Key": VIEWER}).status_code == 200
    assert service.get(path, headers={"Authorization": f"Bearer {OPERATOR}"}).status_code == 200


def test_the_stream_takes_its_key_as_a_query_parameter(service: TestClient) -> None:
    assert service.get(f"{BASE}/stream").status_code == 401
    assert service.get(f"{BASE}/stream", params={"api_key": "nope"}).status_code == 401


def test_changing_the_plan_needs_the_operator_role(service: TestClient) -> None:
    plan = {"plan_per_hour": 1.5}
    assert service.put(f"{BASE}/plan", json=plan).status_code == 401
    r = service.put(f"{BASE}/plan", json=plan, headers={"X-API-Key": VIEWER})
    assert r.status_code == 403
    assert r.json()["error"] == {
        "status": 403,
        "code": "forbidden",
        "message": "this needs the operator role; the key has the viewer role",
        "details": [],
    }
    ok = service.put(f"{BASE}/plan", json=plan, headers={"X-API-Key": OPERATOR})
    assert ok.status_code == 200
    assert ok.json()["plan_per_hour"] == 1.5
    assert service.get(BASE, headers={"X-API-Key": VIEWER}).json()["plan_per_hour"] == 1.5
    app = service.app
    assert app.state.runtime.live.live.plan_per_hour == 1.5  # type: ignore[attr-defined]  # the shift is measured against it
    bad = service.put(f"{BASE}/plan", json={"plan_per_hour": -1}, headers={"X-API-Key": OPERATOR})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["loc"] == ["body", "plan_per_hour"]


def test_health_needs_no_key(service: TestClient) -> None:
    assert service.get("/api/v1/health/live").status_code == 200
    assert service.get("/api/v1/health/ready").status_code in (200, 503)


def test_the_dashboard_page_is_public_and_holds_no_data(service: TestClient) -> None:
    r = service.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")


def test_every_way_of_sending_a_key_is_accepted_and_documented(service: TestClient) -> None:
    path = f"{BASE}/status"
    assert service.get(path, params={"api_key": VIEWER}).status_code == 200
    assert service.get(path, headers={"Authorization": f"bearer {VIEWER}"}).status_code == 200
    assert service.get(path, headers={"Authorization": f"Basic {VIEWER}"}).status_code == 401
    schema = service.get("/api/v1/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"APIKeyHeader", "HTTPBearer", "APIKeyQuery"}
    assert schema["paths"]["/api/v1/lines"]["get"]["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}, {"APIKeyQuery": []}]
    assert "security" not in schema["paths"]["/api/v1/health/live"]["get"]
