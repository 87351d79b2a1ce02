"""Forecasts are kept and scored: what happened after each (``twin.scoring``), the service's forecaster writing
each default forecast and, once its horizon has passed, its score to the store, and taking the unscored ones back
after a restart."""

from __future__ import annotations

import math

import numpy as np
import pytest

from api.forecaster import Forecaster
from connectors.backtest import ORIGIN_MS, Wire
from connectors.stores import MemoryStore, StoredForecast
from tests.conftest import make_line
from twin.engine import Engine
from twin.events import Event, MachineState
from twin.scoring import Outcome, Score, accuracy, auc, lead_of, score

DETERMINISTIC = make_line(
    {"id": "A", "cycle_time": 0.3, "lot": 2, "buffer_after": 4},
    {"id": "B", "machines": 2, "cycle_time": 1.1, "buffer_after": 3},
    {"id": "C", "batch_size": 3, "cycle_time": 1.2},
)
ORIGIN_H = ORIGIN_MS / 3_600_000
MS = 3_600_000


def test_the_outcome_counts_line_end_output_and_new_failures_late_ones_too() -> None:
    line = make_line({"id": "A", "cycle_time": 1.0}, {"id": "B", "cycle_time": 1.0})
    o = Outcome(line)
    o.completed(1.0, "B", 0, 5, 0)
    o.completed(1.0, "A", 0, 50, 0)  # not the line's end
    o.completed(3.0, "B", 0, 7, 1)
    o.completed(2.0, "B", 0, 11, 0)  # late: counted where it belongs
    assert [o.shipped(0, t) for t in (0.5, 1.0, 2.0, 2.5, 3.0)] == [0, 5, 16, 16, 23]
    assert o.shipped(1.0, 3.0) == 18  # (t0, t1]
    o.state(1.5, "A", 0, MachineState.DOWN, "jam")
    o.state(1.7, "A", 0, MachineState.DOWN, "jam")  # still the same failure
    o.state(2.2, "A", 0, MachineState.WORKING, "")
    o.state(2.6, "A", 0, MachineState.DOWN, "jam")
    assert [o.failed("A", a, b) for a, b in ((0, 1.5), (1.5, 2.5), (1.4, 1.6), (2.5, 9))] == [True, False, True, True]
    assert not o.failed("B", 0, 9)
    assert o.clock_h == 3.0
    o.forget_before(2.0)
    assert o.shipped(1.5, 3.0) == 18  # what is kept still adds up
    assert o.failed("A", 2.5, 9)
    assert not o.failed("A", 1.0, 2.5)


def test_accuracy_sums_scores_up_by_lead_exactly() -> None:
    line = make_line({"id": "A", "cycle_time": 1.0})
    o = Outcome(line)
    for k in range(1, 100):  # one unit every 0.1 h: 10 an hour
        o.completed(k / 10, "A", 0, 1, 0)
    o.state(0.5, "A", 0, MachineState.DOWN, "x")
    s1 = score(0.0, 1.5, [(1.0, 8.0, 11.0, 12.0), (1.5, 14.0, 15.0, 16.0)], {"A": 0.8}, o)
    s2 = score(2.0, 1.0, [(3.0, 5.0, 8.0, 9.0)], {"A": 0.3}, o)
    assert [st["actual"] for st in s1.steps] == [10.0, 15.0]
    assert s1.stations == {"A": {"p_failure": 0.8, "failed": 1.0}}
    assert s2.stations["A"]["failed"] == 0.0
    assert Score.from_dict(s1.to_dict()) == s1
    a = accuracy([s1, s2])
    assert a["forecasts"] == 2
    # lead 1: |11-10|/10 and |8-10|/10; lead 2: the 1.5-h step, |15-15|/15
    assert a["by_lead"] == [
        {"lead": 1.0, "n": 2.0, "mape_p50": pytest.approx(0.15), "coverage_p10_p90": 0.5, "actual_mean": 10.0},
        {"lead": 2.0, "n": 1.0, "mape_p50": 0.0, "coverage_p10_p90": 1.0, "actual_mean": 15.0},
    ]
    assert a["p_failure"]["brier"] == pytest.approx(((0.8 - 1) ** 2 + 0.3**2) / 2)
    assert a["p_failure"]["brier_base_rate"] == pytest.approx(0.25)
    assert a["p_failure"]["auc"] == 1.0
    assert [r["lead"] for r in a["p_failure_by_lead"]] == [1.0, 2.0]
    assert math.isnan(accuracy([])["p_failure"]["brier"])
    assert [lead_of(h) for h in (0.2, 1.0, 1.00001, 3.4)] == [1, 1, 2, 4]


def test_auc_counts_ties_half() -> None:
    assert auc(np.array([0.1, 0.5, 0.5, 0.9]), np.array([0, 0, 1, 1])) == pytest.approx(0.875)
    assert math.isnan(auc(np.array([0.1, 0.2]), np.array([1, 1])))


def _forecaster(store: MemoryStore) -> Forecaster:
    return Forecaster(
        DETERMINISTIC,
        period_s=60,  # refreshed by hand below; a positive period keeps and scores them
        replications=4,
        workers=0,
        shift_hours=8,
        shift_origin_h=6,
        plan_per_hour=0.0,
        store=store,
        site="plant1",
        line_name=DETERMINISTIC.name,
    )


def _run(until: list[float], forecaster: Forecaster, events: list[Event] | None = None) -> Engine:
    """A deterministic run, through the wire into the forecaster, refreshing it at each of ``until``."""
    engine = Engine(DETERMINISTIC, 0)
    wire = Wire(DETERMINISTIC, forecaster)
    engine.subscribe(wire)
    if events is not None:
        engine.subscribe(events.append)
    for t in until:
        engine.run(t)
        forecaster.refresh()
    return engine


