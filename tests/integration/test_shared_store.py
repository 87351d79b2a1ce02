"""Two lines sharing one real InfluxDB database (started by the test), with the same site and station ids: each
line's history, last values, aggregates, counter resume, rebuilt live state and dead letters are its own, in the
store's queries and in the API's routes."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from connectors.feed import VirtualPlant
from connectors.ingest import Ingest, LoopbackPublisher
from connectors.mqtt import Delivery
from connectors.rebuild import rebuild
from connectors.stores import DeadLetter, InfluxStore, WriteOutcome
from connectors.telemetry import MS_PER_HOUR, Channel, CountsReading, Reading, Source, Topics
from tests.api.conftest import LINE_ID, VIEWER, demo_settings, runtime_of, wait_for
from tests.conftest import MIXED_LINE, make_line
from tests.integration.influx_server import InfluxServer
from twin.counters import CumulativeCounters
from twin.state import LiveLine

pytestmark = pytest.mark.integration

ORIGIN = 1_763_900_000_000
# A two-station line in minutes: an hour holds many state changes, counts and buffer levels.
LINE = make_line(
    {
        "id": "COAT",
        "machines": 2,
        "cycle_time": {"dist": "exponential", "mean": 1 / 60},
        "failures": [
            {"name": "web_break", "ttf": {"dist": "exponential", "mean": 0.5}, "ttr": {"dist": "exponential", "mean": 0.1}}
        ],
        "buffer_after": 20,
    },
    {"id": "PACK", "cycle_time": {"dist": "exponential", "mean": 1 / 70}},
)
LINES = {"L1": Topics("gt", "site1", "L1"), "L2": Topics("gt", "site1", "L2")}


class Recording(InfluxStore):
    """The InfluxDB store, remembering what was written through it (the expected answers)."""

    def __init__(self, url: str, database: str, spool_dir: Path) -> None:
        super().__init__(url, database, spool_dir=spool_dir)
        self.written: list[Reading] = []

    def write(self, readings: Sequence[Reading]) -> WriteOutcome:
        outcome = super().write(readings)
        self.written.extend(readings)
        return outcome


def _open(server: InfluxServer, tmp_path: Path, name: str) -> Recording:
    store = Recording(server.url, "shared", tmp_path / f"spool-{name}")
    store.ensure_database()
    return store


def _feed(store: Recording, topics: Topics, seed: int, hours: float, live: LiveLine) -> Ingest:
    ingest = Ingest(topics, store, line=LINE, observers=[live], batch_wait_s=0.01)
    stop = threading.Event()
    worker = threading.Thread(target=ingest.run, args=(stop,))
    worker.start()
    pub = LoopbackPublisher(ingest)
    try:
        VirtualPlant(LINE, topics=topics, publisher=pub, seed=seed, origin_ms=ORIGIN).run_unpaced(hours)
        # and one malformed message of this line, a dead letter under its topics
        pub.publish(topics.topic("COAT", Channel.STATE), b'{"v":1,"ts":"' + topics.line.encode() + b'"}')
    finally:
        stop.set()
        worker.join()
    assert ingest.stats.rejected == 1
    return ingest


def test_two_lines_in_one_influxdb_database_keep_apart(influx: InfluxServer, tmp_path: Path) -> None:
    hours = 2.0
    stores = {name: _open(influx, tmp_path, name) for name in LINES}
    lives = {name: LiveLine(LINE, history_h=8.0) for name in LINES}
    ingests = {name: _feed(stores[name], LINES[name], seed, hours, lives[name]) for name, seed in (("L1", 1), ("L2", 2))}
    lo, hi = ORIGIN - 1, ORIGIN + round(hours * MS_PER_HOUR) + 1
    reader = stores["L1"]

    for name, topics in LINES.items():
        written = stores[name].written
        where = {"site": topics.site, "line": topics.line}
        # history: one point per (station, machine, ts) this line wrote, none of the other's
        for channel, kind in (("state", "StateReading"), ("counts", "CountsReading"), ("buffer", "BufferReading")):
            expected = {(r.source.station, r.machine, r.ts_ms) for r in written if type(r).__name__ == kind}
            got = reader.range(channel, start_ms=lo, end_ms=hi, limit=100_000, **where)
            assert {(p.station, p.machine, p.ts_ms) for p in got} == expected, (name, channel)
            assert {p.line for p in got} == {topics.line}
        # last values: this line's final counters
        final: dict[tuple[str, int], tuple[int, int]] = {}
        for r in sorted((r for r in written if isinstance(r, CountsReading)), key=lambda r: r.ts_ms):
            final[(r.source.station, r.machine)] = (r.processed, r.defective)
        last = reader.last("counts", **where)
        assert {(p.station, p.machine): (p.fields["processed"], p.fields["defective"]) for p in last} == final
        # aggregates: the buffer levels this line wrote
        levels = [r.level for r in written if type(r).__name__ == "BufferReading"]
        buckets = reader.aggregate("buffer", "level", start_ms=lo, end_ms=hi, every_ms=hi - lo, station="COAT", **where)
        assert sum(b.count for b in buckets) == len(levels)
        assert max(b.max for b in buckets if b.max is not None) == max(levels)
        # dead letters: this line's one
        prefix = topics.base + "/"
        assert reader.dead_letter_count(topic_prefix=prefix) == 1
        (letter,) = reader.dead_letters(topic_prefix=prefix)
        assert letter.topic.startswith(prefix)
        # counter resume after a restart: this line's baselines
        again = Ingest(topics, reader, line=LINE)
        again.resume_counters()
        for key, totals in final.items():
            last_ts = max(p.ts_ms for p in last if (p.station, p.machine) == key)
            assert again.counters.last(key) == (last_ts, totals), (name, key)
        # the live state rebuilt from the shared database is this line's
        rebuilt = LiveLine(LINE, history_h=8.0)
        stats = rebuild(reader, topics, [rebuilt], start_ms=lo, end_ms=hi, counters=CumulativeCounters())
        assert stats.observer_errors == 0, stats.first_error
        watched = lives[name].status()
        assert (rebuilt.status().good, rebuilt.status().released) == (watched.good, watched.released)
        assert watched.good > 50
    assert stores["L1"].written != stores["L2"].written
    assert reader.dead_letter_count() == 2
    assert ingests["L1"].stats.stored > 100
    for store in stores.values():
        store.close()


def test_the_api_serves_its_own_lines_history_and_dead_letters_from_a_shared_database(
    influx: InfluxServer, tmp_path: Path
) -> None:
    # Another line of the same site with the same station ids writes into the database first, around now.
    store_url = f"influxdb://{influx.url.removeprefix('http://')}/shared"
    settings = demo_settings(tmp_path, store_url=store_url, spool_dir=tmp_path / "spool")
    other = InfluxStore(influx.url, "shared", spool_dir=tmp_path / "spool-other")
    other.ensure_database()
    other_src = Source(settings.site, "another-line", MIXED_LINE.stations[0].id)
    now_ms = int(time.time() * 1000)
    other.write([CountsReading(other_src, 0, now_ms - 60_000 * k, 10_000 + k, 0) for k in range(50)])
    other_topic = f"{settings.topic_prefix}/{settings.site}/another-line/{other_src.station}/state"
    other.write_dead_letters([DeadLetter(now_ms, other_topic, b"{}", "not ours")])
    other.close()

    app = create_app(settings, line=MIXED_LINE)
    with TestClient(app, headers={"X-API-Key": VIEWER}) as client:
        rt = runtime_of(client)
        wait_for(lambda: rt.ingest.stats.stored > 200, what="the demo's first readings stored")
        # a malformed message of the service's own line
        rt.ingest.submit(Delivery(rt.topics.topic(other_src.station, Channel.STATE), b"not json", now_ms, (0, 0)))
        wait_for(lambda: rt.ingest.stats.rejected >= 1, what="the dead letter")
        window = {
            "start": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
            # up to the line's clock (the demo's, which runs ahead of the wall clock): a later end is a 400
            "end": datetime.fromtimestamp(rt.live.snapshot.clock_h * 3600 + 1, UTC).isoformat(),
            "station": other_src.station,
            "limit": 10_000,
        }
        points = client.get(f"/api/v1/lines/{LINE_ID}/history/counts", params=window).json()["points"]
        assert points
        assert all(p["fields"]["processed"] < 10_000 for p in points)  # none of the other line's
        agg = client.get(
            f"/api/v1/lines/{LINE_ID}/history/counts/aggregate",
            params={**window, "field": "processed", "every_s": 4 * 86400},
        ).json()
        assert max(b["max"] for b in agg["buckets"]) < 10_000
        letters = client.get("/api/v1/dead-letters").json()
        assert letters["count"] == len(letters["latest"]) >= 1
        assert all(d["topic"].startswith(rt.topics.base + "/") for d in letters["latest"])
