"""The engine's behaviour on lines small enough to work out by hand (constant times: exact values)."""

from __future__ import annotations

import pytest

from tests.conftest import make_line, record
from twin.engine import Engine
from twin.errors import SnapshotError
from twin.events import BufferLevel, MachineState, StateChanged, UnitsCompleted, UnitsLoaded
from twin.simulate import run_once
from twin.snapshot import LineSnapshot, MachineSnapshot, StationSnapshot, StoreLot

DOWN = MachineState.DOWN


def _down_intervals(events: list, station: str, machine: int = 0) -> list[tuple[float, float]]:
    out, since = [], None
    for e in events:
        if isinstance(e, StateChanged) and e.station == station and e.machine == machine:
            if e.state is DOWN and since is None:
                since = e.t
            elif e.state is not DOWN and since is not None:
                out.append((since, e.t))
                since = None
    return out


def _completions(events: list, station: str) -> list[float]:
    return [e.t for e in events if isinstance(e, UnitsCompleted) and e.station == station]


def test_slow_second_station_paces_the_line_and_blocks_the_first() -> None:
    line = make_line({"id": "A", "cycle_time": 1, "buffer_after": 1}, {"id": "B", "cycle_time": 2})
    kpis = run_once(line, hours=100, warmup=10)
    assert kpis.throughput_per_hour == pytest.approx(0.5)
    a = kpis.stations["A"].state_fractions
    assert a["working"] == pytest.approx(0.5)
    assert a["blocked"] == pytest.approx(0.5)
    assert kpis.stations["B"].state_fractions["working"] == pytest.approx(1.0)
    assert kpis.bottleneck == "B"


@pytest.mark.parametrize(("a", "b", "rate"), [(1, 1, 1.0), (1, 2, 0.5), (2, 1, 0.5)])
def test_direct_hand_off_works(a: float, b: float, rate: float) -> None:
    line = make_line({"id": "A", "cycle_time": a, "buffer_after": 0}, {"id": "B", "cycle_time": b})
    _, events = record(line, 50)
    assert all(e.level == 0 for e in events if isinstance(e, BufferLevel))
    kpis = run_once(line, hours=40, warmup=10)
    assert kpis.throughput_per_hour == pytest.approx(rate)


def test_operating_failure_interrupts_and_the_unit_resumes() -> None:
    failure = {"name": "jam", "ttf": 2.5, "ttr": 1, "basis": "operating"}
    line = make_line({"id": "A", "cycle_time": 1, "failures": [failure]})
    _, events = record(line, 12)
    assert _down_intervals(events, "A") == [(2.5, 3.5), (6.0, 7.0), (9.5, 10.5)]
    assert _completions(events, "A") == [1, 2, 4, 5, 6, 8, 9, 11]
    assert run_once(line, 350).throughput_per_hour == pytest.approx(1 / 1.4)


def test_operating_failures_wait_while_starved_calendar_ones_do_not() -> None:
    def line(basis: str):
        fail = {"name": "f", "ttf": 3.5, "ttr": 1, "basis": basis}
        return make_line({"id": "A", "cycle_time": 10, "buffer_after": 5}, {"id": "B", "cycle_time": 1, "failures": [fail]})

    _, calendar = record(line("calendar"), 16)
    assert _down_intervals(calendar, "B") == [(3.5, 4.5), (8.0, 9.0), (12.5, 13.5)]
    _, operating = record(line("operating"), 42)
    assert _down_intervals(operating, "B") == [(40.5, 41.5)]  # 3.5 operating hours: mid-way through the 4th unit


def test_calendar_failure_interrupts_work_in_progress() -> None:
    line = make_line({"id": "A", "cycle_time": 1, "failures": [{"name": "f", "ttf": 2.4, "ttr": 1, "basis": "calendar"}]})
    _, events = record(line, 8.5)
    # the calendar clock restarts after each repair: failures at 2.4 and 3.4 + 2.4 = 5.8
    assert _down_intervals(events, "A") == [(2.4, 3.4), pytest.approx((5.8, 6.8))]
    assert _completions(events, "A") == pytest.approx([1, 2, 4, 5, 7, 8])


def test_a_shared_repair_crew_makes_the_second_machine_wait() -> None:
    fail = {"name": "f", "ttf": 2.5, "ttr": 1, "crew": "fitters"}
    line = make_line({"id": "A", "machines": 2, "cycle_time": 1, "failures": [fail]}, repair_crews={"fitters": 1})
    _, events = record(line, 5)
    first, second = _down_intervals(events, "A", 0), _down_intervals(events, "A", 1)
    assert sorted([first[0], second[0]]) == [(2.5, 3.5), (2.5, 4.5)]


def test_batch_starts_full_or_after_its_timeout() -> None:
    full = make_line({"id": "A", "cycle_time": 1, "buffer_after": 10}, {"id": "B", "cycle_time": 10, "batch_size": 4})
    _, events = record(full, 20)
    loads = [(e.t, e.units) for e in events if isinstance(e, UnitsLoaded) and e.station == "B"]
    assert loads[0] == (4, 4)
    timed = make_line(
        {"id": "A", "cycle_time": 1, "buffer_after": 10}, {"id": "B", "cycle_time": 10, "batch_size": 4, "batch_timeout": 1.5}
    )
    _, events = record(timed, 20)
    loads = [(e.t, e.units) for e in events if isinstance(e, UnitsLoaded) and e.station == "B"]
    assert loads[0] == (2.5, 2)


