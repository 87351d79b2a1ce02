"""The KPI reducer: one reducer, whether events arrive per type from the engine or one by one from a recording."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import MIXED_LINE as LINE
from tests.conftest import record
from twin.engine import Engine
from twin.events import BufferLevel, StateChanged, UnitsLoaded
from twin.kpis import ActivePeriods, KpiReducer, initial_wip
from twin.simulate import run_once


def test_the_engine_path_and_the_recorded_stream_give_equal_kpis() -> None:
    direct = run_once(LINE, hours=300, seed=5, warmup=20)
    _, events = record(LINE, 320, seed=5)
    replay = KpiReducer(LINE, 20, 320)
    for e in events:
        replay(e)
    assert dataclasses.asdict(replay.result()) == dataclasses.asdict(direct)


def test_observers_get_only_the_types_they_take() -> None:
    states: list[object] = []
    everything: list[object] = []
    engine = Engine(LINE, 1)
    engine.subscribe(states.append, kinds=[StateChanged])
    engine.subscribe(everything.append)
    engine.run(50)
    assert states
    assert all(isinstance(e, StateChanged) for e in states)
    assert states == [e for e in everything if isinstance(e, StateChanged)]
    assert any(isinstance(e, UnitsLoaded) for e in everything)
    assert any(isinstance(e, BufferLevel) for e in everything)


def test_events_out_of_time_order_are_refused() -> None:
    reducer = KpiReducer(LINE, 0, 10)
    reducer(BufferLevel(5.0, "A", 1))
    with pytest.raises(ValueError, match="arrived after"):
        reducer(BufferLevel(4.0, "A", 2))


def test_oee_is_availability_times_performance_times_quality() -> None:
    kpis = run_once(LINE, hours=200, seed=2, warmup=10)
    for s in kpis.stations.values():
        assert s.oee == pytest.approx(s.availability * s.performance * s.quality)


def test_results_mid_stream_leave_the_reducer_as_it_was() -> None:
    _, events = record(LINE, 200, seed=3)
    running, shorter, whole = KpiReducer(LINE, 20, 200), KpiReducer(LINE, 20, 120), KpiReducer(LINE, 20, 200)
    for e in events:
        whole(e)
        if e.t <= 120:
            shorter(e)
            running(e)
    assert dataclasses.asdict(running.result(until=120)) == dataclasses.asdict(shorter.result())
    assert running.result(until=120).end_h == 120
    with pytest.raises(ValueError, match="have passed"):
        running.result(until=100)
    for e in events:
        if e.t > 120:
            running(e)
    assert dataclasses.asdict(running.result()) == dataclasses.asdict(whole.result())


def test_a_fork_continues_the_line_state_into_a_later_window() -> None:
    _, events = record(LINE, 200, seed=6)
    whole = KpiReducer(LINE, 100, 200)
    early = KpiReducer(LINE, 0, 10)
    for e in events:
        whole(e)
        if e.t < 100:
            early(e)
    with pytest.raises(ValueError, match="cannot fork"):
        early.fork(50, 200)
    later = early.fork(100, 200)
    for e in events:
        if e.t >= 100:
            later(e)
    assert dataclasses.asdict(later.result()) == dataclasses.asdict(whole.result())


def test_field_handlers_get_the_fields_of_the_events_observers_get_in_the_same_order() -> None:
    engine = Engine(LINE, 4)
    seen: list[tuple[str, tuple[object, ...]]] = []
    engine.subscribe(lambda e: seen.append(("object", tuple(e))))
    for kind in KpiReducer.KINDS:
        engine.subscribe_fields(kind, lambda *fields, kind=kind: seen.append((kind.__name__, fields)))
    engine.run(80)
    objects = [fields for who, fields in seen if who == "object"]
    by_fields = [fields for who, fields in seen if who != "object"]
    assert {who for who, _ in seen} == {"object"} | {k.__name__ for k in KpiReducer.KINDS}
    # each event reaches the object observer first (it subscribed first), then its field handler
    kinds = set(KpiReducer.KINDS)
    _, events = record(LINE, 80, seed=4)
    assert objects == [tuple(e) for e in events]
    assert by_fields == [tuple(e) for e in events if type(e) in kinds]
    for i, (who, fields) in enumerate(seen):
        if who != "object":
            assert seen[i - 1] == ("object", fields)


def test_field_handlers_are_refused_once_the_run_has_started() -> None:
    engine = Engine(LINE, 1)
    engine.run(1)
    with pytest.raises(RuntimeError, match="before the first run"):
        engine.subscribe_fields(StateChanged, print)


def test_the_active_periods_alone_judge_the_bottleneck_as_the_reducer_does() -> None:
    for seed in range(6):
        engine = Engine(LINE, seed)
        engine.run(30.0)
        snapshot = engine.snapshot()
        again = Engine(LINE, (seed, 1), snapshot)  # from a snapshot, as a forecast's replications run
        reducer = KpiReducer(LINE, 30.0, 42.0, begin_h=30.0, wip0=initial_wip(snapshot))
        reducer.seed_buffers(snapshot)
        reducer.attach(again)
        periods = ActivePeriods(LINE, 30.0, 42.0)
        periods.attach(again)
        again.run(42.0)
        result = reducer.result()
        assert periods.means() == {sid: st.active_period_mean_h for sid, st in result.stations.items()}
        assert periods.bottleneck() == result.bottleneck
        assert len({round(m, 9) for m in periods.means().values() if m > 0}) >= 3  # a comparison of real periods
