"""Observations of failures, repairs and cycle times from a line's events: exact values on hand-written histories,
and the line file's means recovered from the engine's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FAIL, make_line
from tests.test_properties import lines
from twin.engine import Engine
from twin.events import MachineState, StateChanged, UnitsCompleted
from twin.kpis import KpiReducer
from twin.observations import LineObservations, ModeObservations, ObservationBuilder, ObservationError
from twin.schema import Line

W, S, B, D = MachineState.WORKING, MachineState.STARVED, MachineState.BLOCKED, MachineState.DOWN

JAM = {"name": "jam", "ttf": {"dist": "exponential", "mean": 5}, "ttr": {"dist": "exponential", "mean": 0.5}}
PM = {"name": "pm", "basis": "calendar", "ttf": {"dist": "exponential", "mean": 50}, "ttr": 1.0}
LINE = make_line(
    {"id": "M", "machines": 2, "cycle_time": 0.1, "failures": [JAM, PM], "buffer_after": 5},
    {"id": "ST", "kind": "delay", "capacity": 4, "dwell": 1.0, "buffer_after": 5},
    {"id": "BAT", "batch_size": 3, "cycle_time": 1.2, "scrap": 0.1},
)


def _feed(builder: ObservationBuilder, station: str, machine: int, history: list[tuple[float, MachineState, str]]) -> None:
    for t, state, reason in history:
        builder(StateChanged(t, station, machine, state, reason))


def _check(m: ModeObservations, ttf: list[tuple[float, bool]], ttr: list[tuple[float, bool]]) -> None:
    assert m.ttf_durations.tolist() == pytest.approx([d for d, _ in ttf], abs=1e-12), m.ttf_durations
    assert m.ttf_observed.tolist() == [o for _, o in ttf]
    assert m.ttr_durations.tolist() == pytest.approx([d for d, _ in ttr], abs=1e-12), m.ttr_durations
    assert m.ttr_observed.tolist() == [o for _, o in ttr]
    assert m.ttf_durations.dtype == np.float64
    assert m.ttf_observed.dtype == np.bool_


def test_operating_and_calendar_clocks_run_from_their_own_last_repair() -> None:
    b = ObservationBuilder(LINE, 0.0)
    _feed(
        b,
        "M",
        0,
        [
            (0.0, W, ""),
            (1.0, D, "jam"),  # the first jam: its clock began before the window (left-truncated)
            (1.5, W, ""),  # jam repaired (0.5 h): its clock starts at 1.0 working hours
            (3.0, S, ""),
            (3.5, S, ""),  # a heartbeat: nothing changes
            (4.0, W, ""),
            (5.0, B, ""),
            (6.0, W, ""),
            (7.0, D, "pm"),  # the first pm; jam's clock does not run while down (nor starved, nor blocked)
            (9.0, W, ""),  # pm repaired (2 h): its calendar clock starts at 9
            (10.0, D, "jam"),  # 5.5 working hours in all: jam's clock reads 4.5 (the pm repair did not reset it)
            (10.25, S, ""),
            (12.0, W, ""),
            (13.0, D, "pm"),  # pm's clock: 13 - 9 = 4 calendar hours
            (14.0, W, ""),
        ],
    )
    obs = b.result(15.0)
    assert isinstance(obs, LineObservations)
    assert (obs.start_h, obs.end_h) == (0.0, 15.0)
    jam, pm = obs.mode("M", "jam"), obs.mode("M", "pm")
    # at 15 h: 7.5 working hours, jam repaired at 5.5 of them, pm at 14
    _check(jam, ttf=[(4.5, True), (2.0, False)], ttr=[(0.5, True), (0.25, True)])
    _check(pm, ttf=[(4.0, True), (1.0, False)], ttr=[(2.0, True), (1.0, True)])
    assert (jam.basis, jam.known, jam.failures, jam.censored) == ("operating", True, 2, 1)
    assert (pm.basis, pm.known, pm.failures, pm.censored) == ("calendar", True, 2, 1)
    assert (jam.ttf_complete, jam.ttr_complete, jam.ttr_censored) == (1, 2, 0)
    assert obs.stations["M"].working_h == pytest.approx(7.5)
    assert [m.mode for m in obs.stations["M"].modes] == ["jam", "pm"]
    with pytest.raises(ValueError, match="read-only"):
        jam.ttf_durations[0] = 0.0


def test_repairs_at_the_edges_unknown_reasons_and_a_change_of_reason_while_down() -> None:
    history = [
        (10.0, 0, D, "jam"),  # under repair when the history begins: its start is unknown, no TTR
        (10.0, 1, W, ""),
        (10.5, 1, D, "power_cut"),  # not in the line file: its own mode, on the calendar basis
        (11.0, 0, W, ""),  # the repair's end is known: jam's clock starts
        (11.0, 1, D, "jam"),  # the reason changes while down: the power cut's repair ends, a jam begins
        (12.0, 1, S, ""),
        (13.0, 0, D, "power_cut"),
        (13.5, 0, W, ""),
        (14.0, 0, D, "jam"),  # jam: 2.5 working hours
    ]
    b = ObservationBuilder(LINE, 10.0)
    for t, machine, state, reason in history:
        b(StateChanged(t, "M", machine, state, reason))
    obs = b.result(15.0)  # machine 0's jam repair is still under way: censored at 1 h
    jam, pm, cut = obs.stations["M"].modes
    assert (jam.mode, pm.mode, cut.mode) == ("jam", "pm", "power_cut")
    # machine 1: jam's clock from 12 h on, at 0.5 working hours, never counting since (starved)
    _check(jam, ttf=[(2.5, True), (0.0, False)], ttr=[(1.0, True), (1.0, False)])
    assert (jam.failures, jam.censored) == (2, 1)
    _check(pm, ttf=[], ttr=[])
    assert (pm.failures, pm.censored) == (0, 0)
    # the power cut: machine 0's clock runs from 13.5 (1.5 h at the end), machine 1's from 11 (4 h)
    _check(cut, ttf=[(1.5, False), (4.0, False)], ttr=[(0.5, True), (0.5, True)])
    assert (cut.basis, cut.known, cut.failures, cut.censored) == ("calendar", False, 2, 2)
    assert obs.stations["M"].working_h == pytest.approx(2.5 + 0.5)


def test_cycle_time_counts_work_between_completions_per_batch_or_per_unit() -> None:
    events = [
        UnitsCompleted(0.2, "BAT", 0, 2, 0),  # the state is not known yet: processed, but no cycle
        StateChanged(0.5, "BAT", 0, S, ""),
        StateChanged(1.0, "BAT", 0, W, ""),
        UnitsCompleted(2.2, "BAT", 0, 3, 0),  # the first counted completion: its work may have begun before
        StateChanged(2.2, "BAT", 0, S, ""),
        StateChanged(3.0, "BAT", 0, W, ""),
        UnitsCompleted(4.2, "BAT", 0, 2, 1),
        StateChanged(4.2, "BAT", 0, S, ""),
        StateChanged(5.0, "BAT", 0, W, ""),
        UnitsCompleted(5.6, "ST", 0, 4, 1),  # a store: counts only
        # the line's first station: unit cycles, one of them interrupted by a repair
        StateChanged(0.0, "M", 0, W, ""),
        UnitsCompleted(0.1, "M", 0, 1, 0),
        UnitsCompleted(0.2, "M", 0, 1, 0),
        StateChanged(0.25, "M", 0, D, "jam"),
        StateChanged(1.25, "M", 0, W, ""),
        UnitsCompleted(1.3, "M", 0, 0, 1),
    ]
    b = ObservationBuilder(LINE, 0.0)
    for ev in sorted(events, key=lambda e: e.t):
        b(ev)
    obs = b.result(6.0)  # BAT works on a batch at the end: 1 h of working not counted for the cycle
    bat = obs.stations["BAT"]
    assert (bat.good, bat.scrap, bat.processed) == (7, 1, 8)
    assert (bat.cycle_units, bat.cycle_working_h, bat.working_h) == (3, pytest.approx(1.2), pytest.approx(3.4))
    assert bat.cycle_time_h == pytest.approx(1.2)  # per batch: 1.2 working hours x 3 / 3 units
    assert bat.modes == ()
    m = obs.stations["M"]
    assert (m.cycle_units, m.cycle_working_h, m.processed, m.scrap) == (2, pytest.approx(0.2), 3, 1)
    assert m.cycle_time_h == pytest.approx(0.1)
    store = obs.stations["ST"]
    assert (store.good, store.scrap, store.working_h, store.cycle_time_h) == (4, 1, 0.0, None)
    assert obs.stations["M"].modes[0].ttr_durations.tolist() == [1.0]


def test_results_can_be_asked_more_than_once_as_the_events_go_on() -> None:
    b = ObservationBuilder(LINE, 0.0)
    _feed(b, "M", 0, [(0.0, D, "jam"), (1.0, W, "")])
    first = b.result(3.0)
    assert first.mode("M", "jam").ttf_durations.tolist() == [2.0]
    _feed(b, "M", 0, [(4.0, D, "jam")])
    again = b.result(4.5)
    _check(again.mode("M", "jam"), ttf=[(3.0, True)], ttr=[(0.5, False)])
    assert first.mode("M", "jam").ttf_observed.tolist() == [False]  # the first result is unchanged


def test_events_that_cannot_be_the_lines_are_refused_with_where() -> None:
    b = ObservationBuilder(LINE, 5.0)
    with pytest.raises(ObservationError, match="before the window's start"):
        b(StateChanged(4.0, "M", 0, W, ""))
    b(StateChanged(6.0, "M", 0, W, ""))
    with pytest.raises(ObservationError, match=r"after one at t=6.0 h"):
        b(StateChanged(5.5, "M", 0, W, ""))
    with pytest.raises(ObservationError, match="'X' is not in line 'test'"):
        b(UnitsCompleted(7.0, "X", 0, 1, 0))
    with pytest.raises(ObservationError, match=r"2 machine.*no machine 2"):
        b(StateChanged(7.0, "M", 2, W, ""))
    with pytest.raises(ObservationError, match="before the last event"):
        b.result(6.5)
    with pytest.raises(KeyError, match="no failure mode 'nope'"):
        b.result(8.0).mode("M", "nope")


def _within(sample: np.ndarray, mean: float, sd: float) -> bool:
    """Whether a sample's mean is within 4 standard errors of ``mean``."""
    return bool(abs(sample.mean() - mean) <= 4 * sd / math.sqrt(sample.size))


