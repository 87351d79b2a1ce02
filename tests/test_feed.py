"""The virtual plant: what it publishes decodes and reproduces the engine, process values follow their signals,
condition signals rise before failures, pacing follows the wall clock, and faults are injected as recorded."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from typing import Any

import pytest

from api.settings import Settings
from api.telemetry_commands import FEED_WARMUP_H
from connectors.faults import FaultInjector, FaultKind, Faults, Malformation
from connectors.feed import FeedClock, VirtualPlant, parse_origin, warm_start
from connectors.linefile import read_line
from connectors.publishing import CollectingPublisher
from connectors.telemetry import (
    MS_PER_HOUR,
    Channel,
    CountsReading,
    ProcessReading,
    Reading,
    StateReading,
    TelemetryError,
    Topics,
    decode,
    reading_events,
)
from tests.conftest import LINES, make_line
from twin.counters import CumulativeCounters
from twin.engine import Engine
from twin.events import MachineState
from twin.kpis import KpiReducer, RunKpis, initial_wip
from twin.schema import Line
from twin.simulate import run_once

ORIGIN = 1_763_900_000_000  # a fixed wall-clock origin (ms since the epoch)
ORIGIN_H = ORIGIN / MS_PER_HOUR
REFERENCE = read_line(LINES / "reference_cell_line.yaml")

VIBRATION = {"unit": "mm/s", "nominal": 2.0, "normal": [1.0, 3.0], "condition": True}
_JAM = {"name": "jam", "ttf": {"dist": "exponential", "mean": 3}, "ttr": {"dist": "lognormal", "mean": 0.3, "sigma": 0.8}}
_BREAK = {"name": "burnout", "ttf": {"dist": "exponential", "mean": 20}, "ttr": 1.0, "basis": "calendar"}
# A small line in hours with every kind of station and message: arrivals (input), lots, failures (both bases), a
# batch station, a store (store messages), scrap everywhere, buffers, and signals of each sort.
LINE = make_line(
    {
        "id": "CUT",
        "machines": 2,
        "cycle_time": {"dist": "exponential", "mean": 0.05},
        "lot": 4,
        "failures": [_JAM],
        "scrap": 0.02,
        "buffer_after": 40,
        "signals": {
            "line_speed_m_min": {"unit": "m/min", "nominal": 30, "normal": [28, 32]},
            "knife_temp_c": {"unit": "degC", "nominal": 25, "normal": [20, 30]},
            "vibration_mm_s": VIBRATION,
        },
    },
    {
        "id": "OVEN",
        "machines": 3,
        "batch_size": 20,
        "batch_timeout": 0.5,
        "cycle_time": 1.5,
        "failures": [_BREAK],
        "buffer_after": 50,
    },
    {
        "id": "REST",
        "kind": "delay",
        "capacity": 100,
        "dwell": 2,
        "scrap": 0.01,
        "buffer_after": 20,
        "signals": {"store_temp_c": {"unit": "degC", "nominal": 30, "normal": [25, 45]}},
    },
    {
        "id": "TEST",
        "machines": 2,
        "cycle_time": 0.04,
        "lot": 2,
        "scrap": 0.03,
        "failures": [_JAM],
        "signals": {"ocv_v": {"unit": "V", "nominal": 3.6, "normal": [3.5, 3.7], "noise": 0.02}},
    },
    arrival={"interarrival": {"dist": "exponential", "mean": 0.03}, "lot": 2},
)
TOPICS = Topics("acme", "plant1", "test")


def _plant(line: Line, publisher: Any, **kw: Any) -> VirtualPlant:
    kw.setdefault("seed", 3)
    kw.setdefault("origin_ms", ORIGIN)
    return VirtualPlant(line, topics=Topics("acme", "plant1", line.name), publisher=publisher, **kw)


def _readings(line: Line, messages: list[tuple[str, bytes]]) -> list[Reading]:
    topics = Topics("acme", "plant1", line.name)
    out = []
    for topic, payload in messages:
        source, channel = topics.parse(topic)
        out.append(decode(source, channel, payload))
    return out


def _kpis_from_wire(line: Line, readings: list[Reading], hours: float, wip0: int = 0) -> RunKpis:
    reducer = KpiReducer(line, ORIGIN_H, ORIGIN_H + hours, begin_h=ORIGIN_H, wip0=wip0)
    counters = CumulativeCounters()
    for r in readings:
        for ev in reading_events(r, counters):
            reducer(ev)  # refuses an event older than the last: the feed publishes in time order
    return reducer.result()


def _assert_same_kpis(wire: RunKpis, engine: RunKpis, *, stores: bool = True) -> None:
    assert (wire.good, wire.scrapped, wire.started) == (engine.good, engine.scrapped, engine.started)
    assert wire.throughput_per_hour == engine.throughput_per_hour
    assert wire.bottleneck == engine.bottleneck
    for sid, ours in wire.stations.items():
        theirs = engine.stations[sid]
        assert (ours.good, ours.scrapped) == (theirs.good, theirs.scrapped), sid
        if stores or sid not in {"REST", "WET", "AGE"}:
            for key, value in ours.state_fractions.items():
                # timestamps are whole milliseconds: 1 ms is 2.8e-7 h, rounding errors average out below that
                assert value == pytest.approx(theirs.state_fractions.get(key, 0.0), abs=1e-6), (sid, key)
    for sid, buf in wire.buffers.items():
        assert buf.mean_level == pytest.approx(engine.buffers[sid].mean_level, rel=1e-5, abs=1e-3), sid


# -- the reference line's signals -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["reference_cell_line.yaml", "reference_cell_line_rampup.yaml"])
def test_reference_lines_carry_signals_and_condition_signals(name: str) -> None:
    line = read_line(LINES / name)
    for st in line.stations:
        assert 2 <= len(st.signals) <= 6, st.id
        conditions = [n for n, s in st.signals.items() if s.condition]
        assert bool(conditions) == bool(st.failures), st.id  # condition signals exactly where failures are modelled
    assert {st.id: st.signals for st in line.stations} == {st.id: st.signals for st in REFERENCE.stations}


# -- the wire reproduces the engine ---------------------------------------------------------------------------
def test_every_message_decodes_and_the_counters_start_from_a_zero_baseline() -> None:
    pub = CollectingPublisher()
    plant = _plant(REFERENCE, pub, process_period_s=10.0)
    plant.run_unpaced(6.0)
    readings = _readings(REFERENCE, pub.messages)
    channels = Counter(t.rsplit("/", 1)[1] for t, _ in pub.messages)
    assert plant.stats().messages == {c.value: channels.get(c.value, 0) for c in Channel}
    machines = sum(s.machines for s in REFERENCE.stations)
    baseline = readings[: machines + 1]  # every machine's counters, and the first station's input counter
    assert all(r.ts_ms == ORIGIN - 1 for r in baseline)
    assert {(r.source.station, r.machine) for r in baseline} == {(s.id, m) for s in REFERENCE.stations for m in range(s.machines)}
    assert all(r.ts_ms >= ORIGIN for r in readings[machines + 1 :])
    assert max(r.ts_ms for r in readings) <= ORIGIN + 6 * MS_PER_HOUR
    assert [r.ts_ms for r in readings] == sorted(r.ts_ms for r in readings)


def test_the_reference_lines_telemetry_reproduces_the_engines_kpis() -> None:
    hours = 20.3  # off the constant cycle times' grid, so that no event falls on the window's end
    pub = CollectingPublisher()
    _plant(REFERENCE, pub, seed=5, process_period_s=60.0).run_unpaced(hours)
    _assert_same_kpis(_kpis_from_wire(REFERENCE, _readings(REFERENCE, pub.messages), hours), run_once(REFERENCE, hours, seed=5))


def test_a_small_lines_telemetry_reproduces_the_engines_kpis_from_empty_and_from_a_snapshot() -> None:
    hours = 30.0
    pub = CollectingPublisher()
    _plant(LINE, pub, seed=7).run_unpaced(hours)
    wire = _kpis_from_wire(LINE, _readings(LINE, pub.messages), hours)
    engine = run_once(LINE, hours, seed=7)
    assert engine.good > 500
    _assert_same_kpis(wire, engine)

    warm = Engine(LINE, seed=1)
    warm.run(25.0)
    snap = warm.snapshot()
    pub = CollectingPublisher()
    _plant(LINE, pub, seed=7, start=snap).run_unpaced(hours)
    readings = _readings(LINE, pub.messages)
    assert {r.source.station for r in readings if r.ts_ms == ORIGIN and r.source.station in snap.buffers} == set(snap.buffers)
    wire = _kpis_from_wire(LINE, readings, hours, wip0=initial_wip(snap))
    # twin.kpis starts a store's occupancy integral at 0 until the store's first event, the feed publishes the
    # snapshot's contents at the origin: the store's fractions differ, everything else agrees
    _assert_same_kpis(wire, run_once(LINE, hours, seed=7, start=snap), stores=False)


# -- process values -------------------------------------------------------------------------------------------
def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _down_intervals(readings: list[Reading]) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """Per machine, the [from, to) timestamps of its DOWN periods."""
    out: dict[tuple[str, int], list[tuple[int, int]]] = {}
    since: dict[tuple[str, int], int] = {}
    for r in readings:
        if isinstance(r, StateReading):
            key = (r.source.station, r.machine)
            if r.state is MachineState.DOWN:
                since.setdefault(key, r.ts_ms)
            elif key in since:
                out.setdefault(key, []).append((since.pop(key), r.ts_ms))
    for key, t in since.items():
        out.setdefault(key, []).append((t, 2**62))
    return out


def _is_down(intervals: list[tuple[int, int]], ts: int) -> bool:
    return any(a <= ts < b for a, b in intervals)


def test_process_values_scatter_around_nominal_as_their_noise_says() -> None:
    pub = CollectingPublisher()
    _plant(REFERENCE, pub, seed=2).run_unpaced(8.0)  # one message per station per simulated minute
    readings = _readings(REFERENCE, pub.messages)
    down = _down_intervals(readings)
    samples: dict[tuple[str, str], list[float]] = {}
    stopped: list[float] = []
    for r in readings:
        if not isinstance(r, ProcessReading) or r.machine != 0:
            continue
        is_down = _is_down(down.get((r.source.station, 0), []), r.ts_ms)
        for name, value, unit in r.values:
            spec = REFERENCE.station(r.source.station).signals[name]
            assert unit == spec.unit
            if is_down and unit in {"m/min", "rpm", "mm/s", "A"}:
                stopped.append(value)
            elif not spec.condition and not is_down:
                samples.setdefault((r.source.station, name), []).append(value)
    assert set(stopped) <= {0.0}  # a DOWN machine's speeds, vibration and currents read 0
    assert len(samples) == sum(len([s for s in st.signals.values() if not s.condition]) for st in REFERENCE.stations)
    for (sid, name), values in samples.items():
        spec = REFERENCE.station(sid).signals[name]
        mu, sigma, (low, high) = spec.nominal, spec.sigma, spec.normal
        n = len(values)
        assert n > 400, (sid, name)
        # the expected mean and tails of nominal + N(0, sigma), clipped at 0 when the normal range is non-negative
        if low >= 0:
            a = mu / sigma
            mean = mu * _normal_cdf(a) + sigma * math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
        else:
            mean = mu
        below = 0.0 if low == 0 else _normal_cdf((low - mu) / sigma)  # clipped at 0 = low: inside the range
        p_out = below + 1.0 - _normal_cdf((high - mu) / sigma)
        avg = sum(values) / n
        assert abs(avg - mean) < 4.5 * sigma / math.sqrt(n), (sid, name, avg, mean)
        outside = sum(1 for v in values if not low <= v <= high)
        assert abs(outside - n * p_out) <= 4.5 * math.sqrt(n * p_out * (1 - p_out)) + 1, (sid, name, outside, n * p_out)
        sd = math.sqrt(sum((v - avg) ** 2 for v in values) / (n - 1))
        assert sd == pytest.approx(sigma, rel=0.25), (sid, name)


def test_the_noise_is_reproducible_and_depends_on_the_seed() -> None:
    runs = []
    for seed in (4, 4, 5):
        pub = CollectingPublisher()
        _plant(LINE, pub, seed=seed).run_unpaced(2.0)
        runs.append([m for m in pub.messages if m[0].endswith("/process")])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_a_condition_signal_rises_in_the_hour_before_each_failure() -> None:
    tau, gain, lookahead = 1.0, 3.0, 4.0
    line = make_line(
        {
            "id": "MILL",
            "machines": 4,
            "cycle_time": 0.01,
            "failures": [
                {"name": "bearing", "ttf": {"dist": "exponential", "mean": 2}, "ttr": {"dist": "exponential", "mean": 0.2}}
            ],
            "signals": {"vibration_mm_s": VIBRATION},
        }
    )
    pub = CollectingPublisher()
    hours = 60.0
    _plant(line, pub, seed=9, lookahead_h=lookahead, condition_gain=gain, condition_tau_h=tau).run_unpaced(hours)
    readings = _readings(line, pub.messages)
    failures: dict[int, list[int]] = {}
    for r in readings:
        if isinstance(r, StateReading) and r.state is MachineState.DOWN:
            failures.setdefault(r.machine, []).append(r.ts_ms)
    down = _down_intervals(readings)
    assert sum(len(f) for f in failures.values()) > 80
    sigma, rise = 1.0 / 3.0, gain * 1.0  # default noise (3 - 1) / 6; the rise at the failure: gain x (high - low) / 2
    before: list[float] = []
    elsewhere: list[float] = []
    residuals: list[float] = []
    while_down: list[float] = []
    for r in readings:
        if not isinstance(r, ProcessReading):
            continue
        (_name, value, _unit) = r.values[0]
        if _is_down(down.get(("MILL", r.machine), []), r.ts_ms):
            while_down.append(value)
            continue
        lead = min((f - r.ts_ms for f in failures.get(r.machine, []) if f > r.ts_ms), default=2**62) / MS_PER_HOUR
        (before if lead <= 1.0 else elsewhere).append(value)
        if lead <= lookahead:
            residuals.append(value - 2.0 - rise * math.exp(-lead / tau))
        elif lead > lookahead + 1.0 and r.ts_ms < ORIGIN + (hours - lookahead - 1.0) * MS_PER_HOUR:
            # beyond what the engine had run ahead to: no drift (near the end, failures after it are unseen here)
            residuals.append(value - 2.0)
    assert len(while_down) > 100
    assert set(while_down) == {0.0}
    se = sigma * math.sqrt(1 / len(before) + 1 / len(elsewhere))
    diff = sum(before) / len(before) - sum(elsewhere) / len(elsewhere)
    # over the last hour the mean rise is gain x (1 - e^-1) = 1.9 mm/s, far beyond the noise
    assert diff > 10 * se
    assert diff > 0.5 * rise * (1 - math.exp(-1))
    # and the values follow the model: nominal + drift + N(0, sigma)
    n = len(residuals)
    mean = sum(residuals) / n
    assert abs(mean) < 4.5 * sigma / math.sqrt(n)
    assert math.sqrt(sum((x - mean) ** 2 for x in residuals) / (n - 1)) == pytest.approx(sigma, rel=0.05)


# -- pacing ---------------------------------------------------------------------------------------------------
class FakeClock:
    """A monotonic clock that moves only when slept on (or when a slow publisher spends time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


class TimedPublisher(CollectingPublisher):
    """Keeps the clock reading of each message; spends ``cost`` seconds per message before ``slow_until``."""

    def __init__(self, clock: FakeClock, cost: float = 0.0, slow_until: float = 0.0) -> None:
        super().__init__()
        self.clock, self.cost, self.slow_until = clock, cost, slow_until
        self.walls: list[float] = []

    def publish(self, topic: str, payload: bytes) -> None:
        if self.clock.now < self.slow_until:
            self.clock.now += self.cost
        self.walls.append(self.clock.now)
        super().publish(topic, payload)


def _due_wall(payload: bytes, wall0: float, speed: float) -> float:
    ts: int = json.loads(payload)["ts"]
    return wall0 + (ts - ORIGIN) / 1000 / speed


def test_a_paced_run_publishes_each_message_when_its_time_comes() -> None:
    speed, hours = 60.0, 0.5
    clock = FakeClock()
    wall0 = clock.now
    pub = TimedPublisher(clock)
    plant = _plant(LINE, pub, speed=speed, clock=clock, sleep=clock.sleep)
    plant.run(until_h=hours)
    assert clock.now == pytest.approx(wall0 + hours * 3600 / speed)  # 0.5 h at x60 takes 30 s
    for wall, (_topic, payload) in zip(pub.walls, pub.messages, strict=True):
        # never early, never late (the fake publisher takes no time); ts are whole ms of simulated time
        assert wall == pytest.approx(max(_due_wall(payload, wall0, speed), wall0), abs=1e-4)
    stats = plant.stats()
    assert stats.slices > 10
    assert stats.late_slices == 0
    assert stats.max_lag_s < 1e-6
    assert stats.simulated_h == hours
    unpaced = CollectingPublisher()
    _plant(LINE, unpaced).run_unpaced(hours)
    assert pub.messages == unpaced.messages  # the same messages in the same order, paced or not


def test_a_run_that_falls_behind_catches_up_without_drift_and_counts_the_lag() -> None:
    speed, hours = 60.0, 1.0
    clock = FakeClock()
    wall0 = clock.now
    pub = TimedPublisher(clock, cost=0.5, slow_until=wall0 + 10.0)  # a broker that is slow for the first 10 s
    plant = _plant(LINE, pub, speed=speed, clock=clock, sleep=clock.sleep)
    plant.run(until_h=hours)
    stats = plant.stats()
    assert stats.late_slices > 0
    assert stats.max_lag_s > 5.0
    assert stats.lag_s < 1e-6  # caught up by the end
    assert clock.now == pytest.approx(wall0 + hours * 3600 / speed)
    lateness = [wall - _due_wall(p, wall0, speed) for wall, (_t, p) in zip(pub.walls, pub.messages, strict=True)]
    assert min(lateness) > -1e-4  # never early
    assert max(lateness) > 5.0
    caught_up = [late for wall, late in zip(pub.walls, lateness, strict=True) if wall > wall0 + 40]
    assert caught_up
    assert max(caught_up) < 1e-4
    unpaced = CollectingPublisher()
    _plant(LINE, unpaced).run_unpaced(hours)
    assert pub.messages == unpaced.messages  # nothing skipped while catching up


def test_a_real_time_run_stops_when_asked_and_reports_from_another_thread() -> None:
    pub = CollectingPublisher()
    plant = _plant(LINE, pub, speed=3600.0, process_period_s=0.05)  # a simulated hour per wall second
    stop = threading.Event()
    worker = threading.Thread(target=plant.run, kwargs={"stop": stop}, daemon=True)
    started = time.monotonic()
    worker.start()
    time.sleep(0.5)
    seen = plant.stats()
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert seen.messages["process"] > 0
    elapsed = time.monotonic() - started
    assert 0.2 < plant.stats().simulated_h <= elapsed + 0.1  # x3600: a simulated hour per wall second, never ahead


# -- the feed's clock and the wall clock -----------------------------------------------------------------------
NOW_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z


@pytest.mark.parametrize(
    ("text", "origin_ms"),
    [
        ("now", NOW_MS),
        ("-7d", NOW_MS - 7 * 86_400_000),
        ("-36h", NOW_MS - 36 * 3_600_000),
        ("-1d12h", NOW_MS - 36 * 3_600_000),
        ("-90m", NOW_MS - 90 * 60_000),
        ("-1.5h", NOW_MS - 90 * 60_000),
        ("now-7d", NOW_MS - 7 * 86_400_000),  # on a command line: --origin now-7d
        ("2025-11-24T16:00:00Z", NOW_MS),
        ("2025-11-24T17:00:00+01:00", NOW_MS),
        ("2025-11-24T16:00:00", NOW_MS),  # no offset: UTC
    ],
)
def test_an_origin_is_now_an_iso_time_or_an_offset_into_the_past(text: str, origin_ms: int) -> None:
    assert parse_origin(text, NOW_MS) == origin_ms


@pytest.mark.parametrize("text", ["yesterday", "7d", "+7d", "-7w", "-", "", "now-", "now+1h"])
def test_a_bad_origin_is_refused_saying_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"origin: expected 'now', an ISO 8601 time .* or a negative offset"):
        parse_origin(text, NOW_MS)


