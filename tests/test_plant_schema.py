"""Line files that describe a plant: branches merging, calendars, planned stops, changeovers, speed losses,
micro-stops and store faults. Valid files resolve to the flow a plant engineer drew; invalid ones fail with an
error that names the file and the field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from connectors.linefile import read_line
from twin.calendar import StopTimeline
from twin.errors import LineError
from twin.schema import Line, StationInput, load_line_data

BRANCHES = """
name: two_branches
time_unit: h
calendar:
  timezone: Europe/Berlin
  shifts:
    - {name: early, start: 06:00, hours: 8}
    - {name: late, start: "14:00", hours: 8}
  days: [Mon, Tue, Wed, Thu, Fri]
  breaks:
    - {start: "10:00", duration: 30min}
  holidays: [2026-12-25]
planned_stops:
  - {name: weekly_pm, start: 2026-11-30T06:00:00, duration: 6h, every: 168h}
stations:
  - {id: COAT_A, cycle_time: 1, buffer_after: 10}
  - {id: NOTCH_A, cycle_time: 1, buffer_after: 10}
  - {id: COAT_C, cycle_time: 1, buffer_after: 10, speed: 0.93}
  - {id: NOTCH_C, cycle_time: 1, buffer_after: 10,
     changeover: {name: format, every_units: 500, duration: {dist: uniform, low: 1h, high: 4h}}}
  - id: STACK
    cycle_time: 1
    inputs: [NOTCH_A, {station: NOTCH_C, per_unit: 1}]
    micro_stops: {every: {dist: exponential, mean: 20min}, duration: 30s}
    buffer_after: 10
    planned_stops:
      - {name: gripper_pm, start: "2026-12-02T22:00:00+01:00", duration: 2h, after_batch: true}
  - id: AGE
    kind: delay
    capacity: 1000
    dwell: 14d
    failures: [{name: crane, ttf: {dist: exponential, mean: 200h}, ttr: 2h, positions: 250}]
