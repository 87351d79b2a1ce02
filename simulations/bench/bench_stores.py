"""Store write speed, measured against baselines in the same run.

    .venv/bin/python simulations/bench/bench_stores.py [--readings N] [--batch B]

1. SqliteStore: readings/s written in batches of B readings (what the ingest hands it), against a bare
   ``executemany`` of the same rows (prepared beforehand) into one table without indexes, in the same WAL mode.
   Both time the writes alone (not opening the file, nor the checkpoint on closing it).
2. InfluxStore on a real ``influxd`` (tests/integration/influx_server.py, its own process and ports): readings/s,
   against a hand-written line-protocol encoding of the same points POSTed gzip-compressed in the same chunks.
3. Line-protocol encoding alone: ``influxdb_client.Point`` (what the store uses) against the hand-written encoder,
   per point.

The mix is typical of a line: 70 % process readings of 3-8 values, 10 % each state, counts and buffer. Wall times
are the best of 3. A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import urllib3
from influx_server import load_influx_server  # simulations/bench/influx_server.py: run as a script

from connectors.stores.influx import InfluxStore
from connectors.stores.lineprotocol import encode_readings
from connectors.stores.points import point_rows
from connectors.stores.sqlite import SqliteStore
from connectors.telemetry import BufferReading, CountsReading, ProcessReading, Reading, Source, StateReading
from twin.events import MachineState

REPO = Path(__file__).resolve().parents[2]
T0 = 1_763_900_000_000


def typical_mix(n: int, seed: int = 1) -> list[Reading]:
    """``n`` readings of 12 stations x 4 machines, 10 ms apart."""
    rng = random.Random(seed)
    sources = [Source("site1", "L1", f"ST{i:02d}") for i in range(12)]
    out: list[Reading] = []
    for i in range(n):
        src, machine, ts, kind = rng.choice(sources), rng.randrange(4), T0 + 10 * i, rng.random()
        if kind < 0.7:
            values = tuple((f"sig{j}", rng.uniform(0, 100), "u") for j in range(rng.randint(3, 8)))
            out.append(ProcessReading(src, machine, ts, values))
        elif kind < 0.8:
            out.append(StateReading(src, machine, ts, MachineState.WORKING, "EXECUTE", "", None))
        elif kind < 0.9:
            out.append(CountsReading(src, machine, ts, i, i // 10))
        else:
            out.append(BufferReading(src, 0, ts, i % 100))
    return out


def best_of(runs: int, fn: Callable[[], Any]) -> float:
    """The shortest wall time of ``runs`` calls."""
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def best_timed(runs: int, fn: Callable[[], float]) -> float:
    """The shortest of the times ``runs`` calls report (each times only its own measured part)."""
    return min(fn() for _ in range(runs))


def batches(readings: Sequence[Reading], size: int) -> list[Sequence[Reading]]:
    return [readings[i : i + size] for i in range(0, len(readings), size)]


# -- baselines -------------------------------------------------------------------------------------------------
def raw_sqlite(path: Path, rows: list[list[tuple[Any, ...]]]) -> float:
    """The floor: the same number of rows per transaction into one bare table, no indexes, no series lookup.
    Returns the time of the inserts alone."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE p (series INTEGER, ts INTEGER, a, b, c, d)")
    t = time.perf_counter()
    for chunk in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO p VALUES (?, ?, ?, ?, ?, ?)", chunk)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t
    conn.close()
    return elapsed


def hand_lines(readings: Sequence[Reading]) -> list[str]:
    """Line protocol written by hand: the comparison for Point (escaping only what this data can contain)."""
    out = []
    for r in readings:
        src = r.source
        tags = f"line={src.line},machine={r.machine},site={src.site},station={src.station}"
        if isinstance(r, ProcessReading):
            for name, value, unit in r.values:
                out.append(f'process,{tags},signal={name} unit="{unit}",value={value!r} {r.ts_ms}')
        elif isinstance(r, StateReading):
            out.append(f'state,{tags} packml="{r.packml}",reason="{r.reason}",state="{r.state.value}" {r.ts_ms}')
        elif isinstance(r, CountsReading):
            out.append(f"counts,{tags} defective={r.defective}i,processed={r.processed}i {r.ts_ms}")
        elif isinstance(r, BufferReading):
            out.append(f"buffer,{tags} level={r.level}i {r.ts_ms}")
    return out