def test_the_clock_says_how_far_ahead_a_feed_started_now_runs_and_when_one_started_in_the_past_reaches_the_present() -> None:
    now = FeedClock(origin_ms=NOW_MS, start_ms=NOW_MS, speed=60.0)
    assert now.lead_s(0) == 0
    assert now.lead_s(3600) == 59 * 3600  # a wall hour at x60: 59 hours ahead
    assert now.ahead_after_s(300) == pytest.approx(300 / 59)  # a receiver accepting 5 min refuses after 5 s
    assert now.source_ms(60) == NOW_MS + 3_600_000
    week = FeedClock(origin_ms=parse_origin("-7d", NOW_MS), start_ms=NOW_MS, speed=600.0)
    run_s = 168 * 3600 / 600  # a simulated week at x600: 16.8 wall minutes
    assert week.lead_s(run_s) == pytest.approx(-run_s)  # still behind the wall clock at the end
    assert week.present_after_s() == pytest.approx(7 * 86400 / 599)
    assert week.as_dict(run_s) == {
        "origin": "2025-11-17T16:00:00.000Z",
        "start": "2025-11-24T16:00:00.000Z",
        "speed": 600.0,
        "lead_s_at_start": -604800.0,
        "present_after_s": 1009.683,
        "run_s": 1008.0,
        "lead_s_at_end": -1008.0,
        "max_lead_s": 0.0,
    }
    assert week.describe(run_s) == [
        "source time = 2025-11-17T16:00:00.000Z + 600 x wall seconds since 2025-11-24T16:00:00.000Z",
        "the source clock starts 7.0 d behind the wall clock and reaches it after 16.8 min of wall time",
        "it gains 25.0 d on the wall clock per wall hour",
        "at the end (16.8 min of wall time) it is 16.8 min behind the wall clock",
    ]
    slow = FeedClock(origin_ms=NOW_MS - 1000, start_ms=NOW_MS, speed=1.0)
    assert math.isinf(slow.present_after_s())  # real time from the past never catches up


