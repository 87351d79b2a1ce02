"""What-ifs in the service: asked with a scenario (202 and a job), followed (state, progress, SSE), cancelled, bounded
by a queue, kept for a while, refused with the field named when the scenario does not fit the line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.whatif_jobs import WhatIfJobs, WhatIfSpec
from tests.api.conftest import LINE_ID, OPERATOR, VIEWER, demo_settings, served_of, wait_for
from tests.conftest import MIXED_LINE
from twin.scenario import Scenario
from twin.schema import Line

BASE = f"/api/v1/lines/{LINE_ID}"
WHATIF = f"{BASE}/whatif"
STATIONS = {s.id for s in MIXED_LINE.stations}
LINE_FIGURES = {"throughput_per_hour", "good", "scrap_rate", "wip_mean", "lead_time_mean_h"}
STATION_FIGURES = {"down_h", "oee", "availability", "throughput_per_hour"}
FINISHED = {"done", "failed", "cancelled"}
# A what-if long enough to be caught running: 2 000 replications of 200 h of the small line, about a minute in one
# thread (it is cancelled within a replication or two)
LONG = {"name": "long", "changes": [], "hours": 200, "replications": 2000}


@contextmanager
def service(tmp_path: Path, **overrides: Any) -> Iterator[TestClient]:
    """The demo service on the small mixed line, what-ifs in its own thread (``whatif_workers`` 1), operator key;
    the first events have arrived."""
    values: dict[str, Any] = {"whatif_workers": 1, "forecast_period_s": 0, "whatif_max_replication_hours": 1e7, **overrides}
    with TestClient(create_app(demo_settings(tmp_path, **values), line=MIXED_LINE), headers={"X-API-Key": OPERATOR}) as c:
        rt = served_of(c)
        wait_for(lambda: rt.ingest_stats().events > 50, what="the demo's first events")
        yield c


def jobs_spec(line: Line) -> WhatIfSpec:
    """A small what-if from steady state that changes nothing."""
    return WhatIfSpec(line, "line-file", Scenario(name="s"), hours=1, replications=2, seed=0, start="steady_state")


def _post(c: TestClient, body: dict[str, Any], **headers: str) -> Any:
    return c.post(WHATIF, json=body, headers=headers or None)


def _finished(c: TestClient, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def done() -> bool:
        got.update(c.get(f"{WHATIF}/{job_id}").json())
        return got["state"] in FINISHED

    wait_for(done, timeout_s, f"what-if {job_id} to finish")
    return got


def _running(c: TestClient, job_id: str) -> None:
    def started() -> bool:
        j = c.get(f"{WHATIF}/{job_id}").json()
        return bool(j["state"] == "running" and j["progress"]["done"] > 0)

    wait_for(started, 30.0, f"what-if {job_id} to run")


@pytest.mark.parametrize("pipeline_process", [False, True], ids=["in-process", "pipeline-process"])
def test_a_whatif_from_now_runs_as_a_job_to_its_paired_result(tmp_path: Path, pipeline_process: bool) -> None:
    with service(tmp_path, pipeline_process=pipeline_process) as c:
        body = {"name": "nothing", "description": "changes nothing", "changes": [], "hours": 6, "replications": 8, "seed": 5}
        r = _post(c, body)
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"] == f"{WHATIF}/{job['id']}"
        assert job["state"] in {"queued", "running", "done"}
        assert job["progress"]["total"] == 8
        assert job["as_of"] is not None  # from the plant's state when asked
        assert job["request"] == {
            "scenario": {"name": "nothing", "description": "changes nothing", "changes": []},
            "hours": 6.0,
            "replications": 8,
            "seed": 5,
            "start": "now",
            "warmup": 0.0,
        }

        done = _finished(c, job["id"])
        assert done["state"] == "done", done["error"]
        assert done["progress"] == {"done": 8, "total": 8}
        assert done["error"] is None
        result = done["result"]
        assert (result["line"], result["start"], result["hours"], result["replications"], result["seed"]) == (
            LINE_ID,
            "snapshot",
            6.0,
            8,
            5,
        )
        assert result["parameters"] == done["parameters"] == "line-file"
        assert result["config_hash"] == MIXED_LINE.config_hash()
        assert result["baseline"]["replications"] == 8
        scenario = result["scenarios"]["nothing"]
        assert set(scenario) == {"scenario_hash", "description", "kpis", "delta", "bottleneck_votes"}
        delta = scenario["delta"]
        assert set(delta) == LINE_FIGURES | {"stations"}
        assert set(delta["stations"]) == STATIONS
        # nothing changed: every replication of the scenario is its baseline's twin, the difference exactly zero (while
        # the unpaired interval, blind to the pairing, is not)
        for figure in LINE_FIGURES:
            assert (delta[figure]["mean"], delta[figure]["ci95"]) == (0.0, 0.0), figure
        assert delta["throughput_per_hour"]["ci95_unpaired"] > 0
        for sid, figures in delta["stations"].items():
            assert set(figures) == STATION_FIGURES
            for name, d in figures.items():
                assert (d["mean"], d["ci95"]) == (0.0, 0.0), (sid, name)
        assert scenario["kpis"]["good"] == result["baseline"]["good"]

        # the list has it, without its result
        listed = c.get(WHATIF).json()
        assert [j["id"] for j in listed["jobs"]] == [job["id"]]
        assert listed["jobs"][0]["result"] is None
        assert listed["jobs"][0]["state"] == "done"


def test_a_whatif_from_steady_state_measures_a_stations_outage(tmp_path: Path) -> None:
    """C ships the line's output: down for 4 of the 8 hours, the line ships less, and C is down about 4 h more."""
    with service(tmp_path) as c:
        body = {
            "name": "c_down",
            "changes": [{"station": "C", "down": {"at": "1h", "for": 4, "reason": "roll_change"}}],
            "hours": 8,
            "replications": 20,
            "start": "steady_state",
            "warmup": 24,
        }
        r = _post(c, body)
        assert r.status_code == 202, r.text
        assert r.json()["as_of"] is None
        done = _finished(c, r.json()["id"])
        assert done["state"] == "done", done["error"]
        result = done["result"]
        assert (result["start"], result["warmup"]) == ("steady_state", 24.0)
        delta = result["scenarios"]["c_down"]["delta"]
        tp = delta["throughput_per_hour"]
        assert tp["mean"] < -tp["ci95"] < 0  # fewer units, significantly
        # the paired interval is the narrower: the other stations drew the same numbers
        assert tp["ci95"] < tp["ci95_unpaired"]
        down = delta["stations"]["C"]["down_h"]
        assert 2.0 < down["mean"] <= 4.0 + 1e-9  # 4 h less the failures the baseline had in that time anyway
        assert down["mean"] > down["ci95"]


