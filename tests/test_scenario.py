"""Scenarios: the changes a what-if makes to a line, applied as written, and bad ones refused naming the field."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.conftest import make_line
from twin.calendar import epoch_hours
from twin.scenario import ScenarioError, apply_scenario, load_scenario_data

LINE = make_line(
    {
        "id": "CAL",
        "machines": 2,
        "cycle_time": {"dist": "lognormal", "mean": 0.5, "sigma": 0.3},
        "buffer_after": 10,
        "failures": [
            {"name": "jam", "ttf": {"dist": "weibull", "shape": 1.2, "mean": 8.0}, "ttr": {"dist": "exponential", "mean": 1.0}},
            {"name": "roll", "ttf": 20.0, "ttr": {"dist": "uniform", "low": 0.5, "high": 1.5}, "crew": "fitters"},
        ],
    },
    {"id": "AGE", "kind": "delay", "capacity": 100, "dwell": 5.0, "buffer_after": 5},
    {"id": "FORM", "batch_size": 4, "cycle_time": 2.0, "machines": 3},
    repair_crews={"fitters": 1},
)


def _apply(changes: list[dict[str, Any]], horizon: float = 48.0, start: float = 100.0) -> Any:
    return apply_scenario(load_scenario_data({"name": "s", "changes": changes}, "s.yaml"), LINE, start, horizon, "s.yaml")


def test_each_kind_of_change_does_what_it_says() -> None:
    applied = _apply(
        [
            {"station": "CAL", "scale": {"failures.*.ttr": 0.5}},
            {"station": "CAL", "scale": {"failures.jam.ttf": 2, "cycle_time": 1.1, "machines": 1.6}},
            {"station": "FORM", "set": {"machines": 4, "batch_size": 8}},
            {"station": "CAL", "set": {"buffer_after": 48, "failures.roll.ttr": {"dist": "exponential", "mean": "30min"}}},
            {"repair_crews": {"fitters": 3, "electricians": 1}},
            {"station": "FORM", "planned_stop": {"start": "24h", "duration": "8h", "name": "pm"}},
            {"planned_stop": {"start": 30, "duration": 2}},
            {"station": "CAL", "down": {"at": 0, "for": "4h", "reason": "roll_change"}},
        ]
    )
    cal, form = applied.line.station("CAL"), applied.line.station("FORM")
    jam, roll = cal.failures
    assert jam.ttr.mean_value == pytest.approx(0.5)  # every mode's repair halved, its shape kept
    assert jam.ttf.mean_value == pytest.approx(16.0)
    assert jam.ttf.shape == 1.2  # type: ignore[union-attr]
    assert roll.ttr.mean_value == pytest.approx(0.5)  # then set anew
    assert cal.cycle_time is not None
    assert cal.cycle_time.mean_value == pytest.approx(0.55)
    assert cal.cycle_time.sigma == 0.3  # type: ignore[union-attr]
    assert cal.machines == 3  # 2 x 1.6 = 3.2, a count: rounded
    assert cal.buffer_after == 48
    assert (form.machines, form.batch_size) == (4, 8)
    assert applied.line.repair_crews == {"fitters": 3, "electricians": 1}
    (pm,) = form.planned_stops
    assert (pm.name, pm.duration) == ("pm", 8.0)
    assert epoch_hours(pm.start) == pytest.approx(124.0)  # 24 h after the window's start at 100 h
    assert epoch_hours(applied.line.planned_stops[0].start) == pytest.approx(130.0)
    assert applied.outages == (("CAL", 100.0, 4.0, "roll_change"),)
    # the base line is untouched
    assert LINE.station("CAL").buffer_after == 10
    assert pm.start.tzinfo is not None
    assert pm.start.utcoffset() == dt.timedelta(0)


def test_a_scenario_that_changes_nothing_keeps_the_line() -> None:
    applied = _apply([])
    assert applied.line == LINE
    assert applied.outages == ()
    same = load_scenario_data({"name": "x", "changes": [{"station": "CAL", "set": {"buffer_after": 10}}]})
    assert apply_scenario(same, LINE, 0.0, 8.0).line.model_dump(exclude={"time_unit"}) == LINE.model_dump(exclude={"time_unit"})


def test_the_scenario_hash_follows_the_content_not_the_layout() -> None:
    a = load_scenario_data({"name": "x", "changes": [{"station": "CAL", "scale": {"cycle_time": 0.9}}]})
    b = load_scenario_data({"changes": [{"scale": {"cycle_time": 0.9}, "station": "CAL"}], "name": "x"})
    c = load_scenario_data({"name": "x", "changes": [{"station": "CAL", "scale": {"cycle_time": 0.8}}]})
    assert a.scenario_hash() == b.scenario_hash() != c.scenario_hash()


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        pytest.param(
            [{"station": "STACK", "set": {"machines": 2}}], "changes[0].station", "'STACK' is not a station", id="unknown-station"
        ),
        pytest.param([{"station": "CAL", "set": {"colour": "red"}}], "changes[0].set", "no field 'colour'", id="unknown-field"),
        pytest.param(
            [{"station": "CAL", "scale": {"failures.gripper.ttr": 2}}], "changes[0].scale", "no item 'gripper'", id="unknown-mode"
        ),
        pytest.param([{"station": "CAL", "scale": {"name": 2}}], "changes[0].scale", "cannot be scaled", id="scale-a-name"),
        pytest.param(
            [{"station": "CAL", "set": {"buffer_after": -1}}],
            "changes[0] -> line stations[0].buffer_after",
            "greater than or equal to 0",
            id="invalid-line",
        ),
        pytest.param(
            [{"station": "FORM", "scale": {"machines": 0.1}}],
            "changes[0] -> line stations[2].machines",
            "greater than or equal to 1",
            id="no-machines-left",
        ),
        pytest.param(
            [{"station": "CAL", "planned_stop": {"start": "49h", "duration": "1h"}}],
            "changes[0].planned_stop.start",
            "not inside the horizon of 48 h",
            id="stop-after-horizon",
        ),
        pytest.param(
            [{"station": "CAL", "down": {"at": "2d", "for": "1h"}}],
            "changes[0].down.at",
            "not inside the horizon",
            id="outage-after-horizon",
        ),
        pytest.param(
            [{"station": "AGE", "down": {"at": 0, "for": "1h"}}],
            "changes[0].station",
            "only process stations go down",
            id="store-down",
        ),
        pytest.param(
            [{"station": "AGE", "planned_stop": {"start": 0, "duration": "1h"}}],
            "changes[0].station",
            "keeps its clock",
            id="store-stop",
        ),
        pytest.param(
            [{"repair_crews": {"welders": 1}}, {"station": "CAL", "set": {"failures.jam.crew": "painters"}}],
            "changes[1] -> line stations[0].failures[0].crew",
            "'painters' is not one of repair_crews",
            id="unknown-crew",
        ),
    ],
)
def test_a_change_that_does_not_fit_the_line_names_the_change_and_field(
    changes: list[dict[str, Any]], field: str, words: str
) -> None:
    with pytest.raises(ScenarioError) as err:
        _apply(changes)
    assert any(where == field and words in msg for where, msg in err.value.problems), err.value.problems
    assert str(err.value).startswith("invalid scenario\n  s.yaml: ")


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        pytest.param({"changes": []}, "name", "Field required", id="no-name"),
        pytest.param(
            {"name": "x", "changes": [{"station": "CAL", "scale": {"cycle_time": 0}}]},
            "changes[0]",
            "factor must be a finite number > 0",
            id="scale-zero",
        ),
        pytest.param(
            {"name": "x", "changes": [{"station": "CAL", "scale": {"cycle_time": -2}}]}, "changes[0]", "> 0", id="scale-negative"
        ),
        pytest.param({"name": "x", "changes": [{"station": "CAL"}]}, "changes[0]", "give one of", id="no-kind"),
        pytest.param(
            {"name": "x", "changes": [{"station": "CAL", "set": {"machines": 2}, "scale": {"machines": 2}}]},
            "changes[0]",
            "got ['scale', 'set']",
            id="two-kinds",
        ),
        pytest.param(
            {"name": "x", "changes": [{"scale": {"cycle_time": 2}}]},
            "changes[0]",
            "scale needs a station",
            id="scale-without-station",
        ),
        pytest.param(
            {"name": "x", "changes": [{"station": "CAL", "down": {"at": 0, "for": 0}}]},
            "changes[0].down.for",
            "greater than 0",
            id="zero-outage",
        ),
        pytest.param(
            {"name": "x", "changes": [{"station": "CAL", "down": {"at": "soon", "for": "1h"}}]},
            "changes[0].down",
            "not a duration",
            id="bad-duration",
        ),
        pytest.param({"name": "x", "surprise": 1}, "surprise", "Extra inputs are not permitted", id="unknown-key"),
        pytest.param(["name", "x"], "(top level)", "expected a mapping", id="not-a-mapping"),
    ],
)
def test_bad_scenarios_name_the_field(data: Any, field: str, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario_data(data, "bad.yaml")
    assert any(where == field and words in msg for where, msg in err.value.problems), err.value.problems
