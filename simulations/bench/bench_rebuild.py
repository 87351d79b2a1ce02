"""Rebuilding a line's live state from the store (a restart), measured against the live path in the same run.

    .venv/bin/python simulations/bench/bench_rebuild.py [--hours 48] [--influx]

1. The virtual plant runs ``--hours`` simulated hours of the reference line through the real ingest (decode,
   checks, store write, live state) into a SqliteStore: the baseline, the cost of taking the same history live.
2. ``connectors.rebuild.rebuild`` replays that history from the store into a fresh ``LiveLine``: readings/s and
   seconds, and the split between reading the store back (``stored_readings`` alone) and the live state.
3. With ``--influx``, the same into a real ``influxd`` started here (tests/integration/influx_server.py, its own
   process and ports): the rebuild from InfluxDB.

The rebuilt live state is checked against the live one (equal status counts). A benchmark: nothing is asserted
on time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from influx_server import load_influx_server  # simulations/bench/influx_server.py: run as a script

from connectors.feed import VirtualPlant
from connectors.ingest import Ingest, LoopbackPublisher
from connectors.linefile import read_line
from connectors.rebuild import rebuild, stored_readings
from connectors.stores import InfluxStore, SqliteStore, Store
from connectors.telemetry import MS_PER_HOUR, Topics
from twin.counters import CumulativeCounters
from twin.state import LiveLine

REPO = Path(__file__).resolve().parents[2]
ORIGIN = 1_763_900_000_000
LINE = read_line(REPO / "simulations" / "lines" / "reference_cell_line.yaml")
TOPICS = Topics("gt", "site1", LINE.name)


def live_line(hours: float) -> LiveLine:
    return LiveLine(LINE, history_h=max(hours, 8.0) + 1.0)


def feed(store: Store, hours: float) -> tuple[float, int, LiveLine]:
    """The plant's ``hours`` through the ingest into ``store`` and a live state: wall seconds, readings stored."""
    live = live_line(hours)
    ingest = Ingest(TOPICS, store, line=LINE, observers=[live], batch_wait_s=0.01)
    stop = threading.Event()
    worker = threading.Thread(target=ingest.run, args=(stop,))
    began = time.perf_counter()
    worker.start()
    VirtualPlant(LINE, topics=TOPICS, publisher=LoopbackPublisher(ingest), seed=1, origin_ms=ORIGIN).run_unpaced(hours)
    stop.set()
    worker.join()
    return time.perf_counter() - began, ingest.stats.stored, live


def measure(name: str, store: Store, hours: float) -> None:
    fed_s, stored, live = feed(store, hours)
    end_ms = ORIGIN + round(hours * MS_PER_HOUR) + 1
    began = time.perf_counter()
    n = sum(1 for _ in stored_readings(store, TOPICS, ORIGIN - 1, end_ms))
    read_s = time.perf_counter() - began
    rebuilt = live_line(hours)
    stats = rebuild(store, TOPICS, [rebuilt], start_ms=ORIGIN - 1, end_ms=end_ms, counters=CumulativeCounters())
    a, b = live.status(), rebuilt.status()
    same = (a.good, a.scrapped, a.released, a.wip) == (b.good, b.scrapped, b.released, b.wip)
    print(f"{name}: {hours:g} simulated hours of {LINE.name}, {stored:,} readings stored")
    print(f"  live (plant -> ingest -> store + live state): {fed_s:7.2f} s  {stored / fed_s:9,.0f} readings/s  (baseline)")
    print(f"  read back (stored_readings alone):            {read_s:7.2f} s  {n / read_s:9,.0f} readings/s")
    rate = stats.readings / stats.seconds
    print(
        f"  rebuild (read back -> events -> LiveLine):     {stats.seconds:7.2f} s  {rate:9,.0f} readings/s"
        f"  {stats.events:,} events  = {stats.seconds / fed_s:.2f} x the live path"
    )
    print(f"  rebuilt status equals the live one: {same} (good {b.good}, released {b.released}, wip {b.wip})")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=48.0, help="simulated hours of history")
    parser.add_argument("--influx", action="store_true", help="also into a real influxd started here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "bench.db")
        measure("SqliteStore", sqlite, args.hours)
        sqlite.close()
        if args.influx:
            server_module = load_influx_server()
            with server_module.InfluxServer(Path(tmp) / "influxd") as server:
                store = InfluxStore(server.url, "bench", spool_dir=Path(tmp) / "spool")
                store.ensure_database()
                measure("InfluxStore (influxd 1.6, loopback)", store, args.hours)
                store.close()


if __name__ == "__main__":
    main()