def test_progress_streams_to_the_end(tmp_path: Path) -> None:
    with service(tmp_path) as c:
        job = _post(c, {"name": "s", "changes": [], "hours": 4, "replications": 12}).json()
        with c.stream("GET", f"{WHATIF}/{job['id']}/events", headers={"X-API-Key": VIEWER}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = []
            event = ""
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[6:])))
        kinds = [e for e, _ in events]
        assert kinds[-1] == "end"
        assert kinds.count("end") == 1
        assert set(kinds[:-1]) <= {"progress"}
        done = [d["done"] for _, d in events]
        assert done == sorted(done)
        assert events[-1][1] == {"id": job["id"], "state": "done", "done": 12, "total": 12, "error": None}
        assert c.get(f"{WHATIF}/nope/events").status_code == 404


@pytest.mark.parametrize(
    ("change", "loc", "says"),
    [
        ({"station": "NOPE", "scale": {"cycle_time": 2}}, ["body", "changes", "0", "station"], "'NOPE' is not a station"),
        ({"station": "A", "scale": {"failures.*.ttr": 0}}, ["body", "changes", "0"], "scale.failures.*.ttr: a factor must be"),
        ({"station": "A", "scale": {"cycle_time": -1}}, ["body", "changes", "0"], "scale.cycle_time: a factor must be"),
        ({"station": "A", "scale": {"speeed": 2}}, ["body", "changes", "0", "scale"], "no field 'speeed'"),
        (
            {"station": "A", "planned_stop": {"start": "9h", "duration": 1}},
            ["body", "changes", "0", "planned_stop", "start"],
            "9 h is not inside the horizon of 8 h",
        ),
        ({"station": "B", "down": {"at": 8, "for": 1}}, ["body", "changes", "0", "down", "at"], "not inside the horizon"),
        ({"station": "A", "set": {"buffer_after": -1}}, ["body", "changes", "0"], "buffer_after"),
    ],
)
def test_a_scenario_that_does_not_fit_is_a_422_naming_the_field(
    tmp_path: Path, change: dict[str, Any], loc: list[str], says: str
) -> None:
    with service(tmp_path) as c:
        r = _post(c, {"name": "bad", "changes": [change], "hours": 8})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_request"
        assert says in error["message"]
        assert error["details"][0]["loc"][: len(loc)] == loc
        assert c.get(WHATIF).json()["jobs"] == []  # nothing queued


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"hours": 0}, "hours", "greater than or equal to 0.0166"),
        ({"hours": 1e-300}, "hours", "greater than or equal to 0.0166"),
        ({"hours": "soon"}, "hours", "valid number"),
        ({"replications": 1}, "replications", "greater than or equal to 2"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"start": "yesterday"}, "start", "'now' or 'steady_state'"),
        ({"start": "steady_state"}, "warmup", "warmup (hours) is required with start steady_state"),
        ({"warmup": 5}, "warmup", "warmup is for start steady_state"),
        ({"name": "a b"}, "name", "should match pattern"),
        ({"colour": "red"}, "colour", "Extra inputs"),
        ({"replications": 10_000, "hours": 1000}, "replications", "is more than this service runs for one what-if"),
    ],
)
def test_bad_numbers_are_a_422_naming_the_field(tmp_path: Path, body: dict[str, Any], field: str, says: str) -> None:
    with service(tmp_path, whatif_max_replication_hours=100_000) as c:
        r = _post(c, {"name": "ok", "changes": [], "hours": 8, **body})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert says in error["message"]
        assert error["details"][0]["loc"] == ["body", field]


