"""Observations and calibration on lines as plants run them (issue 13): repairs behind planned stops, store faults as
failure modes of their own, and the cycle time a line file implies with speed losses and micro-stops."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import make_line, record
from twin.calibration import calibrate, expected_cycle_h
from twin.events import MachineState, StateChanged
from twin.observations import ObservationBuilder, ObservationError

WORKING, DOWN, PLANNED_STOP = MachineState.WORKING, MachineState.DOWN, MachineState.PLANNED_STOP

ONE = make_line(
    {
        "id": "M",
        "cycle_time": 0.1,
        "failures": [
            {"name": "jam", "ttf": 10, "ttr": 2},
            {"name": "drift", "ttf": 50, "ttr": 1, "basis": "calendar"},
        ],
    }
)


def _s(t: float, state: MachineState, reason: str = "") -> StateChanged:
    return StateChanged(t, "M", 0, state, reason)


def test_a_repair_that_goes_on_after_a_planned_stop_is_one_repair() -> None:
    obs = ObservationBuilder(ONE, 0.0)
    for e in (_s(0, WORKING), _s(1, DOWN, "jam"), _s(2, PLANNED_STOP), _s(3, DOWN, "jam"), _s(4, WORKING), _s(14, DOWN, "jam")):
        obs(e)
    jam = obs.result(15).mode("M", "jam")
    assert jam.failures == 2
    assert list(jam.ttr_durations[jam.ttr_observed]) == [3.0]
    assert list(jam.ttf_durations[jam.ttf_observed]) == [10.0]  # working hours from 4 to 14


def test_a_repair_done_behind_a_stop_is_censored_at_the_stops_start() -> None:
    """Down at 1, the stop from 2 hides the rest: done when the stop ends at 5, so it lasted at least 1 h; the
    operating clock starts at 5 (no work in the stop): the next failure at 15 after 10 working hours is complete."""
    obs = ObservationBuilder(ONE, 0.0)
    for e in (_s(0, WORKING), _s(1, DOWN, "jam"), _s(2, PLANNED_STOP), _s(5, WORKING), _s(15, DOWN, "jam"), _s(16, WORKING)):
        obs(e)
    jam = obs.result(20).mode("M", "jam")
    assert jam.failures == 2
    assert sorted(zip(jam.ttr_durations.tolist(), jam.ttr_observed.tolist(), strict=True)) == [(1.0, False), (1.0, True)]
    assert list(jam.ttf_durations[jam.ttf_observed]) == [10.0]


def test_a_failure_shown_when_a_stop_ends_struck_in_the_stop() -> None:
    """Working from 0 (its drift clock seen to start at its repair's end, 1), stopped at 4, shown down at 6: a failure
    in the stop (counted), its clock censored at the stop's start (3 h), its repair of unknown start (no TTR)."""
    obs = ObservationBuilder(ONE, 0.0)
    for e in (_s(0, DOWN, "drift"), _s(1, WORKING), _s(4, PLANNED_STOP), _s(6, DOWN, "drift"), _s(7, WORKING)):
        obs(e)
    drift = obs.result(7).mode("M", "drift")
    assert drift.failures == 1
    assert drift.ttr_durations.size == 0
    assert list(zip(drift.ttf_durations.tolist(), drift.ttf_observed.tolist(), strict=True)) == [(3.0, False), (0.0, False)]


CALENDAR_LINE = make_line(
    {
        "id": "M",
        "cycle_time": 0.1,
        "failures": [
            {"name": "jam", "ttf": 10, "ttr": 2},
            {"name": "drift", "ttf": {"dist": "exponential", "mean": 7}, "ttr": 3, "basis": "calendar"},
        ],
    },
    calendar={
        "shifts": [{"start": "06:00", "hours": 8}, {"start": "14:00", "hours": 8}],
        "breaks": [{"start": "10:00", "duration": 0.5}],
    },
)


def test_the_engines_repairs_through_planned_stops_are_observed_as_they_were_drawn() -> None:
    """Constant repairs (2 h, 3 h) and a constant 10 operating hours to a jam, on a line stopping every night and
    break: every complete observation is the drawn value, and a repair a stop hid is censored below it."""
    _, events = record(CALENDAR_LINE, 2000.0, seed=3)
    obs = ObservationBuilder(CALENDAR_LINE, 0.0)
    for e in events:
        obs(e)
    result = obs.result(2000.0)
    jam, drift = result.mode("M", "jam"), result.mode("M", "drift")
    assert jam.ttf_complete > 50
    assert set(jam.ttf_durations[jam.ttf_observed].round(9)) == {10.0}
    for mode, ttr in ((jam, 2.0), (drift, 3.0)):
        done = mode.ttr_durations[mode.ttr_observed]
        assert done.size > 20
        assert np.allclose(done, ttr)
        assert np.all(mode.ttr_durations[~mode.ttr_observed] <= ttr + 1e-9)
    assert drift.ttr_censored > 0  # some repairs ended behind a night's stop
    # as many failures as repairs that began: a DOWN shown again after a stop that hid it is the same repair
    downs = 0
    shown: StateChanged | None = None
    before_stop: StateChanged | None = None  # the state a planned stop found
    for e in events:
        if not isinstance(e, StateChanged):
            continue
        if e.state is PLANNED_STOP and (shown is None or shown.state is not PLANNED_STOP):
            before_stop = shown
        resumed = before_stop is not None and before_stop.state is DOWN and before_stop.reason == e.reason
        if e.state is DOWN and shown is not None and shown.state is not DOWN and not (shown.state is PLANNED_STOP and resumed):
            downs += 1
        shown = e
    assert jam.failures + drift.failures == downs


STORE = make_line(
    {"id": "A", "cycle_time": 0.2, "buffer_after": 2},
    {
        "id": "S",
        "kind": "delay",
        "capacity": 20,
        "dwell": 2,
        "buffer_after": 2,
        "failures": [
            {
                "name": "channel",
                "ttf": {"dist": "exponential", "mean": 20},
                "ttr": {"dist": "exponential", "mean": 2},
                "positions": 5,
            }
        ],
    },
    {"id": "B", "cycle_time": 0.15},
)


def test_store_faults_are_observed_and_fitted_as_failure_modes() -> None:
    _, events = record(STORE, 4000.0, seed=7)
    obs = ObservationBuilder(STORE, 0.0)
    for e in events:
        obs(e)
    result = obs.result(4000.0)
    channel = result.mode("S", "channel")
    assert channel.basis == "calendar"
    assert channel.known
    assert channel.ttf_complete > 150
    assert result.stations["S"].working_h == 0.0
    cal = calibrate(STORE, result)
    mode = cal.stations["S"].failures[0]
    assert mode.used == "fitted"
    assert mode.ttf is not None
    assert mode.ttr is not None
    assert mode.ttf.ci95_h[0] <= 20.0 <= mode.ttf.ci95_h[1]
    assert mode.ttr.ci95_h[0] <= 2.0 <= mode.ttr.ci95_h[1]
    with pytest.raises(ObservationError, match="no mode 1"):
        obs(StateChanged(4000.0, "S", 1, DOWN, "x"))


def test_the_cycle_time_is_judged_against_what_speed_losses_and_micro_stops_make_of_it() -> None:
    line = make_line(
        {
            "id": "M",
            "cycle_time": 0.5,
            "speed": {"low": 0.7, "high": 0.95},
            "micro_stops": {"every": {"dist": "exponential", "mean": 1.0}, "duration": 0.05},
        }
    )
    expected = expected_cycle_h(line.stations[0])
    assert expected == pytest.approx(0.5 * np.log(0.95 / 0.7) / 0.25 * 1.05)
    _, events = record(line, 1200.0, seed=2)
    obs = ObservationBuilder(line, 0.0)
    for e in events:
        obs(e)
    cycle = calibrate(line, obs.result(1200.0)).stations["M"].cycle_time
    assert cycle.design_h == 0.5
    assert cycle.expected_h == pytest.approx(expected)
    # about 2,000 cycles: the mean of 1/speed and the micro-stops' count each within 0.2 % (one sd): 1.5 % is > 4 sd
    assert cycle.ratio == pytest.approx(1.0, abs=0.015)
