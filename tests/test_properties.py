"""Properties every run keeps, on random small lines (Hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_line, record
from twin.events import BufferLevel, StoreOccupancy
from twin.kpis import KpiReducer, initial_wip
from twin.schema import Line
from twin.simulate import run_once

HORIZON = 60.0


@st.composite
def lines(draw: st.DrawFn) -> Line:
    n = draw(st.integers(1, 4))
    stations: list[dict[str, Any]] = []
    for i in range(n):
        last = i == n - 1
        if 0 < i < n - 1 and draw(st.booleans()) and draw(st.booleans()):
            station: dict[str, Any] = {
                "id": f"S{i}",
                "kind": "delay",
                "capacity": draw(st.integers(1, 6)),
                "dwell": draw(st.sampled_from([0.5, 2, {"dist": "exponential", "mean": 1.5}])),
            }
        else:
            mean = draw(st.sampled_from([0.3, 0.7, 1.0, 1.6]))
            cycle = draw(
                st.sampled_from([mean, {"dist": "exponential", "mean": mean}, {"dist": "uniform", "low": 0, "high": 2 * mean}])
            )
            station = {"id": f"S{i}", "cycle_time": cycle, "machines": draw(st.integers(1, 3))}
            kind = draw(st.sampled_from(["unit", "lot", "batch"]))
            if kind == "lot":
                station["lot"] = draw(st.integers(2, 5))
            elif kind == "batch":
                station["batch_size"] = draw(st.integers(2, 5))
                if draw(st.booleans()):
                    station["batch_timeout"] = draw(st.sampled_from([0.5, 2.0]))
            if draw(st.booleans()):
                station["failures"] = [
                    {
                        "name": "f",
                        "ttf": {"dist": "exponential", "mean": draw(st.sampled_from([2.0, 8.0]))},
                        "ttr": {"dist": "exponential", "mean": 0.5},
                        "basis": draw(st.sampled_from(["operating", "calendar"])),
                    }
                ]
        station["scrap"] = draw(st.sampled_from([0.0, 0.05, 0.3]))
        if not last:
            station["buffer_after"] = draw(st.sampled_from([0, 1, 3, None]))
        stations.append(station)
    if draw(st.booleans()) and draw(st.booleans()):
        arrival = {
            "interarrival": {"dist": "exponential", "mean": draw(st.sampled_from([0.5, 2.0]))},
            "lot": draw(st.integers(1, 3)),
        }
        return make_line(*stations, arrival=arrival)
    return make_line(*stations)


common = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(line=lines(), seed=st.integers(0, 2**32 - 1))
def test_units_are_conserved(line: Line, seed: int) -> None:
    """Started = shipped + scrapped + still in the line."""
    engine, events = record(line, HORIZON, seed)
    reducer = KpiReducer(line, 0.0, HORIZON)
    for e in events:
        reducer(e)
    kpis = reducer.result()
    left = initial_wip(engine.snapshot())
    assert kpis.started == kpis.good + kpis.scrapped + left


@common
@given(line=lines(), seed=st.integers(0, 2**32 - 1))
def test_levels_stay_within_capacity_and_time_never_goes_back(line: Line, seed: int) -> None:
    _, events = record(line, HORIZON, seed)
    times = [e.t for e in events]
    assert times == sorted(times)
    for e in events:
        if isinstance(e, BufferLevel):
            cap = line.station(e.station).buffer_after
            assert e.level >= 0
            assert cap is None or e.level <= cap
        if isinstance(e, StoreOccupancy):
            cap = line.station(e.station).capacity
            assert cap is not None
            assert e.dwelling >= 0
            assert e.held >= 0
            assert e.dwelling + e.held <= cap


@common
@given(line=lines(), seed=st.integers(0, 2**32 - 1), warmup=st.sampled_from([0.0, 7.5]))
def test_state_fractions_are_fractions_that_sum_to_one(line: Line, seed: int, warmup: float) -> None:
    kpis = run_once(line, hours=HORIZON - warmup, seed=seed, warmup=warmup)
    for sid, s in kpis.stations.items():
        fractions = s.state_fractions
        assert abs(sum(fractions.values()) - 1.0) < 1e-9, (sid, fractions)
        assert all(-1e-12 <= f <= 1 + 1e-12 for f in fractions.values()), (sid, fractions)
        assert 0.0 <= s.availability <= 1.0
        assert 0.0 <= s.quality <= 1.0
    for b in kpis.buffers.values():
        assert b.mean_level >= 0
        assert b.capacity is None or b.mean_level <= b.capacity + 1e-9


@settings(max_examples=25, deadline=None)
@given(line=lines(), seed=st.integers(0, 2**32 - 1))
def test_the_same_seed_gives_the_same_run(line: Line, seed: int) -> None:
    _, first = record(line, HORIZON, seed)
    _, again = record(line, HORIZON, seed)
    assert first == again


@settings(max_examples=25, deadline=None)
@given(line=lines(), seed=st.integers(0, 2**32 - 1), cut=st.floats(5.0, 50.0))
def test_a_snapshot_keeps_every_unit(line: Line, seed: int, cut: float) -> None:
    """Starting from a snapshot, the line holds exactly the units the snapshot says."""
    engine, _ = record(line, cut, seed)
    snap = engine.snapshot()
    resumed, events = record(line, cut + 20.0, seed + 1, start=snap)
    reducer = KpiReducer(line, cut, cut + 20.0, begin_h=cut, wip0=initial_wip(snap))
    reducer.seed_buffers(snap)
    for e in events:
        reducer(e)
    kpis = reducer.result()
    assert initial_wip(snap) + kpis.started == kpis.good + kpis.scrapped + initial_wip(resumed.snapshot())