def test_a_viewer_reads_whatifs_but_may_not_run_or_cancel_them(tmp_path: Path) -> None:
    with service(tmp_path) as c:
        body = {"name": "v", "changes": [], "hours": 2, "replications": 4}
        r = _post(c, body, **{"X-API-Key": VIEWER})
        assert r.status_code == 403
        assert r.json()["error"]["message"] == "this needs the operator role; the key has the viewer role"
        assert _post(c, body, **{"X-API-Key": "nobody"}).status_code == 401
        job = _post(c, body).json()
        done = _finished(c, job["id"])
        seen = c.get(f"{WHATIF}/{job['id']}", headers={"X-API-Key": VIEWER})
        assert seen.status_code == 200
        assert seen.json()["result"] == done["result"]
        assert c.get(WHATIF, headers={"X-API-Key": VIEWER}).json()["jobs"][0]["id"] == job["id"]
        assert c.delete(f"{WHATIF}/{job['id']}", headers={"X-API-Key": VIEWER}).status_code == 403


@pytest.mark.parametrize("workers", [1, 2], ids=["in-a-thread", "process-pool"])
def test_cancel_stops_a_running_whatif_between_replications_and_drops_a_queued_one(tmp_path: Path, workers: int) -> None:
    with service(tmp_path, whatif_workers=workers) as c:
        running = _post(c, LONG).json()
        queued = _post(c, {**LONG, "name": "waits"}).json()
        _running(c, running["id"])
        assert c.get(f"{WHATIF}/{queued['id']}").json()["state"] == "queued"  # one job runs at a time

        r = c.delete(f"{WHATIF}/{queued['id']}")
        assert r.status_code == 200
        assert r.json()["state"] == "cancelled"  # at once: it never started
        assert r.json()["started"] is None

        r = c.delete(f"{WHATIF}/{running['id']}")
        assert r.status_code == 200
        assert r.json()["cancel_requested"] is True
        stopped = _finished(c, running["id"], 30.0)
        assert stopped["state"] == "cancelled"
        assert stopped["result"] is None
        assert stopped["error"] == "cancelled"
        # stopped, not run out: most of its replications never ran
        assert 0 < stopped["progress"]["done"] < stopped["progress"]["total"] / 2
        # the next job runs once the cancelled one stopped: the pool's queued replications were dropped (else it would
        # wait for them, minutes)
        after = _post(c, {"name": "next", "changes": [], "hours": 2, "replications": 4}).json()
        assert _finished(c, after["id"])["state"] == "done"
        # cancelling a finished job leaves it as it was
        assert c.delete(f"{WHATIF}/{after['id']}").json()["state"] == "done"
        assert c.delete(f"{WHATIF}/nope").status_code == 404


def test_the_service_stopping_cancels_its_whatifs(tmp_path: Path) -> None:
    """A shutdown does not wait for what-ifs: the running one is stopped (its processes ended), the queued dropped."""
    with service(tmp_path, whatif_workers=2) as c:
        running = _post(c, LONG).json()
        queued = _post(c, {**LONG, "name": "waits"}).json()
        _running(c, running["id"])
        app: FastAPI = c.app  # type: ignore[assignment]
        jobs: WhatIfJobs = app.state.whatifs
    ran, waited = jobs.get(running["id"]), jobs.get(queued["id"])
    assert ran is not None
    assert waited is not None
    assert (ran.state, waited.state) == ("cancelled", "cancelled")
    assert ran.done < ran.total / 2
    assert waited.started_s is None
    with pytest.raises(RuntimeError, match="the service is stopping"):
        jobs.submit(jobs_spec(MIXED_LINE))