def hand_post(http: urllib3.PoolManager, url: str, db: str, readings: Sequence[Reading], batch_points: int) -> None:
    lines = hand_lines(readings)
    for i in range(0, len(lines), batch_points):
        body = gzip.compress("\n".join(lines[i : i + batch_points]).encode(), compresslevel=1)
        resp = http.request("POST", f"{url}/write?db={db}&precision=ms", body=body, headers={"Content-Encoding": "gzip"})
        assert resp.status == 204, resp.data


# -- the run ---------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000, help="readings per write call (the ingest's batch)")
    args = parser.parse_args()
    readings = typical_mix(args.readings)
    points = sum(len(point_rows(r)[1]) for r in readings)
    work = Path(tempfile.mkdtemp(prefix="bench_stores_"))
    table: list[tuple[str, float, float, str]] = []
    print(f"{len(readings)} readings ({points} points, {points / len(readings):.2f} per reading), writes of {args.batch}\n")

    # 1. SQLite
    runs = iter(range(1000))

    def sqlite_store() -> float:
        store = SqliteStore(work / f"store{next(runs)}.db")
        t = time.perf_counter()
        for b in batches(readings, args.batch):
            store.write(b)
        elapsed = time.perf_counter() - t
        store.close()
        return elapsed

    rows = []
    for b in batches(readings, args.batch):
        chunk = []
        for r in b:
            for _signal, values in point_rows(r)[1]:
                chunk.append((hash(r.source) % 500, r.ts_ms, *values, *([None] * (4 - len(values)))))
        rows.append(chunk)
    t_store = best_timed(3, sqlite_store)
    t_raw = best_timed(3, lambda: raw_sqlite(work / f"raw{next(runs)}.db", rows))
    table.append(("SqliteStore.write", len(readings) / t_store, t_store / t_raw, "raw executemany, no indexes"))

    # 2. InfluxDB
    server_module = load_influx_server()
    server = server_module.InfluxServer(work / "influxd")
    server.start()
    try:
        http = urllib3.PoolManager()
        http.request("POST", f"{server.url}/query", fields={"q": 'CREATE DATABASE "hand"'}, encode_multipart=False)
        store = InfluxStore(server.url, "bench", spool_dir=work / "spool")
        store.ensure_database()

        def influx_store() -> None:
            for b in batches(readings, args.batch):
                store.write(b)

        def influx_hand() -> None:
            for b in batches(readings, args.batch):
                hand_post(http, server.url, "hand", b, store.batch_points)

        t_store = best_of(3, influx_store)
        t_hand = best_of(3, influx_hand)
        spooled = store.counters.batches_spooled
        store.close()
    finally:
        server.stop()
    note = "hand-written line protocol POSTed" + (f" ({spooled} batches spooled!)" if spooled else "")
    table.append(("InfluxStore.write", len(readings) / t_store, t_store / t_hand, note))

    # 3. Encoding alone
    t_point = best_of(3, lambda: [c for c in encode_readings(readings, 5000)])
    t_hand_enc = best_of(3, lambda: hand_lines(readings))
    table.append(("Point encoding", points / t_point, t_point / t_hand_enc, "hand-written f-strings"))

    print(f"{'what':<22}{'per second':>14}{'x baseline':>12}  baseline")
    for what, rate, ratio, baseline in table:
        unit = "points/s" if "encoding" in what else "readings/s"
        print(f"{what:<22}{rate:>14,.0f}{ratio:>12.2f}  {baseline}  ({unit})")
    print(f"\nPoint: {t_point / points * 1e6:.2f} us per point; hand-written: {t_hand_enc / points * 1e6:.2f} us per point")


if __name__ == "__main__":
    sys.exit(main())