def test_the_stats_report_the_lead_over_the_wall_clock_as_the_run_goes() -> None:
    clock = FakeClock()
    wall = 1_764_000_000.0 - clock.now  # the wall clock moves with the fake monotonic clock
    origin = parse_origin("-1h", NOW_MS)
    plant = _plant(
        LINE,
        CollectingPublisher(),
        speed=60.0,
        origin_ms=origin,
        clock=clock,
        sleep=clock.sleep,
        wall_clock=lambda: wall + clock.now,
    )
    announced = plant.feed_clock()
    assert announced.lead_s(0) == -3600
    plant.run(until_h=0.5)  # 30 wall seconds
    stats = plant.stats()
    assert stats.lead_s == pytest.approx(-3600 + 0.5 * 3600 - 30)
    assert plant.feed_clock() == announced  # the mapping is fixed at the start of the run
    assert stats.lead_s == pytest.approx(announced.lead_s(30))
    skewed = _plant(
        LINE, CollectingPublisher(), origin_ms=origin, faults=Faults(clock_skew_s=120), wall_clock=lambda: NOW_MS / 1000
    )
    assert skewed.feed_clock().origin_ms == origin + 120_000  # what a receiver sees: the skew included
    assert skewed.stats().lead_s == pytest.approx(-3600 + 120)


