"""The calibration routes: the line's parameters from the service's own store, applied to forecasts and taken back,
with errors in the API's shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import LINE_ID, OPERATOR, VIEWER, demo_settings, wait_for
from tests.conftest import MIXED_LINE

BASE = f"/api/v1/lines/{LINE_ID}"
MODES = {(s.id, f.name) for s in MIXED_LINE.stations for f in s.failures}


def _enough(c: TestClient, failures: int) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def ready() -> bool:
        r = c.get(f"{BASE}/calibration", params={"min_failures": failures})
        if r.status_code != 200:
            return False
        body = r.json()
        if all(m["used"] == "fitted" for st in body["stations"].values() for m in st["failures"] if m["known"]):
            got.update(body)
            return True
        return False

    wait_for(ready, 90.0, f"{failures} failures of every mode in the store")
    return got


@pytest.mark.parametrize("pipeline_process", [False, True], ids=["in-process", "pipeline-process"])
def test_the_line_is_calibrated_from_its_store_and_forecasts_use_it_on_request(tmp_path: Path, pipeline_process: bool) -> None:
    settings = demo_settings(tmp_path, pipeline_process=pipeline_process, forecast_period_s=0)
    viewer, operator = {"X-API-Key": VIEWER}, {"X-API-Key": OPERATOR}
    with TestClient(create_app(settings, line=MIXED_LINE), headers=viewer) as c:
        body = _enough(c, 8)
        assert body["line"] == LINE_ID
        assert body["time_unit"] == MIXED_LINE.time_unit
        seen = {(sid, m["name"]) for sid, st in body["stations"].items() for m in st["failures"] if m["known"]}
        assert seen == MODES
        for st in body["stations"].values():
            for m in st["failures"]:
                if not m["known"]:
                    continue
                assert m["n_failures"] >= 8
                lo, hi = m["ttf"]["ci95"]
                assert lo <= m["ttf"]["mean"] <= hi
                assert m["ttf"]["design_mean"] > 0
        assert isinstance(body["flagged"], list)
        assert body["parameters"] == "line-file"
        assert body["applied"] is False

        def parameters() -> str:
            r = c.get(f"{BASE}/forecast", params={"horizon_h": 1, "replications": 2})
            assert r.status_code == 200, r.text
            value: str = r.json()["parameters"]
            return value

        assert parameters() == "line-file"
        assert c.post(f"{BASE}/calibration/apply", params={"min_failures": 8}).status_code == 403  # viewers may not
        r = c.post(f"{BASE}/calibration/apply", params={"min_failures": 8}, headers=operator)
        assert r.status_code == 200, r.text
        assert (r.json()["applied"], r.json()["parameters"]) == (True, "calibrated")
        assert parameters() == "calibrated"
        assert c.delete(f"{BASE}/calibration/apply").status_code == 403
        r = c.delete(f"{BASE}/calibration/apply", headers=operator)
        assert r.status_code == 200, r.text
        assert r.json()["parameters"] == "line-file"
        assert parameters() == "line-file"

        r = c.get(f"{BASE}/calibration", params={"since": "2100-01-01T00:00:00Z"})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "not_calibratable"
        r = c.get(f"{BASE}/calibration", params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"})
        assert r.status_code == 400, r.text
        for params in ({"min_failures": 0}, {"since": "soon"}):
            assert c.get(f"{BASE}/calibration", params=params).status_code == 422
        assert c.get("/api/v1/lines/nope/calibration").status_code == 404