def test_delay_store_holds_units_for_their_dwell_and_limits_the_rate() -> None:
    line = make_line(
        {"id": "A", "cycle_time": 1, "buffer_after": 0},
        {"id": "WET", "kind": "delay", "capacity": 3, "dwell": 5, "buffer_after": 0},
        {"id": "C", "cycle_time": 0.1},
    )
    _, events = record(line, 12)
    assert _completions(events, "WET")[:3] == [6, 7, 8]
    kpis = run_once(line, hours=500, warmup=20)
    assert kpis.throughput_per_hour == pytest.approx(0.6, abs=1 / 500)
    assert kpis.stations["WET"].state_fractions["working"] == pytest.approx(1.0, abs=0.01)


def test_lots_move_units_together_with_per_unit_cycle_time() -> None:
    line = make_line({"id": "A", "cycle_time": 1, "lot": 4, "buffer_after": 8}, {"id": "B", "cycle_time": 0.5, "lot": 4})
    _, events = record(line, 9)
    done = [(e.t, e.good) for e in events if isinstance(e, UnitsCompleted) and e.station == "A"]
    assert done == [(4, 4), (8, 4)]
    assert _completions(events, "B") == [6]


def test_warm_start_resumes_repairs_and_work_in_progress() -> None:
    line = make_line({"id": "A", "cycle_time": 1, "failures": [{"name": "jam", "ttf": 100, "ttr": 3}]})
    start = LineSnapshot(
        time_h=100.0,
        stations={
            "A": StationSnapshot(
                machines=[MachineSnapshot(state=DOWN, units=1, work_left_h=0.5, repair_left_h=0.25, reason="jam")]
            )
        },
    )
    _, events = record(line, 102, start=start)
    assert _down_intervals(events, "A") == [(100.0, 100.25)]
    assert _completions(events, "A")[:2] == [100.75, 101.75]


def test_a_run_continued_from_its_snapshot_matches_the_uninterrupted_run() -> None:
    line = make_line(
        {"id": "A", "cycle_time": 0.7, "buffer_after": 2},
        {"id": "B", "cycle_time": 1.1, "machines": 2, "buffer_after": 0},
        {"id": "S", "kind": "delay", "capacity": 5, "dwell": 3, "buffer_after": 1},
        {"id": "C", "cycle_time": 0.8, "lot": 2},
    )
    _, whole = record(line, 60)
    first, _ = record(line, 23.3)
    snap = first.snapshot()
    assert snap.time_h == 23.3
    _, rest = record(line, 60, start=snap)
    assert [t for t in _completions(whole, "C") if t >= 23.3] == pytest.approx(_completions(rest, "C"))


def test_snapshot_errors_name_the_place() -> None:
    line = make_line({"id": "A", "cycle_time": 1, "buffer_after": 2}, {"id": "B", "cycle_time": 1})
    with pytest.raises(SnapshotError, match=r"buffers\.A: level 3"):
        Engine(line, 0, LineSnapshot(buffers={"A": 3}))
    with pytest.raises(SnapshotError, match=r"stations\.X"):
        Engine(line, 0, LineSnapshot(stations={"X": StationSnapshot()}))
    with pytest.raises(SnapshotError, match=r"stations\.B\.machines\[0\]\.reason"):
        Engine(line, 0, LineSnapshot(stations={"B": StationSnapshot(machines=[MachineSnapshot(state=DOWN, reason="x")])}))
    with pytest.raises(SnapshotError, match=r"stations\.A\.lots"):
        Engine(line, 0, LineSnapshot(stations={"A": StationSnapshot(lots=[StoreLot(units=1, dwell_left_h=1)])}))


def test_changing_one_station_keeps_every_other_random_stream() -> None:
    fail = {"name": "f", "ttf": {"dist": "exponential", "mean": 5}, "ttr": {"dist": "exponential", "mean": 1}}
    a = {"id": "A", "cycle_time": {"dist": "exponential", "mean": 1}, "failures": [fail]}
    base = make_line(a, {"id": "B", "cycle_time": {"dist": "exponential", "mean": 0.5}})
    slower = make_line(a, {"id": "B", "cycle_time": {"dist": "exponential", "mean": 0.8}})
    _, ev1 = record(base, 200, seed=7)
    _, ev2 = record(slower, 200, seed=7)
    a1 = [e for e in ev1 if getattr(e, "station", None) == "A" and not isinstance(e, BufferLevel)]
    a2 = [e for e in ev2 if getattr(e, "station", None) == "A" and not isinstance(e, BufferLevel)]
    assert a1 == a2  # A never blocks (unbounded buffer), so its history is common to both scenarios
    assert _completions(ev1, "B") != _completions(ev2, "B")


def test_arrivals_feed_the_first_station() -> None:
    line = make_line({"id": "A", "cycle_time": 0.5}, arrival={"interarrival": 2, "lot": 3})
    kpis = run_once(line, hours=100, warmup=10)
    assert kpis.throughput_per_hour == pytest.approx(1.5, abs=0.03)
    assert kpis.stations["A"].state_fractions["starved"] == pytest.approx(0.25, abs=0.02)


def test_units_moved_at_once_cost_no_simpy_event() -> None:
    # A hand-over with room and a take from a stocked buffer finish at once: nobody waits on them, so they
    # must not make SimPy events (each would be scheduled and stepped for nothing, per unit moved).
    line = make_line({"id": "A", "cycle_time": 1, "buffer_after": 5}, {"id": "B", "cycle_time": 0.5})
    engine = Engine(line, 0)
    steps = 0
    step = engine.env.step

    def counted() -> None:
        nonlocal steps
        steps += 1
        step()

    engine.env.step = counted  # type: ignore[method-assign]
    engine.run(100.7)
    # per unit: A's cycle, B's cycle, and B's wait for A's unit (B is faster, so it is always starved)
    assert engine.sink.shipped == 100
    assert steps <= 3 * 100 + 5
