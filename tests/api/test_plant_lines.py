"""The API of a line as plants run it: each station's inputs, the station it feeds and its branch, the line's chains
of stations (branches merging into the trunk), its calendar and planned stops; and where the calendar stands (in a
shift, a break, off shift, a holiday or a planned stop of the line, and until when), on its own route and in the
status. Existing fields keep their values for a serial line."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.views import TRUNK, branches, calendar_now, line_out
from tests.api.conftest import VIEWER, demo_settings, runtime_of, wait_for
from tests.conftest import MIXED_LINE, make_line

_CYCLE = {"dist": "exponential", "mean": 0.05}
# Two electrode branches (the anode one two stations long) merging at STACK, then a sub-assembly branch SEP merging at
# WRAP, then the end: chains MIX_A, MIX_C, STACK (into WRAP), SEP and the trunk. A Berlin calendar of two shifts on
# weekdays with a break, a holiday, a weekly stop of the line and a station's own stop.
TREE = make_line(
    {"id": "MIX_A", "inputs": [], "cycle_time": _CYCLE, "buffer_after": 10},
    {"id": "COAT_A", "cycle_time": _CYCLE, "buffer_after": 10},
    {"id": "MIX_C", "inputs": [], "cycle_time": _CYCLE, "buffer_after": 10},
    {
        "id": "STACK",
        "inputs": [{"station": "COAT_A", "per_unit": 2}, "MIX_C"],
        "cycle_time": _CYCLE,
        "buffer_after": 10,
        "changeover": {"name": "format_change", "duration": 0.5, "every_units": 100},
        "planned_stops": [{"name": "stacker_pm", "start": "2025-11-20T12:00:00", "duration": 2, "every": 336}],
    },
    {"id": "SEP", "inputs": [], "cycle_time": _CYCLE, "buffer_after": 10},
    {"id": "WRAP", "inputs": ["STACK", "SEP"], "cycle_time": _CYCLE, "buffer_after": 10},
    {"id": "END", "cycle_time": _CYCLE},
    calendar={
        "timezone": "Europe/Berlin",
        "shifts": [{"name": "early", "start": "06:00", "hours": 8}, {"name": "late", "start": "14:00", "hours": 8}],
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "breaks": [{"start": "10:00", "duration": 0.5}],
        "holidays": ["2025-12-25"],
    },
    planned_stops=[{"name": "weekly_pm", "start": "2025-11-19T15:00:00", "duration": 2, "every": 168}],
)


def _h(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() / 3600.0


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


# -- the structure -------------------------------------------------------------------------------------------------
def test_a_tree_line_says_each_stations_inputs_what_it_feeds_and_its_branch() -> None:
    out = line_out(TREE, "STACK", 100.0, 8.0)
    st = {s.id: s for s in out.stations}
    assert [(i.station, i.per_unit) for i in st["STACK"].inputs] == [("COAT_A", 2), ("MIX_C", 1)]
    assert [(i.station, i.per_unit) for i in st["COAT_A"].inputs] == [("MIX_A", 1)]
    assert st["MIX_A"].inputs == st["MIX_C"].inputs == st["SEP"].inputs == []
    assert {sid: s.feeds for sid, s in st.items()} == {
        "MIX_A": "COAT_A",
        "COAT_A": "STACK",
        "MIX_C": "STACK",
        "STACK": "WRAP",
        "SEP": "WRAP",
        "WRAP": "END",
        "END": None,
    }
    assert {sid: s.branch for sid, s in st.items()} == {
        "MIX_A": "MIX_A",
        "COAT_A": "MIX_A",
        "MIX_C": "MIX_C",
        "STACK": "STACK",
        "SEP": "SEP",
        "WRAP": TRUNK,
        "END": TRUNK,
    }
    assert [(b.id, b.stations, b.into) for b in out.branches] == [
        ("MIX_A", ["MIX_A", "COAT_A"], "STACK"),
        ("MIX_C", ["MIX_C"], "STACK"),
        ("STACK", ["STACK"], "WRAP"),
        ("SEP", ["SEP"], "WRAP"),
        (TRUNK, ["WRAP", "END"], None),
    ]
    # the edges are the flow: each station to the one it feeds
    assert sorted(out.edges) == sorted((sid, s.feeds) for sid, s in st.items() if s.feeds is not None)
    # every station lies on exactly one chain, and each chain's first station is listed before the chain it joins
    assert sorted(sid for b in out.branches for sid in b.stations) == sorted(st)
    # changeover and planned stops as the file says (a naive start is local time in the calendar's zone)
    change = st["STACK"].changeover
    assert change is not None
    assert (change.name, change.mean_duration_h, change.every_units, change.schedule) == ("format_change", 0.5, 100, None)
    (own,) = st["STACK"].planned_stops
    assert (own.name, _iso(own.start), own.duration_h, own.every_h) == ("stacker_pm", "2025-11-20T11:00", 2.0, 336.0)
    (line_stop,) = out.planned_stops
    assert (line_stop.name, _iso(line_stop.start), line_stop.every_h, line_stop.after_batch) == (
        "weekly_pm",
        "2025-11-19T14:00",
        168.0,
        False,
    )
    cal = out.calendar
    assert cal is not None
    assert (cal.timezone, cal.days, cal.holidays) == ("Europe/Berlin", ["mon", "tue", "wed", "thu", "fri"], ["2025-12-25"])
    assert [(s.name, s.start, s.hours) for s in cal.shifts] == [("early", "06:00", 8.0), ("late", "14:00", 8.0)]
    assert [(b.start, b.hours) for b in cal.breaks] == [("10:00", 0.5)]


def test_a_serial_line_is_one_chain_and_keeps_its_edges() -> None:
    out = line_out(MIXED_LINE, "B", 1.0, 8.0)
    ids = [s.id for s in MIXED_LINE.stations]
    assert out.edges == list(itertools.pairwise(ids))
    assert [(b.id, b.stations, b.into) for b in out.branches] == [(TRUNK, ids, None)]
    assert [s.branch for s in out.stations] == [TRUNK] * len(ids)
    assert [[i.station for i in s.inputs] for s in out.stations] == [[], *[[a] for a in ids[:-1]]]
    assert (out.calendar, out.planned_stops) == (None, [])
    assert branches(MIXED_LINE)[0].stations == ids


# -- where the calendar stands ---------------------------------------------------------------------------------------
# Berlin is UTC+1 in November and December: the early shift runs 05:00-13:00 UTC, the break 09:00-09:30 UTC.
@pytest.mark.parametrize(
    ("at", "working", "reason", "since", "until", "shift"),
    [
        ("2025-11-18T08:00:00Z", True, None, "2025-11-18T05:00", "2025-11-18T09:00", ("early", "2025-11-18T05:00")),
        ("2025-11-18T09:10:00Z", False, "break", "2025-11-18T09:00", "2025-11-18T09:30", ("early", "2025-11-18T05:00")),
        ("2025-11-18T13:00:00Z", True, None, "2025-11-18T09:30", "2025-11-18T21:00", ("late", "2025-11-18T13:00")),
        ("2025-11-18T22:30:00Z", False, "off_shift", "2025-11-18T21:00", "2025-11-19T05:00", None),
        # the line's weekly stop, Wednesday 15:00 local for 2 h, inside the late shift
        ("2025-11-19T14:30:00Z", False, "weekly_pm", "2025-11-19T14:00", "2025-11-19T16:00", ("late", "2025-11-19T13:00")),
        # the weekend: off shift from Friday's late shift to Monday's early one
        ("2025-11-22T12:00:00Z", False, "off_shift", "2025-11-21T21:00", "2025-11-24T05:00", None),
        # a holiday cancels the shifts starting that day
        ("2025-12-25T10:00:00Z", False, "holiday", "2025-12-25T05:00", "2025-12-25T21:00", None),
    ],
)
def test_the_calendar_says_whether_the_line_works_why_not_and_until_when(
    at: str, working: bool, reason: str | None, since: str, until: str, shift: tuple[str, str] | None
) -> None:
    now = calendar_now(TREE, _h(at))
    assert (now.working, now.reason, _iso(now.since), _iso(now.until)) == (working, reason, since, until)
    assert (now.shift, _iso(now.shift_start)) == (shift if shift is not None else (None, None))
    if shift is not None:
        assert now.shift_end is not None
        assert now.shift_start is not None
        assert (now.shift_end - now.shift_start).total_seconds() == 8 * 3600
    # the stretches begin with the current one and follow each other without a gap for the next 24 h
    first = now.stretches[0]
    assert (_iso(first.start), _iso(first.end), first.reason) == (since, until, reason)
    for a, b in itertools.pairwise(now.stretches):
        assert a.end == b.start
        assert a.reason != b.reason
    assert now.stretches[-1].end is not None
    assert now.stretches[-1].end.timestamp() >= _h(at) * 3600 + 24 * 3600


def test_a_station_stop_is_not_the_lines_and_a_line_without_a_calendar_always_works() -> None:
    # STACK's own stop (Thursday 2025-11-20 11:00-13:00 UTC) shows in STACK's state, not in the line's calendar
    assert calendar_now(TREE, _h("2025-11-20T11:30:00Z")).working
    always = calendar_now(MIXED_LINE, _h("2025-11-22T12:00:00Z"))
    assert (always.working, always.reason, always.since, always.until, always.shift, always.stretches) == (
        True,
        None,
        None,
        None,
        None,
        [],
    )
    only_stops = make_line(
        {"id": "A", "cycle_time": 0.1},
        planned_stops=[{"name": "pm", "start": "2025-11-18T00:00:00Z", "duration": 4, "every": 168}],
    )
    now = calendar_now(only_stops, _h("2025-11-18T02:00:00Z"))
    assert (now.working, now.reason, _iso(now.until), now.shift) == (False, "pm", "2025-11-18T04:00", None)
    after = calendar_now(only_stops, _h("2025-11-18T05:00:00Z"), ahead_h=6.0)
    assert (after.working, _iso(after.since), _iso(after.until)) == (True, "2025-11-18T04:00", "2025-11-25T00:00")
    once = make_line(
        {"id": "A", "cycle_time": 0.1}, planned_stops=[{"name": "audit", "start": "2025-11-18T00:00:00Z", "duration": 4}]
    )
    later = calendar_now(once, _h("2025-12-18T00:00:00Z"))
    assert (later.working, later.since, later.until) == (True, None, None)  # began over a week ago, never ends


# -- over HTTP -----------------------------------------------------------------------------------------------------
@pytest.fixture
def tree_client(tmp_path: Path) -> Iterator[TestClient]:
    """The demo service on the tree line (its feed on the wall clock), the first events arrived."""
    app = create_app(demo_settings(tmp_path, demo_speed=3600.0), line=TREE)
    with TestClient(app, headers={"X-API-Key": VIEWER}) as c:
        rt = runtime_of(c)
        wait_for(lambda: rt.ingest_stats().events > 50, what="the demo's first events")
        yield c


def test_the_routes_give_the_tree_the_calendar_and_where_it_stands(tree_client: TestClient) -> None:
    base = f"/api/v1/lines/{TREE.name}"
    line: dict[str, Any] = tree_client.get(base).json()
    assert [b["id"] for b in line["branches"]] == ["MIX_A", "MIX_C", "STACK", "SEP", TRUNK]
    assert {s["id"]: s["branch"] for s in line["stations"]}["COAT_A"] == "MIX_A"
    assert line["calendar"]["timezone"] == "Europe/Berlin"
    assert line["planned_stops"][0]["name"] == "weekly_pm"

    at = "2025-11-18T09:10:00Z"
    body = tree_client.get(f"{base}/calendar", params={"at": at, "hours": 12}).json()
    expected = calendar_now(TREE, _h(at), 12.0).model_dump(mode="json")
    assert body == expected
    assert (body["working"], body["reason"], body["shift"]) == (False, "break", "early")

    # by default at the line's clock, as the status says too
    status = tree_client.get(f"{base}/status").json()
    assert status["calendar"] is not None
    assert status["calendar"]["at"] == status["now"]
    now = tree_client.get(f"{base}/calendar").json()
    assert now["at"] >= status["now"]  # the clock has moved on or not; never back
    live_reason = {s["id"]: (s["state"], s["reason"]) for s in status["stations"]}
    if not status["calendar"]["working"]:
        # the line's stop holds every process station (a machine shows it once its unit in hand is done)
        stopped = [sid for sid, (state, reason) in live_reason.items() if state == "PLANNED_STOP"]
        assert stopped, (status["calendar"], live_reason)

    for bad in ("1969-12-31T23:00:00Z", "2262-01-01T00:00:00Z"):
        r = tree_client.get(f"{base}/calendar", params={"at": bad})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"][0]["loc"] == ["query", "at"]
    assert tree_client.get(f"{base}/calendar", params={"hours": 0}).status_code == 422