"""


def write(tmp_path: Path, text: str, name: str = "line.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_plant_file_resolves_to_its_tree_of_branches(tmp_path: Path) -> None:
    line = read_line(write(tmp_path, BRANCHES))
    assert line.inputs == {
        "COAT_A": (),
        "NOTCH_A": (StationInput(station="COAT_A"),),
        "COAT_C": (),  # listed after NOTCH_A, which feeds STACK: a new branch
        "NOTCH_C": (StationInput(station="COAT_C"),),
        "STACK": (StationInput(station="NOTCH_A"), StationInput(station="NOTCH_C")),
        "AGE": (StationInput(station="STACK"),),
    }
    assert line.branch_starts == ("COAT_A", "COAT_C")
    assert line.consumer["NOTCH_A"] == line.consumer["NOTCH_C"] == "STACK"
    assert line.path_to_end("COAT_C") == ["COAT_C", "NOTCH_C", "STACK", "AGE"]
    assert not line.is_serial
    assert line.calendar is not None
    assert line.calendar.days == ("mon", "tue", "wed", "thu", "fri")
    assert line.calendar.shifts[0].start == dt.time(6, 0)  # YAML reads an unquoted 06:00 as 360 (minutes)
    assert line.station("STACK").planned_stops[0].after_batch
    assert line.station("AGE").failures[0].positions == 250


def test_a_line_without_the_new_fields_keeps_its_hash_and_its_serial_flow() -> None:
    b = {"id": "B", "cycle_time": 1, "failures": [{"name": "f", "ttf": 5, "ttr": 1}]}
    data = {"name": "s", "time_unit": "h", "stations": [{"id": "A", "cycle_time": 1, "buffer_after": 2}, b]}
    line = load_line_data(data)
    assert line.is_serial
    assert line.inputs == {"A": (), "B": (StationInput(station="A"),)}
    # the hash GigaTwin gave this line before lines could merge (stored forecasts and calibrations name it)
    assert line.config_hash() == "30e61ab3c58c4d7c"
    explicit = load_line_data({**data, "stations": [data["stations"][0], {**b, "inputs": ["A"]}]})
    assert explicit.inputs == line.inputs
    assert explicit.config_hash() != line.config_hash()  # the file says more: its hash says so


def test_the_weekly_stop_and_the_calendar_combine_into_one_timeline(tmp_path: Path) -> None:
    line = read_line(write(tmp_path, BRANCHES))
    stack = line.station("STACK")
    timeline = StopTimeline(line.calendar, line.planned_stops, stack.planned_stops)
    monday = line.planned_stops[0].start_h("Europe/Berlin")  # Monday 30 November 06:00 CET = 05:00 UTC
    assert timeline.at(monday + 1).reason == "weekly_pm"
    assert timeline.at(monday + 7).reason is None  # 12:00: working
    assert timeline.at(monday + 4.5).reason == "weekly_pm"  # the line's stop covers the 10:00 break
    assert timeline.at(monday + 16.5).reason == "off_shift"  # 22:30
    assert timeline.at(monday + 2 * 24 + 16.5).reason == "gripper_pm"  # Wednesday 22:30, the station's own stop
    christmas = monday + 25 * 24
    assert timeline.at(christmas + 3).reason == "holiday"


# -- bad input: each error names the file and the field ---------------------------------------------------------------

FLOW = "name: bad\ntime_unit: h\nstations:\n"


@pytest.mark.parametrize(
    ("stations", "field", "words"),
    [
        pytest.param(
            "  - {id: A, cycle_time: 1, buffer_after: 1}\n  - {id: B, cycle_time: 1, inputs: [A, NOTCH_X]}\n",
            "stations[1].inputs[1].station",
            "'NOTCH_X' is not a station of this line",
            id="merge-names-a-missing-station",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, buffer_after: 1, inputs: [B]}\n  - {id: B, cycle_time: 1, buffer_after: 1, inputs: [A]}\n"
            "  - {id: C, cycle_time: 1, inputs: []}\n",
            "stations[0].inputs",
            "a cycle in the flow",
            id="cycle",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, buffer_after: 1, inputs: [A]}\n  - {id: B, cycle_time: 1}\n",
            "stations[0].inputs[0].station",
            "cannot take from itself",
            id="self-loop",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, buffer_after: 1}\n  - {id: B, cycle_time: 1, buffer_after: 1, inputs: [A]}\n"
            "  - {id: C, cycle_time: 1, inputs: [A, B]}\n",
            "stations[2].inputs[0].station",
            "'A' is already consumed by stations[1].inputs[0] (B)",
            id="input-consumed-twice",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, buffer_after: 1}\n  - {id: B, cycle_time: 1, buffer_after: 1, inputs: []}\n  - {id: C, cycle_time: 1, inputs: [B]}\n",
            "stations[0]",
            "A feeds no station",
            id="dangling-branch",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, buffer_after: 1, inputs: []}\n  - {id: C, cycle_time: 1, inputs: [A, B]}\n  - {id: B, cycle_time: 1, inputs: []}\n",
            "stations[1].inputs[1].station",
            "listed after C",
            id="flow-order",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, buffer_after: 1}\n  - {id: B, cycle_time: 1, inputs: [A, A]}\n",
            "stations[1].inputs[0].station",
            "named twice",
            id="input-twice",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, buffer_after: 1}\n  - {id: B, cycle_time: 1, buffer_after: 1, inputs: []}\n"
            "  - {id: S, kind: delay, capacity: 10, dwell: 1h, inputs: [A, B]}\n",
            "stations[2].inputs",
            "a store (kind: delay) takes from one station",
            id="store-as-merge",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, speed: 1.2}\n",
            "stations[0].speed",
            "(0, 1]",
            id="speed-above-ideal",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, micro_stops: {every: 1h, duration: 20min}}\n",
            "stations[0].micro_stops.duration",
            "not a micro-stop",
            id="micro-stop-too-long",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, changeover: {duration: 1h}}\n",
            "stations[0].changeover",
            "every_units",
            id="changeover-without-trigger",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, planned_stops: [{start: 2026-01-05T06:00:00, duration: 200h, every: 168h}]}\n",
            "stations[0].planned_stops[0]",
            "not shorter than its period",
            id="stop-longer-than-period",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, buffer_after: 1}\n  - {id: S, kind: delay, capacity: 10, dwell: 1h, planned_stops: [{start: 2026-01-05T06:00:00, duration: 2h}]}\n",
            "stations[1]",
            "keeps its clock",
            id="store-with-planned-stop",
        ),
        pytest.param(
            "  - {id: A, cycle_time: 1, buffer_after: 1}\n  - {id: S, kind: delay, capacity: 10, dwell: 1h, failures: [{name: f, ttf: 5h, ttr: 1h, positions: 11}]}\n",
            "stations[1].failures[0].positions",
            "exceeds the capacity 10",
            id="store-fault-bigger-than-store",
        ),
    ],
)
def test_bad_flow_and_station_fields_name_file_and_field(tmp_path: Path, stations: str, field: str, words: str) -> None:
    path = write(tmp_path, FLOW + stations, "plant.yaml")
    with pytest.raises(LineError) as err:
        read_line(path)
    assert any(where == field and words in msg for where, msg in err.value.problems), err.value.problems
    assert f"plant.yaml: {field}: " in str(err.value)


@pytest.mark.parametrize(
    ("calendar", "field", "words"),
    [
        pytest.param(
            {"shifts": [{"start": "06:00", "hours": 9}, {"start": "14:00", "hours": 8}]},
            "calendar",
            "shifts[0] and shifts[1] overlap (06:00 for 9 h, 14:00 for 8 h)",
            id="overlapping-shifts",
        ),
        pytest.param(
            {"shifts": [{"start": "22:00", "hours": 10}, {"start": "07:00", "hours": 8}]},
            "calendar",
            "overlap",
            id="overlap-across-midnight",
        ),
        pytest.param({"shifts": [{"start": "25:00", "hours": 8}]}, "calendar.shifts[0].start", "clock time", id="bad-clock"),
        pytest.param(
            {"shifts": [{"start": "06:00", "hours": 30}]},
            "calendar.shifts[0].hours",
            "less than or equal to 24",
            id="shift-too-long",
        ),
        pytest.param(
            {"shifts": [{"start": "06:00", "hours": 8}], "days": ["mon", "funday"]},
            "calendar.days",
            "not a weekday",
            id="bad-day",
        ),
        pytest.param(
            {"timezone": "Mars/Olympus", "shifts": [{"start": "06:00", "hours": 8}]}, "calendar.timezone", "IANA", id="bad-zone"
        ),
        pytest.param(
            {"shifts": [{"start": "06:00", "hours": 8}], "breaks": [{"start": "20:00", "duration": "30min"}]},
            "calendar",
            "breaks[0] (20:00, 30 min) does not lie inside any shift",
            id="break-outside-shifts",
        ),
        pytest.param({"shifts": []}, "calendar.shifts", "at least 1", id="no-shifts"),
    ],
)
def test_bad_calendars_name_file_and_field(tmp_path: Path, calendar: dict[str, Any], field: str, words: str) -> None:
    import yaml

    data = {"name": "bad", "time_unit": "h", "calendar": calendar, "stations": [{"id": "A", "cycle_time": 1}]}
    path = write(tmp_path, yaml.safe_dump(data), "calendar.yaml")
    with pytest.raises(LineError) as err:
        read_line(path)
    assert any(where == field and words in msg for where, msg in err.value.problems), err.value.problems
    assert "calendar.yaml: " in str(err.value)


def test_arrival_needs_a_single_branch() -> None:
    with pytest.raises(LineError, match="arrival: released material enters one station"):
        load_line_data(
            {
                "name": "x",
                "time_unit": "h",
                "arrival": {"interarrival": 1},
                "stations": [
                    {"id": "A", "cycle_time": 1, "buffer_after": 1},
                    {"id": "B", "cycle_time": 1, "buffer_after": 1, "inputs": []},
                    {"id": "C", "cycle_time": 1, "inputs": ["A", "B"]},
                ],
            }
        )


def _line(**station: Any) -> Line:
    return load_line_data({"name": "x", "time_unit": "h", "stations": [{"id": "A", "cycle_time": 1, **station}]})


def test_speed_and_changeover_forms() -> None:
    assert _line(speed={"low": 0.8, "high": 0.9, "mode": 0.88}).stations[0].speed_mean == pytest.approx((0.8 + 0.88 + 0.9) / 3)
    sched = (
        _line(changeover={"duration": "2h", "schedule": {"start": "2026-01-05T06:00:00Z", "every": "24h"}}).stations[0].changeover
    )
    assert sched is not None
    assert sched.schedule is not None
    assert sched.schedule.every == 24.0
    with pytest.raises(LineError, match=r"stations\[0\].speed.*mode 0.95 is outside"):
        _line(speed={"low": 0.8, "high": 0.9, "mode": 0.95})


def test_the_readme_line_file_example_is_a_valid_line(tmp_path: Path) -> None:
    """The README's line-file example is what a new user copies: it must load, with both branches merging."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Line files") :]
    block = section[section.index("```yaml") + len("```yaml") : section.index("```", section.index("```yaml") + 7)]
    line = read_line(write(tmp_path, block, "readme.yaml"))
    assert line.inputs["STACK"] == (StationInput(station="COAT_A"), StationInput(station="COAT_C"))
    assert line.calendar is not None
    assert [s.id for s in line.stations if s.failures and s.kind == "delay"] == ["AGE"]