def _kept(store: MemoryStore) -> list[StoredForecast]:
    return store.forecasts(start_ms=ORIGIN_MS, end_ms=ORIGIN_MS + 30 * 24 * MS, site="plant1", line=DETERMINISTIC.name)


def test_every_default_forecast_is_kept_and_scored_once_its_horizon_has_passed() -> None:
    store = MemoryStore()
    f = _forecaster(store)
    _run([30.0, 30.5, 50.0], f)
    kept = _kept(store)
    # as of each refresh's newest event (the line's clock), not the hour it was asked at
    for k, asked in zip(kept, (30.0, 30.5, 50.0), strict=True):
        assert ORIGIN_MS + (asked - 1.2) * MS < k.as_of_ms <= ORIGIN_MS + asked * MS
    assert all(k.forecast is not None and k.forecast["default"] for k in kept)
    first, second, last = kept
    assert first.score is not None
    assert second.score is not None
    assert last.score is None
    assert (f.kept, f.scored) == (3, 2)
    # a deterministic line, known exactly from its telemetry, forecasts what it then does
    for k in (first, second):
        assert k.forecast is not None
        assert k.score is not None
        s = Score.from_dict(k.score)
        assert s.horizon_h == k.forecast["horizon_h"] >= 1.0
        assert [st["h"] for st in s.steps] == pytest.approx([min(i + 1.0, s.horizon_h) for i in range(len(s.steps))])
        assert all(st["p50"] == st["actual"] for st in s.steps), s.steps
    a = accuracy(Score.from_dict(k.score) for k in kept if k.score is not None)
    assert all(row["mape_p50"] == 0.0 and row["coverage_p10_p90"] == 1.0 for row in a["by_lead"])
    # the clock has not moved: the same instant is not kept twice
    f.refresh()
    assert len(_kept(store)) == 3


def test_after_a_restart_the_unscored_forecasts_are_taken_back_and_scored() -> None:
    store = MemoryStore()
    events: list[Event] = []
    _run([30.0, 30.5], _forecaster(store), events)
    assert [k.score is None for k in _kept(store)] == [True, True]  # the service stops before either is scored

    again = _forecaster(store)
    wire = Wire(DETERMINISTIC, again)
    first_as_of = _kept(store)[0].as_of_ms
    replay_from = 30.2  # the replayed history begins after the first forecast: its output is not known
    assert first_as_of < ORIGIN_MS + replay_from * MS < _kept(store)[1].as_of_ms
    for ev in events:
        if ev.t >= replay_from:
            wire(ev)
    assert again.resume() == 1
    engine = Engine(DETERMINISTIC, 0)
    engine.subscribe(lambda ev: wire(ev) if ev.t > 30.5 else None)  # the same run goes on where it was
    engine.run(50.0)
    again.score_due()
    first, second = _kept(store)
    assert first.score is None  # made before the history the restart could replay
    assert second.score is not None
    assert all(st["p50"] == st["actual"] for st in Score.from_dict(second.score).steps)


def test_a_store_that_fails_does_not_stop_the_forecasts_and_gets_them_later(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    store.fail_writes = True
    f = _forecaster(store)
    engine = _run([30.0], f)
    assert f.latest is not None
    assert f.latest["as_of"].startswith("2023-11-16T04:")
    assert "writing 1 forecast records to the store failed; trying again at the next refresh" in caplog.text
    store.fail_writes = False  # the store is back: the next refresh writes what waited, then its own
    engine.run(31.0)
    f.refresh()
    assert len(_kept(store)) == 2


def test_the_forecast_documents_are_what_the_api_served() -> None:
    store = MemoryStore()
    f = _forecaster(store)
    _run([30.0], f)
    (kept,) = _kept(store)
    assert kept.forecast == f.latest


def test_without_refreshes_nothing_is_kept_and_nothing_accumulates() -> None:
    # gigatwin ingest computes no forecasts (period 0): what the line did is not followed either
    f = Forecaster(DETERMINISTIC, period_s=0, replications=2, workers=0, shift_hours=8, shift_origin_h=6, plan_per_hour=0.0)
    engine = Engine(DETERMINISTIC, 0)
    engine.subscribe(Wire(DETERMINISTIC, f))
    engine.run(50.0)
    assert f.outcome.clock_h is None
    assert f.compute(horizon_h=1.0)["good_output"]["p50"] > 0  # on demand, still


def test_the_default_forecast_follows_the_calendar_and_plans_working_hours_only() -> None:
    """One 8-h shift from 06:00 every day: inside it the default forecast runs to its end; between shifts to the
    end of the next one, against the plan of its working hours only (none for the hours off shift)."""
    from twin.shifts import ShiftPlan

    line = make_line(
        {"id": "A", "cycle_time": 0.3, "buffer_after": 4},
        {"id": "B", "cycle_time": 0.5},
        calendar={"shifts": [{"start": "06:00", "hours": 8}]},
    )
    f = Forecaster(line, period_s=0, replications=4, workers=0, shift_hours=8, shift_origin_h=6, plan_per_hour=2.0)
    engine = Engine(line, 0)
    engine.subscribe(Wire(line, f))
    engine.run(30.0)
    t0 = f.knowledge().time_h
    shift = ShiftPlan(line, 2.0).shift_at(t0)
    assert shift.working
    inside = f.compute()
    assert inside["horizon_h"] == pytest.approx(shift.end_h - t0)
    evening = shift.end_h + 2.0  # 16:00: off shift until 06:00, then the shift to 14:00
    between = f.compute(now_h=evening)
    assert between["horizon_h"] == pytest.approx(22.0)
    assert between["plan"]["target"] == pytest.approx(2.0 * 8)
