"""The ``gigatwin simulate`` command: its JSON contract and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main

LINE = """\
name: two_step
time_unit: min
stations:
  - id: CUT
    cycle_time: {dist: exponential, mean: 1}
    failures: [{name: jam, ttf: {dist: exponential, mean: 2h}, ttr: {dist: lognormal, mean: 10min, cv: 1}}]
    scrap: 0.02
    buffer_after: 4
  - id: PACK
    cycle_time: 1.2
"""


@pytest.fixture
def line_file(tmp_path: Path) -> Path:
    path = tmp_path / "line.yaml"
    path.write_text(LINE)
    return path


def test_json_output_has_the_documented_fields(line_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            str(line_file),
            "--hours",
            "50",
            "--warmup",
            "5",
            "--replications",
            "3",
            "--seed",
            "4",
            "--json",
            "--workers",
            "1",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["throughput_per_hour"]) == {"mean", "ci95"}
    assert out["throughput_per_hour"]["ci95"] > 0
    assert out["seed"] == 4
    assert len(out["config_hash"]) == 16
    assert set(out["stations"]) == {"CUT", "PACK"}
    for st in out["stations"].values():
        assert {"working", "starved", "blocked", "down"} <= set(st["state_fractions"])
        assert sum(st["state_fractions"].values()) == pytest.approx(1.0)
        assert {"throughput_per_hour", "scrapped", "availability", "oee"} <= set(st)
    assert out["buffers"]["CUT"]["capacity"] == 4
    assert 0 <= out["buffers"]["CUT"]["mean_level"] <= 4
    for key in ("wip_mean", "lead_time_mean_h", "scrap_rate", "bottleneck"):
        assert key in out
    assert out["bottleneck"] in {"CUT", "PACK"}


def test_the_same_seed_prints_the_same_result(line_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", str(line_file), "--hours", "20", "--replications", "2", "--json", "--workers", "2"]
    main(args)
    first = capsys.readouterr().out
    main([*args[:-2], "--workers", "1"])
    assert capsys.readouterr().out == first


def test_one_replication_has_a_zero_interval_and_a_table(line_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(line_file), "--hours", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["throughput_per_hour"]["ci95"] == 0
    assert main(["simulate", str(line_file), "--hours", "10"]) == 0
    table = capsys.readouterr().out
    assert "throughput" in table
    assert "PACK" in table


def test_a_bad_line_file_is_reported_with_its_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(LINE.replace("scrap: 0.02", "scrap: 2"))
    assert main(["simulate", str(bad), "--hours", "5"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err
    assert "stations[0].scrap" in err


def test_nonsense_hours_are_refused(line_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", str(line_file), "--hours", "-3"])
    assert "positive" in capsys.readouterr().err


CALENDAR_LINE = """
name: one_shift
time_unit: h
calendar:
  shifts: [{start: "06:00", hours: 8}]
  days: [mon, tue, wed, thu, fri]
stations:
  - {id: A, cycle_time: 0.1, buffer_after: 10}
  - {id: B, cycle_time: 0.25}
"""


def test_simulate_places_the_calendar_at_the_start_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A week from Monday 00:00 UTC of a one-shift, five-day line: 40 working hours, B makes 4 an hour in them
    (its first unit waits 0.1 h for A's), and the table says so. A start that is not a time is refused."""
    path = tmp_path / "calendar.yaml"
    path.write_text(CALENDAR_LINE)
    assert main(["simulate", str(path), "--hours", "168", "--start", "2026-11-30T00:00:00Z", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["good"]["mean"] == 159
    assert result["stations"]["B"]["state_fractions"]["planned_stop"] == pytest.approx(128 / 168)
    assert main(["simulate", str(path), "--hours", "168", "--start", "2026-11-30T00:00:00Z"]) == 0
    table = capsys.readouterr().out
    assert "working time 40.0 h of 168 h by the calendar;  4.0 good units per working hour" in table
    with pytest.raises(SystemExit) as refused:
        main(["simulate", str(path), "--hours", "168", "--start", "Monday"])
    assert refused.value.code == 2
    assert "argument --start: 'Monday' is not an ISO 8601 time" in capsys.readouterr().err
