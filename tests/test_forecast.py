"""Forecasts from what telemetry knows, against exact results: residual repair and failure times, deterministic
lines, and the same distribution whichever way the knowledge was gathered."""

from __future__ import annotations

import math

import numpy as np
import pytest

from connectors.backtest import ORIGIN_MS, Wire
from tests.conftest import FAIL, MIXED_LINE, make_line, record
from twin.engine import Engine
from twin.events import Event, MachineState, StateChanged, StoreOccupancy
from twin.forecast import forecast
from twin.knowledge import KnowledgeBuilder, LineKnowledge, MachineKnowledge
from twin.residual import expected_within, residual_survival
from twin.sampler import sample_snapshots
from twin.schema import Line
from twin.simulate import run_once
from twin.state import LiveLine

FAR = {"dist": "exponential", "mean": 1e9}  # a next failure that never comes within a horizon


def _one_machine(failures: list[dict[str, object]], cycle: float = 0.1) -> Line:
    # the first station draws from unlimited supply and the last ships: a single machine never starves or blocks
    return make_line({"id": "M", "cycle_time": cycle, "failures": failures})


def _knowledge(
    line: Line,
    state: MachineState,
    since_h: float,
    reason: str = "",
    ages: dict[str, float | None] | None = None,
    worked: float = 0.0,
    down_from: MachineState | None = None,
    now: float = 100.0,
) -> LineKnowledge:
    spec = line.stations[0]
    mk = MachineKnowledge(
        state=state,
        since_h=since_h,
        reason=reason,
        cycle_worked_h=worked,
        ages_h=ages if ages is not None else dict.fromkeys(f.name for f in spec.failures),
        down_from=down_from,
    )
    return LineKnowledge(time_h=now, observed_since_h=0.0, machines={spec.id: (mk,)})


def _p_within(p_hat: float, p: float, n: int) -> bool:
    """Whether an estimated probability is within 4 standard errors of the exact one."""
    return abs(p_hat - p) <= 4 * math.sqrt(max(p * (1 - p), 1e-12) / n) + 1e-12


def test_a_machine_down_forecasts_its_repair_left_and_downtime_exactly() -> None:
    ttr = {"dist": "lognormal", "mean": 1.0, "sigma": 0.8}
    line = _one_machine([{"name": "jam", "ttf": FAR, "ttr": ttr}])
    mode = line.stations[0].failures[0]
    e, horizon, n = 0.6, 2.0, 2000  # down for 36 minutes so far
    k = _knowledge(line, MachineState.DOWN, since_h=100.0 - e, reason="jam", down_from=MachineState.WORKING)
    f = forecast(line, k, horizon, replications=n, seed=4)
    st = f.stations["M"]

    # expected machine-hours down within the horizon: the integral of S(e + u) / S(e) over it
    exact = expected_within(mode.ttr, e, horizon)
    u = np.linspace(0.0, horizon, 20001)
    second = float(np.trapezoid(2 * u * residual_survival(mode.ttr, e, u), u))  # E[min(R, H)^2]
    se = math.sqrt((second - exact**2) / n)
    assert abs(st.expected_downtime_h - exact) <= 4 * se, (st.expected_downtime_h, exact, se)

    # the repair left's quantiles: those of TTR - e given TTR > e (each within its binomial sampling error)
    assert st.repair_left_h is not None
    for p, q in ((0.5, st.repair_left_h["p50"]), (0.9, st.repair_left_h["p90"])):
        reached = 1.0 - float(residual_survival(mode.ttr, e, q))
        assert _p_within(reached, p, n), (p, q, reached)
    # a failure that far off does not come, and the machine is up again by the horizon unless the repair outlasts it
    assert st.p_failure == 0.0
    assert _p_within(st.p_down_at_horizon, float(residual_survival(mode.ttr, e, horizon)), n)