def test_a_full_queue_is_a_429_with_retry_after(tmp_path: Path) -> None:
    with service(tmp_path, whatif_queue=2) as c:
        running = _post(c, LONG).json()
        _running(c, running["id"])
        waiting = [_post(c, {**LONG, "name": f"w{i}"}) for i in range(2)]
        assert [r.status_code for r in waiting] == [202, 202]
        r = _post(c, {**LONG, "name": "one_too_many"})
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "queue_full"
        assert "2 what-ifs are waiting already" in r.json()["error"]["message"]
        assert int(r.headers["retry-after"]) >= 1
        # a place frees when one is cancelled
        c.delete(f"{WHATIF}/{waiting[0].json()['id']}")
        assert _post(c, {**LONG, "name": "now_fits"}).status_code == 202
        for job in c.get(WHATIF).json()["jobs"]:
            c.delete(f"{WHATIF}/{job['id']}")


def test_a_finished_whatif_is_kept_for_the_keep_time_then_forgotten(tmp_path: Path) -> None:
    keep_s = 1.5
    with service(tmp_path, whatif_keep_s=keep_s) as c:
        job = _post(c, {"name": "k", "changes": [], "hours": 2, "replications": 4}).json()
        done = _finished(c, job["id"])
        finished_at = time.monotonic()
        assert done["state"] == "done"
        assert c.get(f"{WHATIF}/{job['id']}").status_code == 200  # kept
        assert c.get(WHATIF).json()["keep_s"] == keep_s
        wait_for(lambda: c.get(f"{WHATIF}/{job['id']}").status_code == 404, 10.0, "the what-if to be forgotten")
        assert time.monotonic() - finished_at >= keep_s - 0.5  # not before its time (less the poll's slack)
        r = c.get(f"{WHATIF}/{job['id']}")
        assert "forgotten 1.5 s after it finished" in r.json()["error"]["message"]
        assert c.get(WHATIF).json()["jobs"] == []


def test_the_example_scenarios_are_listed_with_whether_they_fit_the_line(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "a_faster_b.yaml").write_text(
        "name: faster_b\ndescription: B's cycle 20 % shorter\nchanges:\n  - {station: B, scale: {cycle_time: 0.8}}\n"
    )
    (folder / "b_other_line.yaml").write_text("name: other\nchanges:\n  - {station: STACK, set: {machines: 3}}\n")
    (folder / "c_broken.yaml").write_text("name: [unclosed\n")
    (folder / "notes.txt").write_text("not a scenario")
    with service(tmp_path, scenario_dir=folder) as c:
        r = c.get(f"{BASE}/scenarios", headers={"X-API-Key": VIEWER})
        assert r.status_code == 200
        got = {s["file"]: s for s in r.json()["scenarios"]}
        assert list(got) == ["a_faster_b.yaml", "b_other_line.yaml", "c_broken.yaml"]
        ok = got["a_faster_b.yaml"]
        assert (ok["name"], ok["description"], ok["fits"], ok["problem"]) == ("faster_b", "B's cycle 20 % shorter", True, None)
        assert ok["changes"] == [{"station": "B", "scale": {"cycle_time": 0.8}}]
        assert got["b_other_line.yaml"]["fits"] is False
        assert "'STACK' is not a station" in got["b_other_line.yaml"]["problem"]
        assert got["c_broken.yaml"]["fits"] is False
        assert "not valid YAML" in got["c_broken.yaml"]["problem"]
        # a listed scenario runs as it is listed
        r = _post(
            c, {"name": ok["name"], "description": ok["description"], "changes": ok["changes"], "hours": 4, "replications": 4}
        )
        assert r.status_code == 202, r.text
        assert _finished(c, r.json()["id"])["state"] == "done"


def test_from_now_before_any_telemetry_is_a_409_and_steady_state_runs(tmp_path: Path) -> None:
    """A plant whose broker is out of reach: nothing is known of its state to start from, a line is still a line."""
    settings = demo_settings(
        tmp_path,
        source="mqtt",
        mqtt_url="mqtt://127.0.0.1:1",
        whatif_workers=1,
        forecast_period_s=0,
        whatif_max_replication_hours=1e6,
    )
    with TestClient(create_app(settings, line=MIXED_LINE), headers={"X-API-Key": OPERATOR}) as c:
        r = _post(c, {"name": "n", "changes": [], "hours": 2, "replications": 4})
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "not_ready"
        assert "no telemetry has come in yet" in r.json()["error"]["message"]
        r = _post(c, {"name": "n", "changes": [], "hours": 2, "replications": 4, "start": "steady_state", "warmup": 2})
        assert r.status_code == 202, r.text
        assert _finished(c, r.json()["id"])["state"] == "done"