# -- warm-up --------------------------------------------------------------------------------------------------
def _line_end_counts(messages: list[tuple[str, bytes]]) -> list[int]:
    end = REFERENCE.stations[-1].id
    return [r.processed for r in _readings(REFERENCE, messages) if isinstance(r, CountsReading) and r.source.station == end]


def test_a_warm_feed_ships_line_end_counts_in_its_first_hours_where_a_cold_one_ships_none() -> None:
    assert FEED_WARMUP_H == Settings.model_fields["demo_warmup_hours"].default == 504  # gigatwin feed warms up as the demo
    cold = CollectingPublisher()
    _plant(REFERENCE, cold, seed=2, process_period_s=600.0).run_unpaced(3.0)
    assert max(_line_end_counts(cold.messages)) == 0  # the aging store holds the first units for 14 days
    warm = CollectingPublisher()
    _plant(REFERENCE, warm, seed=2, process_period_s=600.0, start=warm_start(REFERENCE, 2, FEED_WARMUP_H)).run_unpaced(3.0)
    assert max(_line_end_counts(warm.messages)) > 500  # the reference line makes about 400 cells a minute when full
    # one value per instant: no buffer level, store occupancy, counter or machine state is published twice for one
    # millisecond (a receiver would count an equal pair as a duplicate, and store only the later of a different one,
    # so a live state rebuilt from the store after a restart would count fewer stops than the one that watched live)
    readings = _readings(REFERENCE, warm.messages)
    instants = Counter((type(r), r.source.station, r.machine, r.ts_ms) for r in readings if not isinstance(r, ProcessReading))
    assert instants.most_common(1)[0][1] == 1
    assert sum(isinstance(r, StateReading) for r in readings) > 1000  # the states are there, one per instant


