"""Engine speed, measured against a bare SimPy model of the same line in the same run.

    .venv/bin/python simulations/bench/bench_engine.py [--quick] [--ratios-only] [--runs N]

1. A four-station line with failures over 200,000 simulated hours: GigaTwin's ``run_once`` (engine + KPI
   reducer, what users get), the engine with no observer, and a bare SimPy model written here (plain
   processes, ``simpy.Store`` buffers, no observers), once with operating-basis failures (remaining time to
   failure tracked while working) and once with calendar-basis failures (SimPy's machine-shop interrupt
   pattern). Reported as ratios to the bare model. Target: run_once at most 1.5x the bare model.
2. One simulated week of the reference line, from empty and from a warm (3-week) snapshot. Target < 5 s.
3. 100 replications of an 8-hour horizon of the reference line from the warm snapshot, on 1 and 2 workers.
   Target < 10 s on 2 cores.
Part 1 takes the least CPU time of ``--runs`` (3) runs, the three models in turn so that a busy spell of the
machine hits them alike; parts 2 and 3 take the best wall time of 3 (part 3 uses two processes).
A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from connectors.linefile import read_line
from twin.engine import Engine
from twin.schema import Line, load_line_data
from twin.simulate import run_once, simulate

REFERENCE = Path(__file__).resolve().parents[1] / "lines" / "reference_cell_line.yaml"
MEANS = [0.9, 1.0, 0.95, 0.85]  # cycle-time means, hours
MTTF, MTTR, BUFFER = 50.0, 2.0, 5


def four_station_line(basis: str) -> Line:
    """The benchmark line: exponential cycles, one exponential failure mode each, buffers of 5."""
    stations: list[dict[str, Any]] = []
    for i, mean in enumerate(MEANS):
        st: dict[str, Any] = {
            "id": f"S{i}",
            "cycle_time": {"dist": "exponential", "mean": mean},
            "failures": [
                {
                    "name": "f",
                    "ttf": {"dist": "exponential", "mean": MTTF},
                    "ttr": {"dist": "exponential", "mean": MTTR},
                    "basis": basis,
                }
            ],
        }
        if i < len(MEANS) - 1:
            st["buffer_after"] = BUFFER
        stations.append(st)
    return load_line_data({"name": f"bench_{basis}", "time_unit": "h", "stations": stations})


# -- the bare SimPy models ---------------------------------------------------------------------------------
def bare_operating(hours: float, seed: int) -> int:
    """Plain SimPy: Stores between machines; failures on the operating clock (remaining time to failure)."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    # a Store of capacity c holds c waiting units; a machine holding a finished unit blocks on put()
    stores = [simpy.Store(env, capacity=BUFFER) for _ in MEANS[:-1]]
    done = [0]

    def machine(i: int) -> Generator[simpy.Event, Any, None]:
        ttf = rng.exponential(MTTF)
        while True:
            if i > 0:
                yield stores[i - 1].get()
            work = rng.exponential(MEANS[i])
            while work > 0:
                if ttf < work:
                    yield env.timeout(ttf)
                    work -= ttf
                    yield env.timeout(rng.exponential(MTTR))
                    ttf = rng.exponential(MTTF)
                else:
                    yield env.timeout(work)
                    ttf -= work
                    work = 0.0
            if i < len(MEANS) - 1:
                yield stores[i].put(1)
            else:
                done[0] += 1

    for i in range(len(MEANS)):
        env.process(machine(i))
    env.run(until=hours)
    return done[0]


def bare_calendar(hours: float, seed: int) -> int:
    """Plain SimPy, machine-shop pattern: a breaker process interrupts the machine while it works."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    stores = [simpy.Store(env, capacity=BUFFER) for _ in MEANS[:-1]]
    done = [0]

    class Machine:
        def __init__(self, i: int) -> None:
            self.i = i
            self.working = False
            self.broken = False
            self.repaired: simpy.Event | None = None
            self.process = env.process(self.run())
            env.process(self.breaker())

        def run(self) -> Generator[simpy.Event, Any, None]:
            i = self.i
            while True:
                if i > 0:
                    yield stores[i - 1].get()
                if self.broken:
                    assert self.repaired is not None
                    yield self.repaired
                work = rng.exponential(MEANS[i])
                while work > 0:
                    start = env.now
                    self.working = True
                    try:
                        yield env.timeout(work)
                        work = 0.0
                    except simpy.Interrupt:
                        work -= env.now - start
                        self.working = False
                        assert self.repaired is not None
                        yield self.repaired
                self.working = False
                if i < len(MEANS) - 1:
                    yield stores[i].put(1)
                else:
                    done[0] += 1

        def breaker(self) -> Generator[simpy.Event, Any, None]:
            while True:
                yield env.timeout(rng.exponential(MTTF))
                self.broken = True
                self.repaired = env.event()
                if self.working:
                    self.process.interrupt()
                yield env.timeout(rng.exponential(MTTR))
                self.broken = False
                self.repaired.succeed()

    for i in range(len(MEANS)):
        Machine(i)
    env.run(until=hours)
    return done[0]


# -- measurement -------------------------------------------------------------------------------------------
def best_of(fn: Callable[[], Any], n: int = 3) -> tuple[float, Any]:
    """Best wall time of ``n`` calls, and the last call's result."""
    best, out = float("inf"), None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def best_in_turn(fns: list[Callable[[], Any]], n: int) -> list[tuple[float, Any]]:
    """Least CPU time of ``n`` calls of each of ``fns``, called in turn, and each one's last result.

    CPU time, not wall time: on a shared machine a run waits for a core for a varying share of its wall
    time (other work on 2 cores moved wall-time ratios by +-50 %), and these models run in one thread."""
    best = [float("inf")] * len(fns)
    out: list[Any] = [None] * len(fns)
    for _ in range(n):
        for i, fn in enumerate(fns):
            t = time.process_time()
            out[i] = fn()
            best[i] = min(best[i], time.process_time() - t)
    return list(zip(best, out, strict=True))