@pytest.mark.parametrize("basis", ["operating", "calendar"])
def test_a_working_machine_fails_within_the_horizon_as_its_age_says(basis: str) -> None:
    # Weibull shape 2.5, scale 10 h: at age 6 h the hazard is rising; the machine works the whole horizon
    ttf = {"dist": "weibull", "shape": 2.5, "scale": 10.0}
    line = _one_machine([{"name": "wear", "ttf": ttf, "ttr": 0.2, "basis": basis}])
    a, horizon, n = 6.0, 3.0, 2000
    k = _knowledge(line, MachineState.WORKING, since_h=100.0 - a, ages={"wear": a}, worked=0.05)
    f = forecast(line, k, horizon, replications=n, seed=5)
    exact = 1.0 - math.exp(-(((a + horizon) / 10.0) ** 2.5) + (a / 10.0) ** 2.5)
    assert _p_within(f.stations["M"].p_failure, exact, n), (f.stations["M"].p_failure, exact)
    # an unseen age is drawn from the equilibrium residual life, and the result says so
    unseen = forecast(line, _knowledge(line, MachineState.WORKING, since_h=99.0), horizon, replications=64, seed=5)
    assert unseen.assumptions["equilibrium_ages"] == 1
    assert f.assumptions["equilibrium_ages"] == 0


def test_a_deterministic_line_forecasts_its_output_exactly() -> None:
    # one machine, a 0.1 h cycle, 0.03 h into its cycle: units at 0.07, 0.17, ..., 0.97 h: 10 in the first hour,
    # then one every 0.1 h
    line = _one_machine([], cycle=0.1)
    k = _knowledge(line, MachineState.WORKING, since_h=99.0, worked=0.03)
    f = forecast(line, k, 2.5, replications=20, seed=1)
    assert f.good_output == {"mean": 25.0, "sd": 0.0, "p10": 25.0, "p50": 25.0, "p90": 25.0}
    assert [h["p50"] for h in f.hourly] == [10.0, 20.0, 25.0]
    assert [h["end"] for h in f.hourly] == [101.0, 102.0, 102.5]
    assert all(h["p10"] == h["p90"] for h in f.hourly)
    assert f.plan == {"target": 0.0, "p_meet": 1.0}
    assert forecast(line, k, 2.5, replications=20, seed=1, plan_per_hour=10.0).plan == {"target": 25.0, "p_meet": 1.0}
    assert forecast(line, k, 2.5, replications=20, seed=1, plan_target=26).plan == {"target": 26.0, "p_meet": 0.0}


DETERMINISTIC = make_line(
    {"id": "A", "cycle_time": 0.3, "lot": 2, "buffer_after": 4},
    {"id": "B", "machines": 2, "cycle_time": 1.1, "buffer_after": 3},
    {"id": "S", "kind": "delay", "capacity": 9, "dwell": 2.5, "buffer_after": 2},
    {"id": "C", "batch_size": 3, "cycle_time": 1.2},
)


def test_the_knowledge_of_a_deterministic_run_forecasts_what_its_own_snapshot_runs() -> None:
    """Fed a run's events, the knowledge gives back its state (no failures and constant cycles: nothing to draw
    but batch fills, which a run without starving batch machines does not have), so the forecast is the run."""
    engine = Engine(DETERMINISTIC, 0)
    builder = KnowledgeBuilder(DETERMINISTIC, 0.0)
    builder.attach(engine)
    engine.run(37.3)
    k = builder.at(37.3)
    truth = run_once(DETERMINISTIC, 9.0, seed=0, start=engine.snapshot())
    f = forecast(DETERMINISTIC, k, 9.0, replications=4, seed=2)
    assert f.good_output["p10"] == f.good_output["p90"] == truth.good


def test_knowledge_of_mixed_runs_forecasts_what_their_own_snapshots_run_on_average() -> None:
    """A run's snapshot holds what its events do not tell (the work left on each machine, its failure clocks): one
    particular draw of them, so replications from it are a forecast *given that draw*, not the distribution the
    knowledge of the events gives. Over many runs those draws average out: the forecast from each run's knowledge
    and the replications from its own snapshot agree in the mean of their differences (within four of its
    standard errors: a z-test at a one-in-15,000 false alarm rate)."""
    differences = []
    for h in range(60):
        engine, events = record(MIXED_LINE, 60.0, seed=(3, h))
        builder = KnowledgeBuilder(MIXED_LINE, 0.0)
        for ev in events:
            builder(ev)
        f = forecast(MIXED_LINE, builder.at(60.0), 6.0, replications=50, seed=h)
        snapshot = engine.snapshot()
        theirs = np.mean([run_once(MIXED_LINE, 6.0, seed=(11, h, i), start=snapshot).good for i in range(50)])
        differences.append(f.good_output["mean"] - theirs)
    d = np.array(differences)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert abs(d.mean()) <= 4 * se, (d.mean(), se)
    # the power: a bias of about 4 se (some 0.6 of the line's 4 units in 6 h) is caught; the snapshots' own spread
    # (each a different draw of what is hidden) is what limits it
    assert se < 0.2


