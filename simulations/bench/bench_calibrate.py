"""Calibration speed and memory: a year of one line's state history, from SQLite (and InfluxDB with ``--influx``).

    .venv/bin/python simulations/bench/bench_calibrate.py [--changes 1000000] [--stations 15] [--influx]

A line of ``--stations`` stations of 4 machines, each machine with an operating and a calendar failure mode, gets a
year (8,760 h) of synthetic history written straight into a fresh store: each machine alternates WORKING stretches
with DOWN (a failure mode, exponential repair) and STARVED spells, about ``--changes`` state changes in all, with its
counters after each WORKING stretch. Then, each in a fresh process (so that its peak memory is its own):

1. the baseline: a bare replay of the year's states and counts (``connectors.rebuild.rebuild`` with an observer that
   does nothing), the I/O any calibration needs;
2. ``connectors.calibrate.calibrate_from_store`` of the whole year (replay, observations, every fit with its
   bootstrap interval).

Printed: wall seconds and peak resident memory of each, and the calibration's ratio to the baseline. Issue 12's
target: under 30 s and under 1 GB. A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from influx_server import load_influx_server  # simulations/bench/influx_server.py: run as a script

from connectors.stores.base import Store
from connectors.stores.influx import InfluxStore
from connectors.stores.sqlite import SqliteStore
from connectors.telemetry import CountsReading, Reading, Source, StateReading
from twin.events import MachineState
from twin.schema import Line, load_line_data

REPO = Path(__file__).resolve().parents[2]
ORIGIN_MS = 1_700_000_000_000
YEAR_H = 8760.0
MACHINES = 4


def bench_line(stations: int) -> dict[str, object]:
    """The line's description: ``stations`` stations of 4 machines, two failure modes each."""
    return {
        "name": "bench_line",
        "time_unit": "h",
        "stations": [
            {
                "id": f"S{i:02d}",
                "machines": MACHINES,
                "cycle_time": 0.01,
                "failures": [
                    {"name": "jam", "ttf": {"dist": "exponential", "mean": 4.0}, "ttr": {"dist": "exponential", "mean": 0.3}},
                    {
                        "name": "wear",
                        "basis": "calendar",
                        "ttf": {"dist": "exponential", "mean": 24.0},
                        "ttr": {"dist": "lognormal", "mean": 1.0, "cv": 1.0},
                    },
                ],
                **({"buffer_after": 100} if i < stations else {}),
            }
            for i in range(1, stations + 1)
        ],
    }


def history(line: Line, changes: int, seed: int = 1) -> list[Reading]:
    """About ``changes`` state changes over a year, with the counters after each working stretch, in time order."""
    rng = np.random.default_rng(seed)
    machines = [(s.id, m) for s in line.stations for m in range(s.machines)]
    # two state changes a cycle: a working stretch, then 85 % a starved spell of a quarter of it, 12 % a jam's repair
    # (0.3 h), 3 % a wear repair (1 h); the stretch that makes the year hold about ``changes``
    cycle = 2 * YEAR_H * len(machines) / changes
    stretch = max((cycle - 0.12 * 0.3 - 0.03 * 1.0) / (1 + 0.85 / 4), 1e-3)
    out: list[tuple[int, Reading]] = []
    for sid, m in machines:
        src = Source("plant1", line.name, sid)
        t, processed = 0.0, 0
        while t < YEAR_H:
            work = rng.exponential(stretch)
            out.append((0, StateReading(src, m, ORIGIN_MS + round(t * 3_600_000), MachineState.WORKING, "EXECUTE", "", None)))
            t += work
            processed += int(work / 0.01)
            ts = ORIGIN_MS + round(t * 3_600_000)
            out.append((1, CountsReading(src, m, ts, processed, processed // 50)))
            u = rng.random()
            if u < 0.15:
                reason = "jam" if u < 0.12 else "wear"
                out.append((0, StateReading(src, m, ts, MachineState.DOWN, "HELD", reason, None)))
                t += rng.exponential(0.3 if reason == "jam" else 1.0)
            else:
                out.append((0, StateReading(src, m, ts, MachineState.STARVED, "IDLE", "", None)))
                t += rng.exponential(stretch / 4)
    out.sort(key=lambda r: (r[1].ts_ms, r[0]))
    return [r for _, r in out]


def fill(store: Store, readings: list[Reading], batch: int = 5000) -> float:
    """Write the readings in batches; seconds taken."""
    began = time.perf_counter()
    for i in range(0, len(readings), batch):
        store.write(readings[i : i + batch])
    return time.perf_counter() - began


_CHILD = """
import json, resource, sys, time
from connectors.stores.url import open_store
from connectors.telemetry import Channel, Topics
from twin.schema import load_line_data
from twin.counters import CumulativeCounters
from connectors.rebuild import rebuild
from connectors.calibrate import PAGE, calibrate_from_store, history_span_ms
what, url, line_data, spool = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
line = load_line_data(line_data)
store = open_store(url, spool_dir=spool)
topics = Topics("gigatwin", "plant1", line.name)
began = time.perf_counter()
if what == "replay":
    lo, hi = history_span_ms(store, topics)
    stats = rebuild(store, topics, [lambda ev: None], start_ms=lo, end_ms=hi + 1, counters=CumulativeCounters(),
                    channels={Channel.STATE, Channel.COUNTS}, page=PAGE)
    n = stats.events
else:
    made = calibrate_from_store(store, topics, line)
    n = made.replay.events
seconds = time.perf_counter() - began
store.close()
print(json.dumps({"s": seconds, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "events": n}))
"""


def measure(what: str, url: str, line_data: dict[str, object], spool: Path) -> dict[str, float]:
    """Run ``what`` (replay or calibrate) in a fresh process; its seconds, peak RSS and events."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, what, url, json.dumps(line_data), str(spool)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--stations", type=int, default=15)
    parser.add_argument("--influx", action="store_true", help="also on a real influxd")
    args = parser.parse_args()
    line_data = bench_line(args.stations)
    line = load_line_data(line_data)
    readings = history(line, args.changes)
    states = sum(isinstance(r, StateReading) for r in readings)
    report: dict[str, object] = {"state_changes": states, "readings": len(readings)}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        targets = [("sqlite", f"sqlite:{work / 'year.db'}", None)]
        server = None
        if args.influx:
            server = load_influx_server().InfluxServer(work / "influxd")
            server.start()
            targets.append(("influxdb", f"influxdb://127.0.0.1:{server.port}/bench", None))
        try:
            for name, url, _ in targets:
                store: Store = (
                    SqliteStore(work / "year.db")
                    if name == "sqlite"
                    else InfluxStore(f"http://127.0.0.1:{server.port}", "bench", spool_dir=work / "fill-spool")  # type: ignore[union-attr]
                )
                if isinstance(store, InfluxStore):
                    store.ensure_database()
                fill_s = fill(store, readings)
                store.close()
                replay = measure("replay", url, line_data, work / f"{name}-spool-a")
                cal = measure("calibrate", url, line_data, work / f"{name}-spool-b")
                report[name] = {
                    "fill_s": round(fill_s, 1),
                    "replay_s (baseline)": round(replay["s"], 1),
                    "replay_rss_mb": round(replay["rss_mb"]),
                    "calibrate_s": round(cal["s"], 1),
                    "calibrate_rss_mb": round(cal["rss_mb"]),
                    "calibrate / replay": round(cal["s"] / replay["s"], 2),
                    "events": cal["events"],
                }
        finally:
            if server is not None:
                server.stop()
    report["target"] = "under 30 s and under 1 GB"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
