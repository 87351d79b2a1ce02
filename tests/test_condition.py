"""The condition-signal hazard: its fit, its features from telemetry, and the failure times forecasts draw with it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from connectors.backtest import ORIGIN_MS, Ingest
from connectors.feed import VirtualPlant
from connectors.telemetry import Topics
from tests.conftest import make_line
from twin.condition import (
    LEVEL_TAU_H,
    MIN_POSITIVES,
    WINDOW_H,
    AgeOnlyHazard,
    ConditionFeatures,
    ConditionModel,
    fit_condition_model,
)
from twin.events import MachineState, ProcessValue, StateChanged
from twin.forecast import forecast
from twin.knowledge import KnowledgeBuilder, LineKnowledge, MachineKnowledge
from twin.residual import expected_within, residual_survival
from twin.sampler import sample_snapshots
from twin.schema import Line

WORKING, DOWN = MachineState.WORKING, MachineState.DOWN
VIBRATION = {"vibration_mm_s": {"unit": "mm/s", "nominal": 2.0, "normal": [1.0, 3.0], "condition": True}}
SIGMA = (3.0 - 1.0) / 6  # the signal's noise: (high - low) / 6
WEAR = {"dist": "weibull", "shape": 2.0, "scale": 10.0}  # a rising hazard: the age matters
# a model that trusts the signal: at level 5, trend 2 a failure within the window is all but certain
TRUSTING = ConditionModel(intercept=-4.0, age_only=1.0, level=2.0, trend=0.5)


def _line(*failures: dict[str, Any], machines: int = 1) -> Line:
    return make_line({"id": "M", "machines": machines, "cycle_time": 0.1, "failures": list(failures), "signals": VIBRATION})


def _knowledge(line: Line, ages: dict[str, float | None], features: ConditionFeatures | None) -> LineKnowledge:
    mk = MachineKnowledge(
        state=WORKING, since_h=99.0, reason="", cycle_worked_h=0.05, ages_h=ages, down_from=None, condition=features
    )
    return LineKnowledge(time_h=100.0, observed_since_h=0.0, machines={"M": (mk,)})


def _within(p_hat: float, p: float, n: int) -> bool:
    """Whether an estimated probability is within 4 standard errors of the exact one."""
    return abs(p_hat - p) <= 4 * math.sqrt(max(p * (1 - p), 1e-12) / n) + 1e-12


# -- the fit ---------------------------------------------------------------------------------------------------------


def test_the_fit_recovers_the_coefficients_of_a_known_logistic_model() -> None:
    rng = np.random.default_rng(11)
    n = 20_000
    p_age = rng.uniform(0.02, 0.5, n)
    level = rng.normal(0.0, 1.5, n)
    trend = rng.normal(0.0, 1.0, n)
    truth = ConditionModel(intercept=-0.5, age_only=0.8, level=1.2, trend=-0.6)
    failed = rng.random(n) < truth.p_within(p_age, level, trend)
    fit = fit_condition_model(p_age, level, trend, failed)
    assert fit.model is not None
    assert fit.standard_errors is not None
    assert (fit.samples, fit.positives) == (n, int(failed.sum()))
    # each within 4 standard errors (the ridge's pull, 1 against ~n/5 of information, is far below one)
    for got, want, se in zip(fit.model.coefficients, truth.coefficients, fit.standard_errors, strict=True):
        assert abs(got - want) <= 4 * se, (got, want, se)
    assert max(fit.standard_errors) < 0.1  # and the test has the power to tell them apart


def test_the_age_only_coefficients_give_the_age_only_probability() -> None:
    p_age = np.array([1e-6, 0.01, 0.3, 0.9, 1 - 1e-6])
    same = ConditionModel(intercept=0.0, age_only=1.0, level=0.0, trend=0.0)
    np.testing.assert_allclose(same.p_within(p_age, 7.0, -3.0), p_age, rtol=1e-9)


def test_too_few_failures_give_no_model_and_say_why() -> None:
    n = 500
    failed = np.zeros(n)
    failed[: MIN_POSITIVES - 1] = 1
    fit = fit_condition_model(np.full(n, 0.1), np.zeros(n), np.zeros(n), failed)
    assert fit.model is None
    assert fit.reason == f"{MIN_POSITIVES - 1} labelled failures within 2 h of a sample instant, {MIN_POSITIVES} needed: age-only"
    assert fit.as_dict() == {"fitted": False, "samples": n, "positives": MIN_POSITIVES - 1, "reason": fit.reason}


def test_perfectly_separating_signals_still_give_a_finite_model() -> None:
    # every failure came with a high level, none without: the likelihood alone has no maximum; the ridge gives one
    level = np.r_[np.full(50, 4.0), np.zeros(950)]
    fit = fit_condition_model(np.full(1000, 0.05), level, np.zeros(1000), level > 0)
    assert fit.model is not None
    assert all(math.isfinite(b) for b in fit.model.coefficients)
    assert 0.95 < fit.model.p_within(0.05, 4.0, 0.0) < 1.0  # very likely, not certain
    assert fit.model.p_within(0.05, 0.0, 0.0) < 0.01


# -- the age-only probability ----------------------------------------------------------------------------------------


def test_the_age_only_probability_is_the_failure_clocks() -> None:
    line = _line(
        {"name": "wear", "ttf": WEAR, "ttr": 0.2}, {"name": "jam", "ttf": {"dist": "exponential", "mean": 4.0}, "ttr": 0.1}
    )
    spec = line.stations[0]
    hazard = AgeOnlyHazard()
    s_wear = float(residual_survival(spec.failures[0].ttf, 6.0, WINDOW_H))
    assert hazard.p_within(spec, {"wear": 6.0, "jam": 1.0}) == pytest.approx(1 - s_wear * math.exp(-WINDOW_H / 4.0), rel=1e-12)
    # an age never seen: the equilibrium residual life's P(R <= w) = E[min(T, w)] / E[T]
    p_unseen = expected_within(spec.failures[0].ttf, 0.0, WINDOW_H) / spec.failures[0].ttf.mean_value
    assert hazard.mode_p("M", spec.failures[0], None) == pytest.approx(p_unseen, rel=1e-12)


# -- the sampler's draws ---------------------------------------------------------------------------------------------


def _ttf(line: Line, knowledge: LineKnowledge, model: ConditionModel | None, n: int, seed: int = 3) -> dict[str, np.ndarray]:
    starts = sample_snapshots(line, knowledge, np.random.default_rng(seed), n, model)
    modes = [f.name for f in line.stations[0].failures]
    return {mode: np.array([s.snapshot.stations["M"].machines[0].ttf_left_h[mode] for s in starts]) for mode in modes}


@pytest.mark.parametrize("age", [6.0, None], ids=["known age", "unknown age"])
def test_failure_times_are_drawn_given_the_models_window(age: float | None) -> None:
    line = _line({"name": "wear", "ttf": WEAR, "ttr": 0.2})
    dist = line.stations[0].failures[0].ttf
    features = ConditionFeatures(level=1.5, trend=0.5)
    n = 4000
    ttf = _ttf(line, _knowledge(line, {"wear": age}, features), TRUSTING, n)["wear"]
    p_age = AgeOnlyHazard().p_within(line.stations[0], {"wear": age})
    p = float(TRUSTING.p_within(p_age, 1.5, 0.5))
    w = WINDOW_H
    inside = ttf <= w
    assert _within(float(inside.mean()), p, n), (inside.mean(), p)
    assert ttf.min() > 0

    def cdf(x: float) -> float:  # P(TTF left <= x) by the age alone
        if age is not None:
            return 1.0 - float(residual_survival(dist, age, x))
        return expected_within(dist, 0.0, x) / dist.mean_value

    # within the window: the age's law restricted to it; beyond: the age's law given that it survives the window
    half = float(np.mean(ttf[inside] <= w / 2))
    assert _within(half, cdf(w / 2) / cdf(w), int(inside.sum())), (half, cdf(w / 2) / cdf(w))
    later = float(np.mean(ttf[~inside] > w + 3.0))
    exact = (1.0 - cdf(w + 3.0)) / (1.0 - cdf(w))
    assert _within(later, exact, int((~inside).sum())), (later, exact)


def test_two_failure_modes_compete_for_the_window() -> None:
    jam = {"name": "jam", "ttf": {"dist": "exponential", "mean": 5.0}, "ttr": 0.1}
    line = _line({"name": "wear", "ttf": WEAR, "ttr": 0.2}, jam)
    n = 4000
    ages: dict[str, float | None] = {"wear": 6.0, "jam": 2.0}
    ttf = _ttf(line, _knowledge(line, ages, ConditionFeatures(2.0, 0.0)), TRUSTING, n)
    hazard = AgeOnlyHazard()
    p = float(TRUSTING.p_within(hazard.p_within(line.stations[0], ages), 2.0, 0.0))
    first = np.minimum(ttf["wear"], ttf["jam"])
    assert _within(float(np.mean(first <= WINDOW_H)), p, n)
    # given that one of them fails within the window, it is the wear with P(wear within w) / P(either within w)
    p_wear = hazard.mode_p("M", line.stations[0].failures[0], 6.0)
    p_jam = hazard.mode_p("M", line.stations[0].failures[1], 2.0)
    early = first <= WINDOW_H
    share = float(np.mean(ttf["wear"][early] <= WINDOW_H))
    assert _within(share, p_wear / (1 - (1 - p_wear) * (1 - p_jam)), int(early.sum()))


# -- forecasts -------------------------------------------------------------------------------------------------------


def test_a_drifting_machine_is_forecast_to_fail_more_often_than_its_age_says_and_one_at_nominal_less() -> None:
    line = _line({"name": "wear", "ttf": WEAR, "ttr": 0.2})
    dist = line.stations[0].failures[0].ttf
    a, horizon, n = 6.0, 4.0, 2000
    age_only = 1 - float(residual_survival(dist, a, horizon))
    p_age = AgeOnlyHazard().p_within(line.stations[0], {"wear": a})
    results = {}
    for name, features in (("drifting", ConditionFeatures(5.0, 2.0)), ("nominal", ConditionFeatures(0.0, 0.0))):
        k = _knowledge(line, {"wear": a}, features)
        f = forecast(line, k, horizon, replications=n, seed=5, condition_model=TRUSTING)
        # exact: the model's window, then the age's law given that it survived the window
        p = float(TRUSTING.p_within(p_age, features.level, features.trend))
        exact = p + (1 - p) * (1 - float(residual_survival(dist, a + WINDOW_H, horizon - WINDOW_H)))
        got = f.stations["M"].p_failure
        assert _within(got, exact, n), (name, got, exact)
        assert f.assumptions["hazard"] == {"M": "condition-signal"}
        assert f.assumptions["condition_model"] == {"fitted": True, "given": True, "coefficients": TRUSTING.as_dict()}
        results[name] = got
    assert results["drifting"] > age_only + 0.3
    assert results["nominal"] <= age_only


def test_without_a_model_or_recent_signals_the_forecast_is_age_only() -> None:
    line = _line({"name": "wear", "ttf": WEAR, "ttr": 0.2})
    quiet = _knowledge(line, {"wear": 6.0}, None)  # no recent condition features
    drifting = _knowledge(line, {"wear": 6.0}, ConditionFeatures(5.0, 2.0))
    base = forecast(line, quiet, 4.0, replications=64, seed=5)
    assert base.assumptions["hazard"] == {"M": "age-only"}
    assert base.assumptions["condition_model"] == {"fitted": False, "reason": "no condition-signal model was fitted: age-only"}
    for k, model in ((quiet, TRUSTING), (drifting, None)):  # a model without signals, signals without a model
        f = forecast(line, k, 4.0, replications=64, seed=5, condition_model=model)
        assert f.assumptions["hazard"] == {"M": "age-only"}
        assert (f.good_output, f.stations) == (base.good_output, base.stations)  # the very same draws


# -- features and samples from telemetry -----------------------------------------------------------------------------


def test_features_come_from_recent_readings_of_a_machine_that_is_up() -> None:
    line = _line({"name": "wear", "ttf": WEAR, "ttr": 0.2}, machines=2)
    b = KnowledgeBuilder(line, 0.0)
    b(StateChanged(0.0, "M", 0, WORKING, ""))
    b(StateChanged(0.0, "M", 1, WORKING, ""))
    for i in range(3 * 60 + 1):  # 3 h of one reading a minute: machine 0 at nominal, machine 1 rising 1 sigma an hour
        t = i / 60
        b(ProcessValue(t, "M", 0, "vibration_mm_s", 2.0, "mm/s"))
        b(ProcessValue(t, "M", 1, "vibration_mm_s", 2.0 + SIGMA * t, "mm/s"))
        b(ProcessValue(t, "M", 1, "line_speed", 99.0, "m/min"))  # not a condition signal: ignored
    k = b.at(3.0)
    f0, f1 = (m.condition for m in k.machines["M"])
    assert f0 == ConditionFeatures(0.0, 0.0)
    assert f1 is not None
    # a linear rise of 1 per hour: the fast mean lags it by about its time constant (less half a reading's
    # interval), and the trend is the rise (once the slow mean has caught up, after a few of its time constants)
    assert f1.level == pytest.approx(3.0 - LEVEL_TAU_H, abs=0.02)
    assert f1.trend == pytest.approx(1.0, abs=0.03)
    assert b.at(3.5).machines["M"][1].condition is None  # half an hour without a reading: not recent
    # a machine that goes down has no features, its readings while down (0 mm/s: stopped) count for nothing, and
    # after the repair its features start afresh
    b(StateChanged(3.01, "M", 1, DOWN, "wear"))
    b(ProcessValue(3.02, "M", 1, "vibration_mm_s", 0.0, "mm/s"))
    assert b.at(3.02).machines["M"][1].condition is None
    b(StateChanged(3.1, "M", 1, WORKING, ""))
    for i in range(12):
        b(ProcessValue(3.1 + i / 60, "M", 1, "vibration_mm_s", 2.0, "mm/s"))
    assert b.at(3.1 + 11 / 60).machines["M"][1].condition == ConditionFeatures(0.0, 0.0)


def test_samples_are_labelled_by_whether_a_failure_followed_within_the_window() -> None:
    line = _line({"name": "wear", "ttf": WEAR, "ttr": 0.2}, machines=2)
    b = KnowledgeBuilder(line, 0.0, refit_every=None)
    b(StateChanged(0.0, "M", 0, WORKING, ""))
    b(StateChanged(0.0, "M", 1, WORKING, ""))
    # readings every minute for 6 h; machine 1 fails at 3.4 h and is repaired at 3.6 h
    for i in range(6 * 60 + 1):
        t = i / 60
        if t == 3.4:
            b(StateChanged(t, "M", 1, DOWN, "wear"))
        if t == 3.6:
            b(StateChanged(t, "M", 1, WORKING, ""))
        for m in (0, 1):
            b(ProcessValue(t, "M", m, "vibration_mm_s", 2.0, "mm/s"))
    rows = b.condition.samples()
    # every 15 min from 0.25 h (the first instant with 10 min of signal) on; labelled once their 2 h have passed
    # (by 5.75 h, the last instant sampled: those of 0.25 .. 3.5 h): machine 0's 14 never failed; machine 1's
    # 13 up to 3.25 h, of which those of 1.5 .. 3.25 h (8) preceded its failure within 2 h; after its repair,
    # its signals start afresh at 3.6 h, so its next sample is that of 4 h, still pending
    assert len(rows) == 14 + 13
    assert rows[:, 3].sum() == 8
    fit = b.condition.fit()
    assert fit.model is None
    assert "8 labelled failures" in fit.reason


def test_a_model_fitted_on_the_virtual_plants_telemetry_beats_the_age_only_hazard_on_later_samples() -> None:
    jam = {"name": "jam", "ttf": {"dist": "exponential", "mean": 3.0}, "ttr": {"dist": "exponential", "mean": 0.2}}
    line = _line(jam, machines=3)
    builder = KnowledgeBuilder(line, ORIGIN_MS / 3_600_000)
    topics = Topics("gigatwin", "plant1", line.name)
    plant = VirtualPlant(line, topics=topics, publisher=Ingest(topics, builder), seed=2, origin_ms=ORIGIN_MS)
    plant.run_unpaced(60.0)
    k = builder.at()
    fit = k.condition_fit
    assert fit is not None
    assert fit.model is not None
    assert fit.standard_errors is not None
    assert fit.model.level > 4 * fit.standard_errors[2]  # a rising signal means a failure is near
    assert any(m.condition is not None for m in k.machines["M"])
    # held out: the samples the next 40 hours label
    seen = builder.condition.labelled
    plant.run_unpaced(100.0)
    rows = builder.condition.samples()[seen:]
    y = rows[:, 3]
    p = fit.model.p_within(rows[:, 0], rows[:, 1], rows[:, 2])
    brier_model, brier_age = float(np.mean((p - y) ** 2)), float(np.mean((rows[:, 0] - y) ** 2))
    assert y.sum() >= 30  # enough failures to tell
    assert brier_model < brier_age / 2, (brier_model, brier_age)


def test_a_line_without_condition_signals_is_forecast_age_only() -> None:
    line = make_line({"id": "M", "cycle_time": 0.1, "failures": [{"name": "wear", "ttf": WEAR, "ttr": 0.2}]})
    b = KnowledgeBuilder(line, 0.0)
    b(StateChanged(0.0, "M", 0, WORKING, ""))
    b(ProcessValue(0.5, "M", 0, "vibration_mm_s", 9.0, "mm/s"))  # not declared: nothing to learn from
    k = b.at(1.0)
    assert k.condition_fit is None
    assert k.machines["M"][0].condition is None
    f = forecast(line, k, 2.0, replications=16, seed=1)
    assert f.assumptions["hazard"] == {"M": "age-only"}
