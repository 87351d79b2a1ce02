"""OEE over any window, as ISO 22400 defines it: a window earns the ideal time of the work done inside it.

Two properties, each over many windows of engine runs:
- on lines whose cycle times are fixed (machines never faster than ideal), performance never exceeds 1 and OEE
  never exceeds availability, however short the window and wherever its edges cut a job, a lot or an 18-h batch;
- on any line, the OEE differs from the count of good units times their ideal time (the engine's long-run figure)
  by no more than the ideal time of one job per machine at each edge of the window: pro-rating moves work across
  the edges and nothing else.
"""

from __future__ import annotations

import functools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import FAIL, MIXED_LINE, make_line, record
from twin.events import Event, MachineState, StateChanged, UnitsCompleted
from twin.kpis import KpiReducer, RunKpis
from twin.schema import Line
from twin.status import line_oee

# Fixed cycle times, everything else the engine has: failures, scrap, lots, a store, a batch station with a timeout
# (half-filled batches), and a long batch (a 9-h cycle against windows from minutes to days).
FIXED_LINE = make_line(
    {"id": "A", "cycle_time": 0.5, "failures": [FAIL], "scrap": 0.05, "buffer_after": 3},
    {"id": "B", "machines": 2, "cycle_time": 1.0, "lot": 2, "buffer_after": 0},
    {"id": "S", "kind": "delay", "capacity": 8, "dwell": 2.5, "buffer_after": 2},
    {"id": "C", "batch_size": 3, "batch_timeout": 0.5, "cycle_time": 1.2, "failures": [{**FAIL, "basis": "calendar"}]},
    {"id": "F", "machines": 3, "batch_size": 4, "cycle_time": 9.0, "scrap": 0.1},
)
HORIZON = 400.0
LINES = {"fixed": FIXED_LINE, "mixed": MIXED_LINE}


@functools.cache
def _events(which: str, seed: int) -> list[Event]:
    return record(LINES[which], HORIZON, seed=seed)[1]


def _kpis(which: str, seed: int, w0: float, w1: float) -> RunKpis:
    reducer = KpiReducer(LINES[which], w0, w1)
    for e in _events(which, seed):
        if e.t > w1:
            break
        reducer(e)
    return reducer.result()


windows = st.tuples(
    st.integers(0, 2),
    st.floats(0.0, HORIZON - 1.0),
    st.sampled_from([0.01, 0.1, 0.7, 2.0, 8.0, 30.0, 150.0]),
)


@settings(max_examples=150, deadline=None)
@given(windows)
def test_performance_never_exceeds_one_when_machines_are_never_faster_than_ideal(window: tuple[int, float, float]) -> None:
    seed, w0, length = window
    w1 = min(HORIZON, w0 + length)
    kpis = _kpis("fixed", seed, w0, w1)
    for sid, s in kpis.stations.items():
        assert s.performance <= 1 + 1e-9, f"{sid} over [{w0}, {w1}]: performance {s.performance}"
        assert 0 <= s.oee <= s.availability + 1e-9, f"{sid} over [{w0}, {w1}]: OEE {s.oee}"
        assert math.isclose(s.oee, s.availability * s.performance * s.quality, rel_tol=1e-9, abs_tol=1e-12)
    line = line_oee(FIXED_LINE, kpis)
    assert line.performance <= 1 + 1e-9
    assert 0 <= line.oee <= 1 + 1e-9


def _job_ideal(line: Line, sid: str) -> float:
    s = line.station(sid)
    assert s.cycle_time is not None
    assert not isinstance(s.cycle_time, int | float)
    per_unit = s.cycle_time.mean_value / (s.batch_size or 1)
    return per_unit * (s.batch_size or s.lot)


@settings(max_examples=100, deadline=None)
@given(windows, st.sampled_from(["fixed", "mixed"]))
def test_oee_moves_only_the_work_at_the_window_edges(window: tuple[int, float, float], which: str) -> None:
    line = LINES[which]
    seed, w0, length = window
    w1 = min(HORIZON, w0 + length)
    kpis = _kpis(which, seed, w0, w1)
    span = w1 - w0
    for s in line.stations:
        if s.kind == "delay":
            continue
        got = kpis.stations[s.id]
        per_unit = _job_ideal(line, s.id) / (s.batch_size or s.lot)
        counted = got.good * per_unit / (s.machines * span)  # every good unit finished inside, in full
        bound = 2 * _job_ideal(line, s.id) / span
        assert abs(got.oee - counted) <= bound + 1e-9, f"{s.id} over [{w0}, {w1}]: {got.oee} against {counted}"


def test_a_long_batch_earns_only_its_hours_inside_the_window() -> None:
    """F's batches of 4 take 9 h on each of 3 machines: in the 2 h around a batch's end, counting the finished batch in
    full (the old rule) reads 9 h of work in 6 machine-hours, 150 %; pro-rated, at most the 2 h it ran there."""
    done = next(e for e in _events("fixed", 1) if isinstance(e, UnitsCompleted) and e.station == "F" and e.t > 100)
    w0, w1 = done.t - 1.0, done.t + 1.0
    f = _kpis("fixed", 1, w0, w1).stations["F"]
    assert f.good + f.scrapped >= 4
    assert f.good * 9.0 / 4 / (3 * 2.0) > 1, "the window does not show what the old count did"
    assert f.performance <= 1 + 1e-9
    assert f.oee <= 1 + 1e-9


def test_the_line_oee_is_the_constraint_stations() -> None:
    kpis = _kpis("mixed", 0, 50.0, 250.0)
    lo = line_oee(MIXED_LINE, kpis)
    at = kpis.stations[lo.constraint]
    assert (lo.availability, lo.performance, lo.quality, lo.oee) == (at.availability, at.performance, at.quality, at.oee)


def _one_machine(events: list[Event], w1: float) -> RunKpis:
    reducer = KpiReducer(ONE, 0.0, w1)
    for e in events:
        reducer(e)
    return reducer.result()


ONE = make_line({"id": "P", "cycle_time": 1.0})


def _worked(t0: float, t1: float) -> list[Event]:
    """P working from ``t0``, finishing a unit every hour until ``t1``."""
    out: list[Event] = [StateChanged(t0, "P", 0, MachineState.WORKING, "")]
    out += [UnitsCompleted(t0 + k, "P", 0, 1, 0) for k in range(1, round(t1 - t0) + 1)]
    return out


def test_a_planned_stop_leaves_planned_busy_time_rather_than_costing_speed() -> None:
    """4 h of work at the ideal rate and a 4-h planned stop (PackML STOPPED): nothing was lost."""
    events = [*_worked(0.0, 4.0), StateChanged(4.0, "P", 0, MachineState.PLANNED_STOP, "")]
    p = _one_machine(events, 8.0).stations["P"]
    assert (p.availability, p.performance, p.quality, p.oee) == (1.0, 1.0, 1.0, 1.0)


def test_a_changeover_is_an_availability_loss() -> None:
    events = [*_worked(0.0, 4.0), StateChanged(4.0, "P", 0, MachineState.SETUP, ""), *_worked(5.0, 8.0)]
    p = _one_machine(events, 8.0).stations["P"]
    assert p.availability == pytest.approx(7 / 8)
    assert p.performance == pytest.approx(1.0)
    assert p.oee == pytest.approx(7 / 8)


def test_a_window_wholly_in_a_planned_stop_has_no_oee() -> None:
    events = [StateChanged(0.0, "P", 0, MachineState.PLANNED_STOP, "")]
    p = _one_machine(events, 8.0).stations["P"]
    assert math.isnan(p.oee)
    assert math.isnan(p.availability)