def test_bad_forecasts_are_refused() -> None:
    line = _one_machine([])
    k = _knowledge(line, MachineState.WORKING, since_h=99.0)
    for horizon in (0.0, -1.0, 1e-300, 1e-9, 0.5 / 60, 7 * 24 + 0.5, math.nan):
        with pytest.raises(ValueError, match=r"horizon_h must be at least a minute \(0.01667 h\) and at most 168 h"):
            forecast(line, k, horizon)
    with pytest.raises(ValueError, match="replications must be at least 1"):
        forecast(line, k, 1.0, replications=0)


def _knowledge_through_the_wire(line: Line, events: list[Event], until: float) -> tuple[LineKnowledge, float]:
    """The knowledge of a run gathered as the service gathers it: the engine's events encoded as telemetry, decoded,
    taken into a live state, and read back from its retained history."""
    origin_h = ORIGIN_MS / 3_600_000
    live = LiveLine(line, begin_h=origin_h, history_h=until + 10)
    wire = Wire(line, live)
    for ev in events:
        wire(ev)
    builder = KnowledgeBuilder(line, origin_h)
    for ev in live.view().events(origin_h, origin_h + until + 1):
        builder(ev)
    return builder.at(origin_h + until), origin_h


def test_the_live_state_built_from_telemetry_knows_what_the_engines_events_tell() -> None:
    _engine, events = record(MIXED_LINE, 60.0, seed=3)
    direct = KnowledgeBuilder(MIXED_LINE, 0.0)
    for ev in events:
        direct(ev)
    a = direct.at(60.0)
    b, origin_h = _knowledge_through_the_wire(MIXED_LINE, events, 60.0)
    ms = 1 / 3_600_000  # the wire's timestamps are whole milliseconds
    assert b.buffers == a.buffers
    for sid, machines in a.machines.items():
        for ma, mb in zip(machines, b.machines[sid], strict=True):
            assert (mb.state, mb.reason, mb.down_from, mb.units) == (ma.state, ma.reason, ma.down_from, ma.units), sid
            assert mb.since_h - origin_h == pytest.approx(ma.since_h, abs=ms)
            assert mb.cycle_worked_h == pytest.approx(ma.cycle_worked_h, abs=4 * ms)
            for mode, age in ma.ages_h.items():
                assert (mb.ages_h[mode] is None) == (age is None)
                if age is not None:
                    assert mb.ages_h[mode] == pytest.approx(age, abs=1e-5)  # summed working spells, ms each
    for sid, sa in a.stores.items():
        sb = b.stores[sid]
        assert (sb.occupancy, sb.ready, sb.unknown_units) == (sa.occupancy, sa.ready, sa.unknown_units)
        assert [u for _, u in sb.entries] == [u for _, u in sa.entries]
        assert [t - origin_h for t, _ in sb.entries] == pytest.approx([t for t, _ in sa.entries], abs=ms)
    # and so the same forecast, up to the milliseconds
    fa = forecast(MIXED_LINE, a, 6.0, replications=64, seed=7)
    fb = forecast(MIXED_LINE, b, 6.0, replications=64, seed=7)
    assert fb.good_output["mean"] == pytest.approx(fa.good_output["mean"], abs=0.2)


def test_a_store_seeded_with_its_past_knows_when_its_units_entered() -> None:
    line = make_line(
        {"id": "A", "cycle_time": 0.1, "buffer_after": 5}, {"id": "S", "kind": "delay", "capacity": 50, "dwell": 3.0}
    )
    builder = KnowledgeBuilder(line)
    builder.seed_store("S", [(7.5, 4), (8.0, 6)])
    with pytest.raises(ValueError, match="oldest first"):
        KnowledgeBuilder(line).seed_store("S", [(8.0, 6), (7.5, 4)])
    builder(StateChanged(9.0, "A", 0, MachineState.WORKING, ""))
    k = builder.at(9.0)
    assert k.stores["S"].entries == ((7.5, 4), (8.0, 6))
    assert k.stores["S"].occupancy == 10
    assert k.stores["S"].unknown_units == 0
    # then its reports count what enters from there on: 3 more units at 9.2 h
    builder(StoreOccupancy(9.2, "S", 13, 0, False))
    assert builder.at(9.2).stores["S"].entries == ((7.5, 4), (8.0, 6), (9.2, 3))
    with pytest.raises(ValueError, match="has reported already"):
        builder.seed_store("S", [(1.0, 1)])


