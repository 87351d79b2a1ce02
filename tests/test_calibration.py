"""Calibration recovers a line's true parameters from its own events, and flags what drifted from the design."""

from __future__ import annotations

import math

import pytest

from tests.conftest import make_line
from twin.calibration import calibrate
from twin.engine import Engine
from twin.observations import LineObservations, ObservationBuilder

# The plant as it really is: failures twice as often as designed, repairs lognormal (designed exponential, same
# mean), scrap doubled; the cycle as designed.
TRUTH = make_line(
    {
        "id": "A",
        "cycle_time": {"dist": "exponential", "mean": 0.1},
        "scrap": 0.04,
        "failures": [
            {
                "name": "jam",
                "ttf": {"dist": "exponential", "mean": 5.0},
                "ttr": {"dist": "lognormal", "mean": 0.5, "cv": 1.0},
            }
        ],
    },
)
DESIGN = make_line(
    {
        "id": "A",
        "cycle_time": {"dist": "exponential", "mean": 0.1},
        "scrap": 0.02,
        "failures": [{"name": "jam", "ttf": {"dist": "exponential", "mean": 10.0}, "ttr": {"dist": "exponential", "mean": 0.5}}],
    },
)


def _observed(hours: float, seed: int) -> LineObservations:
    """What the true plant's events of ``hours`` show."""
    engine = Engine(TRUTH, seed)
    builder = ObservationBuilder(TRUTH, 0.0)
    builder.attach(engine)
    engine.run(hours)
    return builder.result(hours)


def test_calibration_recovers_the_truth_and_flags_what_drifted_and_only_that() -> None:
    obs = _observed(2000.0, seed=3)
    cal = calibrate(DESIGN, obs, bootstrap=100)
    st = cal.stations["A"]
    (jam,) = st.failures
    assert jam.used == "fitted"
    assert jam.n_failures > 300
    assert jam.ttf is not None
    assert jam.ttr is not None
    assert jam.ttf.mean_h == pytest.approx(5.0, rel=0.1)
    assert jam.ttf.ci95_h[0] <= 5.0 <= jam.ttf.ci95_h[1]
    assert jam.ttf.drift == pytest.approx(0.5, rel=0.1)  # twice as often as designed
    assert jam.ttr.mean_h == pytest.approx(0.5, rel=0.1)
    assert jam.ttr.ci95_h[0] <= 0.5 <= jam.ttr.ci95_h[1]
    assert jam.ttr.drift is None  # the mean is as designed: no drift, though the family is not
    assert jam.ttr.family == "lognormal"
    assert st.scrap.rate == pytest.approx(0.04, rel=0.1)
    assert st.scrap.drift == pytest.approx(2.0, rel=0.1)
    assert st.cycle_time.ratio == pytest.approx(1.0, abs=0.02)
    assert sorted(cal.flagged()) == ["A.jam.ttf", "A.scrap"]
    d = cal.to_dict("min")
    assert d["stations"]["A"]["failures"][0]["ttf"]["mean"] == pytest.approx(jam.ttf.mean_h * 60)
    assert st.cycle_time.mean_h is not None
    assert d["stations"]["A"]["cycle_time"]["mean_s"] == pytest.approx(st.cycle_time.mean_h * 3600)


def test_a_mode_with_too_few_failures_keeps_its_design_values_and_says_why() -> None:
    obs = _observed(60.0, seed=4)  # about a dozen failures
    cal = calibrate(DESIGN, obs, bootstrap=50)
    (jam,) = cal.stations["A"].failures
    assert jam.used == "design"
    assert "needed" in jam.why
    assert jam.ttf is not None  # still shown
    assert math.isfinite(jam.ttf.mean_h)


def test_bad_min_failures_is_refused() -> None:
    obs = _observed(10.0, seed=5)
    with pytest.raises(ValueError, match="min_failures"):
        calibrate(DESIGN, obs, min_failures=0)


def test_the_calibrated_line_runs_with_what_was_fitted_and_keeps_the_rest() -> None:
    from twin.calibration import calibrated_line
    from twin.simulate import run_once

    cal = calibrate(DESIGN, _observed(2000.0, seed=3), bootstrap=50)
    line = calibrated_line(DESIGN, cal)
    (jam,) = line.stations[0].failures
    assert jam.ttf.mean_value == pytest.approx(cal.stations["A"].failures[0].ttf.mean_h)  # type: ignore[union-attr]
    assert jam.ttr.dist == "lognormal"
    assert line.stations[0].scrap == pytest.approx(0.04, rel=0.1)
    assert line.stations[0].cycle_time == DESIGN.stations[0].cycle_time  # not fitted: as designed
    assert DESIGN.stations[0].failures[0].ttf.mean_value == 10.0  # the design line itself is untouched
    assert run_once(line, 50.0, seed=1).good > 0  # the engine takes it


def test_a_mode_without_a_complete_failure_says_so_in_words_not_in_hours() -> None:
    # in two hours the first failure of the machine (its clock's start unknown) is no observation: none is complete
    (jam,) = calibrate(DESIGN, _observed(2.0, seed=6), bootstrap=10).stations["A"].failures
    assert jam.ttf is None
    assert jam.used == "design"
    assert jam.why == "no complete time to failure observed in the window: nothing to fit"
