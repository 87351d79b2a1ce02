"""Line files: units, distributions, and errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.linefile import read_line
from twin.distributions import Constant, Lognormal, Weibull
from twin.durations import to_hours
from twin.errors import LineError
from twin.schema import load_line_data


@pytest.mark.parametrize(
    ("value", "unit", "hours"),
    [(90, "s", 0.025), ("90s", "h", 0.025), ("20min", "s", 1 / 3), ("4h", "s", 4.0), ("2d", "s", 48.0), (1.5, "h", 1.5)],
)
def test_durations_convert_to_hours(value: object, unit: str, hours: float) -> None:
    assert to_hours(value, unit) == pytest.approx(hours)


@pytest.mark.parametrize("bad", ["fast", "-3h", "3 parsecs", True, None, [1]])
def test_bad_durations_say_what_is_wrong(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|unit"):
        to_hours(bad, "s")


def test_bare_numbers_use_the_line_time_unit() -> None:
    line = load_line_data({"name": "l", "time_unit": "min", "stations": [{"id": "A", "cycle_time": 3}]})
    cycle = line.stations[0].cycle_time
    assert isinstance(cycle, Constant)
    assert cycle.value == pytest.approx(0.05)


def test_distributions_parse_with_units() -> None:
    line = load_line_data(
        {
            "name": "l",
            "stations": [
                {
                    "id": "A",
                    "cycle_time": {"dist": "lognormal", "mean": "30s", "cv": 0.5},
                    "failures": [{"name": "jam", "ttf": {"dist": "weibull", "shape": 0.9, "mean": "8h"}, "ttr": "20min"}],
                }
            ],
        }
    )
    st = line.stations[0]
    assert isinstance(st.cycle_time, Lognormal)
    assert st.cycle_time.mean == pytest.approx(30 / 3600)
    ttf = st.failures[0].ttf
    assert isinstance(ttf, Weibull)
    assert ttf.mean_value == pytest.approx(8.0)
    assert st.failures[0].basis == "operating"


def _errors(data: object) -> list[tuple[str, str]]:
    with pytest.raises(LineError) as info:
        load_line_data(data, source="line.yaml")
    assert "line.yaml" in str(info.value)
    return info.value.problems


def test_errors_name_the_field_path() -> None:
    problems = _errors(
        {
            "name": "l",
            "stations": [
                {"id": "A", "cycle_time": 1, "buffer_after": 2},
                {"id": "B", "cycle_time": {"dist": "exponential", "mean": -1}, "machines": 0},
            ],
        }
    )
    paths = {p for p, _ in problems}
    assert "stations[1].machines" in paths
    assert "stations[1].cycle_time.mean" in paths


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({"name": "l", "stations": [{"id": "A", "cycle_time": 1}, {"id": "A", "cycle_time": 1}]}, "(top level)", "repeat"),
        (
            {"name": "l", "stations": [{"id": "A", "cycle_time": 1, "buffer_after": 5}]},
            "stations[0].buffer_after",
            "last station",
        ),
        ({"name": "l", "stations": [{"id": "A"}]}, "stations[0]", "cycle_time"),
        ({"name": "l", "stations": [{"id": "A", "kind": "delay", "capacity": 5}]}, "stations[0]", "dwell"),
        ({"name": "l", "stations": [{"id": "A", "cycle_time": 1, "scrap": 1.5}]}, "stations[0].scrap", "less than 1"),
        ({"name": "l", "stations": [{"id": "A", "cycle_time": 1, "colour": "red"}]}, "stations[0].colour", "not permitted"),
        ({"name": "l", "time_unit": "weeks", "stations": []}, "time_unit", "one of"),
        (
            {
                "name": "l",
                "stations": [{"id": "A", "cycle_time": 1, "failures": [{"name": "f", "ttf": 5, "ttr": 1, "crew": "x"}]}],
            },
            "stations[0].failures[0].crew",
            "repair_crews",
        ),
        (
            {"name": "l", "stations": [{"id": "A", "cycle_time": {"dist": "weibull", "shape": 2}}]},
            "stations[0].cycle_time",
            "scale or mean",
        ),
    ],
)
def test_each_invalid_field_is_reported(data: object, path: str, words: str) -> None:
    problems = _errors(data)
    assert any(p == path and words in msg for p, msg in problems), problems


def test_file_errors_name_the_file_and_yaml_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstations: [\n  - id: A\n")
    with pytest.raises(LineError, match=r"bad\.yaml: line \d+, column \d+: not valid YAML"):
        read_line(bad)
    with pytest.raises(LineError, match="cannot read"):
        read_line(tmp_path / "missing.yaml")


def test_config_hash_ignores_layout_but_not_content() -> None:
    a = load_line_data({"name": "l", "time_unit": "s", "stations": [{"id": "A", "cycle_time": 3600}]})
    b = load_line_data({"stations": [{"cycle_time": "1h", "id": "A"}], "time_unit": "s", "name": "l"})
    c = load_line_data({"name": "l", "stations": [{"id": "A", "cycle_time": "2h"}]})
    assert a.config_hash() == b.config_hash()
    assert a.config_hash() != c.config_hash()


def test_shipped_line_files_validate(lines_dir: Path) -> None:
    files = sorted(lines_dir.glob("*.yaml"))
    assert files, "no line files shipped"
    for f in files:
        line = read_line(f)
        assert line.stations


_SIGNAL = {"unit": "mm/s", "nominal": 2.0, "normal": [1.0, 3.0]}


@pytest.mark.parametrize(
    ("signals", "path", "words"),
    [
        ({"v": {**_SIGNAL, "nominal": 5}}, "stations[0].signals.v.nominal", "outside the normal range [1.0, 3.0]"),
        ({"v": {**_SIGNAL, "normal": [3, 1]}}, "stations[0].signals.v.normal", "low <= high"),
        ({"v": {**_SIGNAL, "normal": [1, 2, 3]}}, "stations[0].signals.v.normal", "at most 2"),
        ({"v": {**_SIGNAL, "noise": -0.1}}, "stations[0].signals.v.noise", "greater than or equal to 0"),
        ({"v": {"nominal": 2.0, "normal": [1.0, 3.0]}}, "stations[0].signals.v.unit", "required"),
        ({"v": {**_SIGNAL, "nominal": "high"}}, "stations[0].signals.v.nominal", "number"),
        ({"v": {**_SIGNAL, "condition": "maybe"}}, "stations[0].signals.v.condition", "boolean"),
        ({"v": {**_SIGNAL, "colour": "red"}}, "stations[0].signals.v.colour", "not permitted"),
        ({"9lives": _SIGNAL, "ok": _SIGNAL}, "stations[0].signals", "'9lives'"),
        ({"line-speed": _SIGNAL}, "stations[0].signals", "identifiers"),
    ],
)
def test_signal_errors_name_the_field(signals: dict[str, object], path: str, words: str) -> None:
    problems = _errors({"name": "l", "stations": [{"id": "A", "cycle_time": 1, "signals": signals}]})
    assert any(p == path and words in msg for p, msg in problems), problems


def test_signals_validate_with_a_default_noise_from_the_normal_range() -> None:
    line = load_line_data(
        {
            "name": "l",
            "stations": [
                {
                    "id": "A",
                    "cycle_time": 1,
                    "signals": {
                        "vibration_mm_s": {**_SIGNAL, "condition": True},
                        "temp_c": {"unit": "degC", "nominal": 20, "normal": [20, 20], "noise": 0.5},
                    },
                }
            ],
        }
    )
    vibration, temp = line.stations[0].signals["vibration_mm_s"], line.stations[0].signals["temp_c"]
    assert vibration.condition
    assert vibration.noise is None
    assert vibration.sigma == pytest.approx((3.0 - 1.0) / 6)  # ~99.7 % of values inside the normal range
    assert temp.sigma == 0.5
    assert not temp.condition


def test_signals_count_in_the_config_hash_and_none_keeps_the_hash() -> None:
    plain = {"name": "l", "stations": [{"id": "A", "cycle_time": 1}]}
    empty = {"name": "l", "stations": [{"id": "A", "cycle_time": 1, "signals": {}}]}
    with_signal = {"name": "l", "stations": [{"id": "A", "cycle_time": 1, "signals": {"v": _SIGNAL}}]}
    assert (
        load_line_data(plain).config_hash() == load_line_data(empty).config_hash() == "f769d25e0f99e955"
    )  # as before signals existed
    assert load_line_data(with_signal).config_hash() != load_line_data(plain).config_hash()