def test_no_warm_up_is_an_empty_line_and_a_negative_one_is_refused() -> None:
    assert warm_start(LINE, 0, 0.0) is None
    with pytest.raises(ValueError, match="warmup: simulated hours must be >= 0, got -1"):
        warm_start(LINE, 0, -1.0)


def test_bad_settings_are_refused() -> None:
    for kw in ({"speed": 0}, {"process_period_s": -1}, {"lookahead_h": -1}, {"condition_max_machines": -1}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            _plant(LINE, CollectingPublisher(), **kw)
    with pytest.raises(ValueError, match="at most 1"):
        Faults(drop=0.6, duplicate=0.6)
    with pytest.raises(ValueError, match="drop"):
        Faults(drop=-0.1)


# -- faults ---------------------------------------------------------------------------------------------------
FAULTS = Faults(drop=0.01, duplicate=0.01, reorder=0.01, malformed=0.01, seed=21)


def _faulty(faults: Faults, hours: float = 40.0) -> tuple[list[tuple[str, bytes]], VirtualPlant]:
    pub = CollectingPublisher()
    plant = _plant(LINE, pub, seed=6, faults=faults)
    plant.run_unpaced(hours)
    return pub.messages, plant


def test_injected_faults_are_exactly_what_a_receiver_sees() -> None:
    clean = CollectingPublisher()
    _plant(LINE, clean, seed=6).run_unpaced(40.0)
    received, plant = _faulty(FAULTS)
    log = plant.fault_log
    assert log is not None
    n = len(clean.messages)
    assert n > 10000
    assert log.counts["messages"] == n
    for kind in FaultKind:
        assert n * 0.01 / 2 < log.counts[kind.value] < n * 0.01 * 2, kind  # ~1 % each
        assert len(log.of(kind)) == log.counts[kind.value]
    # the multiset of what arrived: the clean stream less the drops, plus a second copy of each duplicate, with
    # each malformed message's payload replaced
    broken = [r for r in log.records if r.kind is FaultKind.MALFORMED]
    expected = Counter(clean.messages)
    expected.subtract(log.of(FaultKind.DROP))
    expected.update(log.of(FaultKind.DUPLICATE))
    expected.subtract((r.topic, r.original) for r in broken)
    expected.update((r.topic, r.payload) for r in broken)
    assert Counter(received) == +expected
    assert len(received) == n - log.counts["drop"] + log.counts["duplicate"]
    # duplicates arrive twice in a row
    position = {m: i for i, m in enumerate(received)}
    for message in log.of(FaultKind.DUPLICATE):
        i = position[message]
        assert received[i - 1] == message
    # malformed payloads fail decoding with a reason, of every kind; everything else decodes
    bad = set(log.of(FaultKind.MALFORMED))
    kinds = Counter(r.detail for r in broken)
    assert len(kinds) >= 5
    assert set(kinds) <= {m.value for m in Malformation}
    assert sum(log.counts[f"malformed/{m.value}"] for m in Malformation) == log.counts["malformed"]
    for topic, payload in received:
        source, channel = TOPICS.parse(topic)
        if (topic, payload) in bad:
            with pytest.raises(TelemetryError) as info:
                decode(source, channel, payload)
            assert info.value.reason
        else:
            decode(source, channel, payload)
    # reordered messages arrive after a message with a later timestamp (unless the final flush let them go)
    stamps = [json.loads(p)["ts"] if (t, p) not in bad else None for t, p in received]
    overtaken = [r for r in log.records if r.kind is FaultKind.REORDER and "flush" not in r.detail]
    assert len(overtaken) >= log.counts["reorder"] - 3  # only the last few can be left to the final flush
    for r in overtaken:
        ts = json.loads(r.payload)["ts"]
        assert any(s is not None and s > ts for s in stamps[: position[(r.topic, r.payload)]]), r


def test_the_same_seed_gives_the_same_faults() -> None:
    a, plant_a = _faulty(FAULTS, hours=10.0)
    b, plant_b = _faulty(FAULTS, hours=10.0)
    c, _ = _faulty(Faults(drop=0.01, duplicate=0.01, reorder=0.01, malformed=0.01, seed=22), hours=10.0)
    assert a == b
    assert plant_a.fault_log is not None
    assert plant_b.fault_log is not None
    assert plant_a.fault_log.records == plant_b.fault_log.records
    assert a != c


def test_clock_skew_shifts_every_timestamp() -> None:
    clean = CollectingPublisher()
    _plant(LINE, clean, seed=6).run_unpaced(3.0)
    skewed, plant = _faulty(Faults(clock_skew_s=-90.5), hours=3.0)
    skewed_ts = [json.loads(p)["ts"] for _, p in skewed]
    clean_ts = [json.loads(p)["ts"] for _, p in clean.messages]
    assert len(skewed_ts) == len(clean_ts)
    assert all(s == c - 90_500 for s, c in zip(skewed_ts, clean_ts, strict=True))
    assert plant.fault_log is not None
    assert not plant.fault_log.records


@pytest.mark.parametrize("channel", list(Channel))
def test_each_malformation_breaks_decoding_with_a_reason(channel: Channel) -> None:
    payloads = {
        Channel.STATE: b'{"v":1,"ts":5,"state":"EXECUTE"}',
        Channel.COUNTS: b'{"v":1,"ts":5,"ProdProcessedCount":7,"ProdDefectiveCount":1}',
        Channel.PROCESS: b'{"v":1,"ts":5,"values":[{"name":"t","value":1.5,"unit":"degC"}]}',
        Channel.BUFFER: b'{"v":1,"ts":5,"level":3}',
        Channel.STORE: b'{"v":1,"ts":5,"dwelling":3,"held":0,"intake_blocked":false}',
        Channel.INPUT: b'{"v":1,"ts":5,"ProdConsumedCount":9}',
    }
    topic = TOPICS.topic("CUT", channel)
    source, _ = TOPICS.parse(topic)
    decode(source, channel, payloads[channel])
    pub = CollectingPublisher()
    injector = FaultInjector(pub, Faults(malformed=1.0, seed=1))
    for _ in range(200):
        injector.publish(topic, payloads[channel])
    reasons = {}
    for record, (_topic, payload) in zip(injector.log.records, pub.messages, strict=True):
        assert record.payload == payload
        with pytest.raises(TelemetryError) as info:
            decode(source, channel, payload)
        reasons[record.detail] = info.value.reason
    expected = {m.value for m in Malformation} - {"unknown_state", "negative_counter"}
    if channel is Channel.STATE:
        expected.add("unknown_state")
    elif channel is not Channel.PROCESS:
        expected.add("negative_counter")
    assert set(reasons) == expected, reasons