def test_the_engines_history_gives_back_the_line_files_means() -> None:
    ttf, ttr, cycle = 5.0, 0.5, 0.1
    line = make_line(
        {
            "id": "M",
            "cycle_time": {"dist": "exponential", "mean": cycle},
            "failures": [
                {"name": "jam", "ttf": {"dist": "exponential", "mean": ttf}, "ttr": {"dist": "exponential", "mean": ttr}}
            ],
        }
    )
    b = ObservationBuilder(line, 0.0)
    engine = Engine(line, 7)
    b.attach(engine)
    engine.run(2000.0)
    obs = b.result(2000.0)
    jam = obs.mode("M", "jam")
    complete_ttf = jam.ttf_durations[jam.ttf_observed]
    complete_ttr = jam.ttr_durations[jam.ttr_observed]
    assert complete_ttf.size > 300
    assert jam.failures == complete_ttf.size + 1
    assert jam.ttr_durations.size == jam.failures
    assert jam.ttr_censored <= 1
    assert jam.ttf_durations.size == complete_ttf.size + jam.censored
    assert jam.censored == 1 - jam.ttr_censored
    # exponential: the standard deviation is the mean
    assert _within(complete_ttf, ttf, ttf), complete_ttf.mean()
    assert _within(complete_ttr, ttr, ttr), complete_ttr.mean()
    m = obs.stations["M"]
    assert m.cycle_time_h is not None
    assert m.cycle_units > 10_000
    assert abs(m.cycle_time_h - cycle) <= 4 * cycle / math.sqrt(m.cycle_units), m.cycle_time_h
    # a lone machine fed without limit and shipping at once is working or down: its working hours are the rest
    downtime = complete_ttr.sum() + jam.ttr_durations[~jam.ttr_observed].sum()
    assert m.working_h == pytest.approx(2000.0 - downtime)


