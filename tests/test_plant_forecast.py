"""Forecasts from the live state of lines as plants run them (issue 13): machines in SETUP and planned stops start so,
a merge's starved machines hold no inputs, store faults carry into the snapshot, and the plan counts working time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import make_line, record
from twin.engine import Engine
from twin.events import Event, MachineState, StateChanged
from twin.forecast import forecast
from twin.knowledge import KnowledgeBuilder
from twin.sampler import sample_snapshots
from twin.schema import Line
from twin.scoring import Outcome
from twin.simulate import run_once

WORKING, STARVED, BLOCKED = MachineState.WORKING, MachineState.STARVED, MachineState.BLOCKED
DOWN, SETUP, PLANNED_STOP = MachineState.DOWN, MachineState.SETUP, MachineState.PLANNED_STOP

# Deterministic (constant times, no failures): what the events tell is the whole state, so a forecast from them
# is the run itself. Two branches merge at STACK; a changeover every 7 stacks; one 10-h shift with a break; a store.
PLANT = make_line(
    {"id": "A", "cycle_time": 0.3, "buffer_after": 4},
    {"id": "C", "inputs": [], "cycle_time": 0.25, "buffer_after": 3},
    {
        "id": "STACK",
        "inputs": ["A", "C"],
        "cycle_time": 0.4,
        "buffer_after": 3,
        "changeover": {"name": "format", "duration": 0.7, "every_units": 7},
    },
    {"id": "S", "kind": "delay", "capacity": 6, "dwell": 1.5, "buffer_after": 2},
    {"id": "E", "machines": 2, "cycle_time": 0.9},
    calendar={"shifts": [{"start": "06:00", "hours": 10}], "breaks": [{"start": "09:00", "duration": 0.5}]},
)


def _state_at(events: list[Event], station: str, t: float) -> tuple[MachineState, str]:
    last = (STARVED, "")
    for e in events:
        if isinstance(e, StateChanged) and e.station == station and e.machine == 0 and e.t <= t:
            last = (e.state, e.reason)
    return last


@pytest.mark.parametrize(
    ("now", "expect"),
    [
        (33.2, (PLANNED_STOP, "break")),  # stopped mid-cycle by the second day's break
        (40.5, (PLANNED_STOP, "off_shift")),  # off shift
    ],
)
def test_the_knowledge_of_a_stopped_plant_forecasts_what_its_own_snapshot_runs(
    now: float, expect: tuple[MachineState, str]
) -> None:
    engine, events = record(PLANT, now)
    assert _state_at(events, "A", now) == expect
    builder = KnowledgeBuilder(PLANT, 0.0)
    for e in events:
        builder(e)
    k = builder.at(now)
    drawn = sample_snapshots(PLANT, k, np.random.default_rng(1), 2)[0]
    assert drawn.notes.sampled_changeover_counts == 0  # a changeover was seen on the first day: counted since
    sampled, own = drawn.snapshot, engine.snapshot()
    assert sampled.stations["A"].machines[0].state is PLANNED_STOP
    for sid in ("A", "C", "STACK"):
        mine, theirs = sampled.stations[sid].machines[0], own.stations[sid].machines[0]
        assert (mine.state, mine.units, mine.finished) == (theirs.state, theirs.units, theirs.finished), sid
        assert mine.work_left_h == pytest.approx(theirs.work_left_h), sid
    truth = run_once(PLANT, 30.0, seed=0, start=own)
    f = forecast(PLANT, k, 30.0, replications=3, seed=2)
    assert f.good_output["p10"] == f.good_output["p90"] == truth.good


def test_a_machine_in_a_changeover_starts_in_it_with_the_setup_time_left() -> None:
    engine, events = record(PLANT, 200.0)
    changeovers = [e for e in events if isinstance(e, StateChanged) and e.station == "STACK" and e.state is SETUP]
    # 0.3 h into a changeover of 0.7 h (one that no break or shift end interrupts)
    mid = next(e.t for e in changeovers if e.t > 150 and _state_at(events, "STACK", e.t + 0.3) == (SETUP, "format")) + 0.3
    engine, events = record(PLANT, mid)
    builder = KnowledgeBuilder(PLANT, 0.0)
    for e in events:
        builder(e)
    k = builder.at(mid)
    mk = k.machines["STACK"][0]
    assert (mk.state, mk.reason) == (SETUP, "format")
    stack = sample_snapshots(PLANT, k, np.random.default_rng(1), 1)[0].snapshot.stations["STACK"].machines[0]
    own = engine.snapshot().stations["STACK"].machines[0]
    assert (stack.state, stack.units, stack.reason) == (SETUP, 0, "format")
    assert stack.setup_left_h == pytest.approx(0.4) == pytest.approx(own.setup_left_h)
    # the units since the last changeover are counted from the events: the next changeovers come on time
    f = forecast(PLANT, k, 20.0, replications=2, seed=0)
    assert f.good_output["p10"] == f.good_output["p90"] == run_once(PLANT, 20.0, start=engine.snapshot()).good


def test_a_repair_behind_a_planned_stop_goes_on_where_its_law_says() -> None:
    """Down at 1 h (repairs exponential, mean 1 h), a planned stop from 2 h, asked at 3 h: the repair lasted past
    2 h; it goes on past 3 h with probability e^-1 (memoryless), so that share of replications starts DOWN, the
    rest in the planned stop (the repair done behind it)."""
    line = make_line(
        {"id": "M", "cycle_time": 0.1, "failures": [{"name": "jam", "ttf": 1000, "ttr": {"dist": "exponential", "mean": 1}}]}
    )
    builder = KnowledgeBuilder(line, 0.0)
    for e in (
        StateChanged(0.0, "M", 0, WORKING, ""),
        StateChanged(1.0, "M", 0, DOWN, "jam"),
        StateChanged(2.0, "M", 0, PLANNED_STOP, "pm"),
    ):
        builder(e)
    k = builder.at(3.0)
    mk = k.machines["M"][0]
    assert (mk.state, mk.stopped_from, mk.repair_mode, mk.began_h, mk.stopped_since_h) == (PLANNED_STOP, DOWN, "jam", 1.0, 2.0)
    n = 4000
    machines = [s.snapshot.stations["M"].machines[0] for s in sample_snapshots(line, k, np.random.default_rng(5), n)]
    down = [m for m in machines if m.state is DOWN]
    p = math.exp(-1)
    assert abs(len(down) / n - p) <= 4 * math.sqrt(p * (1 - p) / n)
    assert all(m.reason == "jam" and m.repair_left_h > 0 for m in down)
    assert {m.state for m in machines} == {DOWN, PLANNED_STOP}
    assert all(m.reason == "pm" and m.units == 1 for m in machines if m.state is PLANNED_STOP)
    # the mean repair left of those still down is the mean repair (memoryless)
    assert np.mean([m.repair_left_h for m in down]) == pytest.approx(1.0, abs=4 / math.sqrt(len(down)))


def test_a_starved_merge_machine_holds_no_inputs() -> None:
    line = make_line(
        {"id": "A", "cycle_time": 0.5, "buffer_after": 4},
        {"id": "C", "inputs": [], "cycle_time": 0.5, "buffer_after": 4},
        {"id": "M", "inputs": ["A", "C"], "batch_size": 4, "cycle_time": 1.0},
    )
    builder = KnowledgeBuilder(line, 0.0)
    for e in (StateChanged(0.0, "M", 0, STARVED, "A"), StateChanged(0.0, "A", 0, WORKING, "")):
        builder(e)
    k = builder.at(0.7)
    assert k.machines["M"][0].units == 0
    sampled = sample_snapshots(line, k, np.random.default_rng(0), 5)
    assert all(s.snapshot.stations["M"].machines[0].units == 0 for s in sampled)
    assert sampled[0].notes.sampled_batch_fills == 0


STORE_LINE = make_line(
    {"id": "A", "cycle_time": 0.5, "buffer_after": 2},
    {
        "id": "S",
        "kind": "delay",
        "capacity": 10,
        "dwell": 2,
        "buffer_after": 2,
        "failures": [
            {"name": "channel", "ttf": {"dist": "exponential", "mean": 30}, "ttr": 3, "positions": 5},
            {"name": "rack", "ttf": 40, "ttr": 1},
        ],
    },
    {"id": "B", "cycle_time": 0.4},
)


def test_store_faults_carry_into_the_snapshot() -> None:
    """A fault under repair for 1 h of a constant 3-h repair has 2 h left; the other mode, repaired 10 h ago with a
    constant 40-h time to fault, faults in 30 h."""
    builder = KnowledgeBuilder(STORE_LINE, 0.0)
    for e in (
        StateChanged(0.0, "S", 1, DOWN, "rack"),
        StateChanged(1.0, "S", 1, WORKING, ""),
        StateChanged(10.0, "S", 0, DOWN, "channel"),
    ):
        builder(e)
    k = builder.at(11.0)
    store = k.stores["S"]
    assert (store.faults, store.fault_ages_h) == ({"channel": 10.0}, {"rack": 10.0})
    snap = sample_snapshots(STORE_LINE, k, np.random.default_rng(0), 1)[0].snapshot.stations["S"]
    assert snap.faults == {"channel": pytest.approx(2.0)}
    assert snap.ttf_left_h == {"rack": pytest.approx(30.0)}
    # the engine takes it: the fault is repaired at 13 h, the next rack fault comes at 41 h
    engine = Engine(STORE_LINE, 0, sample_snapshots(STORE_LINE, k, np.random.default_rng(0), 1)[0].snapshot)
    seen: list[Event] = []
    engine.subscribe(seen.append, kinds=[StateChanged])
    engine.run(45.0)
    faults = [(e.t, e.machine, e.state) for e in seen if isinstance(e, StateChanged) and e.station == "S"]
    assert faults[:2] == [(11.0, 0, DOWN), (13.0, 0, WORKING)]
    assert [f for f in faults if f[1] == 1] == [(41.0, 1, DOWN), (42.0, 1, WORKING)]


def test_the_forecasts_plan_counts_only_working_time() -> None:
    """One 8-h shift a day: a 24-h horizon from midnight holds 8 working hours."""
    line: Line = make_line({"id": "M", "cycle_time": 0.25}, calendar={"shifts": [{"start": "06:00", "hours": 8}]})
    builder = KnowledgeBuilder(line, 0.0)
    builder(StateChanged(0.0, "M", 0, PLANNED_STOP, "off_shift"))
    f = forecast(line, builder.at(0.0), 24.0, replications=2, seed=0, plan_per_hour=4.0)
    assert f.plan["target"] == pytest.approx(32.0)
    assert f.good_output["p50"] == 32.0


def test_a_repair_shown_again_after_a_planned_stop_is_not_a_new_failure() -> None:
    """What a forecast's p_failure is scored against: a machine down at 1 h, behind a stop from 2 h, shown down again
    with the same reason when the stop ends at 3 h, failed once; a different reason after the stop is a new failure."""
    outcome = Outcome(make_line({"id": "M", "cycle_time": 0.1}))
    for e in (
        StateChanged(0.0, "M", 0, WORKING, ""),
        StateChanged(1.0, "M", 0, DOWN, "jam"),
        StateChanged(2.0, "M", 0, PLANNED_STOP, "pm"),
        StateChanged(3.0, "M", 0, DOWN, "jam"),
        StateChanged(4.0, "M", 0, WORKING, ""),
        StateChanged(5.0, "M", 0, DOWN, "jam"),
        StateChanged(6.0, "M", 0, PLANNED_STOP, "pm"),
        StateChanged(7.0, "M", 0, DOWN, "motor"),
    ):
        outcome(e)
    assert outcome.failed("M", 0.0, 1.0)
    assert not outcome.failed("M", 1.0, 4.9)
    assert outcome.failed("M", 4.9, 5.0)
    assert outcome.failed("M", 5.0, 7.0)