LONG_STORE = make_line(
    {"id": "A", "cycle_time": {"dist": "exponential", "mean": 0.05}, "failures": [FAIL], "buffer_after": 6},
    {"id": "S", "kind": "delay", "capacity": 400, "dwell": {"dist": "uniform", "low": 6.0, "high": 18.0}, "buffer_after": 5},
    {"id": "B", "cycle_time": {"dist": "exponential", "mean": 0.04}},
)


def test_a_stores_lots_beyond_the_horizon_start_as_one_and_runs_stay_the_same() -> None:
    """The lots that cannot leave within the horizon become one lot: the replications' events up to the horizon
    are the very same as from every lot on its own (same room held, none released)."""
    builder = KnowledgeBuilder(LONG_STORE, 0.0)
    _, events = record(LONG_STORE, 30.0, seed=4)
    for ev in events:
        builder(ev)
    k = builder.at(30.0)
    horizon = 2.0
    whole = sample_snapshots(LONG_STORE, k, np.random.default_rng(8), 3)
    merged = sample_snapshots(LONG_STORE, k, np.random.default_rng(8), 3, horizon_h=horizon)
    for a, b in zip(whole, merged, strict=True):
        lots_a, lots_b = a.snapshot.stations["S"].lots, b.snapshot.stations["S"].lots
        assert sum(x.units for x in lots_a) == sum(x.units for x in lots_b)
        assert len(lots_b) < len(lots_a)
        assert sum(x.dwell_left_h > horizon for x in lots_b) == 1
        assert sorted((x.dwell_left_h, x.units) for x in lots_a if x.dwell_left_h <= horizon) == sorted(
            (x.dwell_left_h, x.units) for x in lots_b if x.dwell_left_h <= horizon
        )
        runs = []
        for start in (a, b):
            out: list[Event] = []
            e = Engine(LONG_STORE, 5, start.snapshot)
            e.subscribe(out.append)
            e.run(30.0 + horizon)
            runs.append(out)
        assert runs[0] == runs[1]
        assert any(isinstance(ev, StoreOccupancy) for ev in runs[0])


def test_a_store_reported_over_its_capacity_loses_its_oldest_units_first() -> None:
    from twin.sampler import _lots

    def pairs(capacity: int, horizon: float | None = None) -> list[tuple[int, float]]:
        lots = _lots(capacity, np.array([5, 3, 4]), np.array([1.0, 2.0, 3.0]), horizon)
        return [(x.units, x.dwell_left_h) for x in lots]

    assert pairs(12) == [(5, 1.0), (3, 2.0), (4, 3.0)]
    assert pairs(6) == [(2, 2.0), (4, 3.0)]
    assert pairs(4) == [(4, 3.0)]
    assert pairs(0) == []
    assert pairs(12, horizon=1.5) == [(5, 1.0), (7, 2.0)]
    assert pairs(12, horizon=2.5) == [(5, 1.0), (3, 2.0), (4, 3.0)]  # one lot beyond: nothing to merge


def test_a_trusted_snapshot_is_the_model_its_values_validate_to() -> None:
    from pydantic import ValidationError

    from twin.snapshot import MachineSnapshot, trusted

    values = {
        "state": MachineState.DOWN,
        "units": 3,
        "finished": True,
        "work_left_h": 0.0,
        "repair_left_h": 1.5,
        "reason": "jam",
        "ttf_left_h": {"jam": 4.0},
        "setup_left_h": 0.0,
        "units_since_changeover": 12,
        "changeover_due": False,
        "micro_stop_left_h": 0.25,
    }
    assert set(values) == set(MachineSnapshot.model_fields), "the test gives every field, as the sampler must"
    fast = trusted(MachineSnapshot, dict(values))
    assert fast == MachineSnapshot(**values)
    assert fast.model_dump() == MachineSnapshot(**values).model_dump()
    assert fast.model_fields_set == set(values)
    with pytest.raises(ValidationError, match="frozen"):
        fast.units = 4