def main() -> None:
    """Run the benchmark and print a table and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every horizon 10x shorter (a smoke run)")
    parser.add_argument("--ratios-only", action="store_true", help="only part 1 (the ratios to the bare model)")
    parser.add_argument("--runs", type=int, default=3, help="take the best of this many runs of part 1 (default 3)")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    hours = 200_000 * scale
    figures: dict[str, float] = {}
    rows: list[tuple[str, str]] = []

    for basis, bare in (("operating", bare_operating), ("calendar", bare_calendar)):
        line = four_station_line(basis)
        (t_run, kpis), (t_engine, _), (t_bare, shipped) = best_in_turn(
            [
                lambda line=line: run_once(line, hours, seed=1),
                lambda line=line: Engine(line, 1).run(hours),
                lambda bare=bare: bare(hours, 1),
            ],
            args.runs,
        )
        figures[f"{basis}_run_once_s"] = t_run
        figures[f"{basis}_engine_s"] = t_engine
        figures[f"{basis}_bare_s"] = t_bare
        figures[f"{basis}_ratio_run_once_to_bare"] = t_run / t_bare
        figures[f"{basis}_ratio_engine_to_bare"] = t_engine / t_bare
        rows += [
            (f"4 stations, {basis} failures, {hours:,.0f} h: run_once (engine + KPIs)", f"{t_run:.2f} s CPU"),
            ("  engine, no observer", f"{t_engine:.2f} s CPU"),
            ("  bare SimPy model", f"{t_bare:.2f} s CPU"),
            ("  ratio run_once / bare (target <= 1.5)", f"{t_run / t_bare:.2f}"),
            ("  ratio engine / bare", f"{t_engine / t_bare:.2f}"),
            ("  throughput /h: gigatwin vs bare", f"{kpis.throughput_per_hour:.4f} vs {shipped / hours:.4f}"),
        ]

    if args.ratios_only:
        pass
    elif REFERENCE.exists():
        ref = read_line(REFERENCE)
        week = 168 * scale
        t_cold, _ = best_of(lambda: run_once(ref, week, seed=1), n=1)
        t = time.perf_counter()
        warm_engine = Engine(ref, 1)
        warm_engine.run(504 * scale)
        snap = warm_engine.snapshot()
        t_warmup = time.perf_counter() - t
        t_warm, kpis = best_of(lambda: run_once(ref, week, seed=2, start=snap))
        reps = 100
        t_r1, _ = best_of(lambda: simulate(ref, 8, replications=reps, seed=3, start=snap, workers=1), n=1)
        t_r2, _ = best_of(lambda: simulate(ref, 8, replications=reps, seed=3, start=snap, workers=2), n=1)
        figures.update(
            reference_week_cold_s=t_cold,
            reference_week_warm_s=t_warm,
            reference_warmup_3w_s=t_warmup,
            reference_100x8h_1worker_s=t_r1,
            reference_100x8h_2workers_s=t_r2,
        )
        rows += [
            ("reference line, one week from empty (target < 5 s)", f"{t_cold:.2f} s"),
            (
                "reference line, one week from a warm snapshot (target < 5 s)",
                f"{t_warm:.2f} s  ({kpis.throughput_per_hour:.0f} good/h)",
            ),
            ("  (the 3-week warm-up itself, engine only)", f"{t_warmup:.2f} s"),
            (f"reference line, {reps} x 8 h from the warm snapshot, 1 worker", f"{t_r1:.2f} s"),
            (f"reference line, {reps} x 8 h from the warm snapshot, 2 workers (target < 10 s)", f"{t_r2:.2f} s"),
        ]
    else:
        rows.append(("reference line", f"skipped: {REFERENCE} not found"))

    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