def test_a_batch_station_with_calendar_failures_books_exactly_its_work() -> None:
    # a deterministic batch cycle interrupted by calendar failures, behind a station that starves and blocks it
    line = make_line(
        {"id": "A", "cycle_time": {"dist": "exponential", "mean": 0.4}, "failures": [FAIL], "buffer_after": 3},
        {"id": "C", "batch_size": 3, "cycle_time": 1.2, "failures": [{**FAIL, "basis": "calendar"}], "scrap": 0.1},
    )
    b = ObservationBuilder(line, 0.0)
    engine = Engine(line, 3)
    b.attach(engine)
    engine.run(300.0)
    obs = b.result(300.0)
    c = obs.stations["C"]
    assert c.cycle_units > 300
    assert c.cycle_time_h == pytest.approx(1.2, rel=1e-9)
    assert c.modes[0].failures > 20
    assert c.modes[0].basis == "calendar"
    assert obs.stations["A"].modes[0].ttf_complete > 20


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=lines(), seed=st.integers(0, 2**32 - 1))
def test_observations_add_up_to_the_kpis_state_times_and_counts(line: Line, seed: int) -> None:
    """On random small lines: durations are finite and non-negative; every failure seen begins one repair; the
    repairs add up to the time down and the working hours to the time working that the KPIs count; units agree."""
    end = 60.0
    engine = Engine(line, seed)
    b = ObservationBuilder(line, 0.0)
    b.attach(engine)
    reducer = KpiReducer(line, 0.0, end)
    engine.subscribe(reducer)
    engine.run(end)
    obs, kpis = b.result(end), reducer.result()
    for spec in line.stations:
        s, k = obs.stations[spec.id], kpis.stations[spec.id]
        assert (s.good, s.scrap) == (k.good, k.scrapped)
        if spec.kind == "delay":
            continue
        machine_h = spec.machines * end
        assert s.working_h == pytest.approx(k.state_fractions["working"] * machine_h, abs=1e-6)
        assert 0.0 <= s.cycle_working_h <= s.working_h + 1e-9
        down = 0.0
        for m in s.modes:
            assert m.known
            for d in (m.ttf_durations, m.ttr_durations):
                assert np.all(np.isfinite(d))
                assert np.all(d >= -1e-9)
            assert m.ttr_durations.size == m.failures  # every machine's first state is known, and not DOWN
            down += float(m.ttr_durations.sum())
        assert down == pytest.approx(k.state_fractions["down"] * machine_h, abs=1e-6)
