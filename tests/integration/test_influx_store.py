"""The InfluxDB store against a real ``influxd`` (1.6.7 here): the store contract, volume, and an outage.

Each test gets its own database on a server shared by the module; the outage test starts a server of its own.
"""

from __future__ import annotations

import itertools
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.stores import InfluxStore, Store, WriteOutcome
from connectors.telemetry import BufferReading, CountsReading, ProcessReading, Reading, Source, StateReading
from tests.integration.influx_server import InfluxServer
from tests.test_stores import T0, FakeInflux, StoreContract
from twin.events import MachineState

pytestmark = pytest.mark.integration

_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    with InfluxServer(tmp_path_factory.mktemp("influxd")) as srv:
        yield srv


def open_influx(url: str, tmp_path: Path, database: str | None = None, **kw: Any) -> InfluxStore:
    store = InfluxStore(url, database or f"gt{next(_names)}", spool_dir=tmp_path / f"spool{next(_names)}", **kw)
    store.ensure_database()
    return store


class TestInfluxContract(StoreContract):
    """Every behaviour of the store contract, on a real server."""

    @pytest.fixture
    def store_factory(self, server: InfluxServer, tmp_path: Path) -> Iterator[Callable[..., Store]]:
        stores: list[Store] = []

        def make(**kw: Any) -> Store:
            stores.append(open_influx(server.url, tmp_path, **kw))
            return stores[-1]

        yield make
        for s in stores:
            s.close()


def mix(n: int) -> list[Reading]:
    """A typical stream: mostly process readings of 3-8 values, with state, counts and buffer readings."""
    out: list[Reading] = []
    for i in range(n):
        src, m, ts = Source("site1", "L1", f"ST{i % 12:02d}"), i % 4, T0 + 10 * i
        kind = i % 10
        if kind < 7:
            out.append(ProcessReading(src, m, ts, tuple((f"sig{j}", i + j / 8, "u") for j in range(3 + i % 6))))
        elif kind == 7:
            out.append(StateReading(src, m, ts, MachineState.WORKING, "EXECUTE", "", None))
        elif kind == 8:
            out.append(CountsReading(src, m, ts, i, i // 10))
        else:
            out.append(BufferReading(src, 0, ts, i % 100))
    return out


def stored_count(store: Store, channel: str, field: str, span_ms: int) -> int:
    buckets = store.aggregate(channel, field, start_ms=T0, end_ms=T0 + span_ms, every_ms=span_ms)
    return sum(b.count for b in buckets)


def test_50000_readings_are_all_counted_back(server: InfluxServer, tmp_path: Path) -> None:
    store = open_influx(server.url, tmp_path)
    readings = mix(50_000)
    assert store.write(readings) is WriteOutcome.WRITTEN
    values = sum(len(r.values) for r in readings if isinstance(r, ProcessReading))
    span = 10 * 50_000
    assert stored_count(store, "process", "value", span) == values
    assert stored_count(store, "state", "code", span) == 0  # no code was given
    assert len(store.range("state", start_ms=T0, end_ms=T0 + span, limit=100_000)) == 5000
    assert stored_count(store, "counts", "processed", span) == 5000
    assert stored_count(store, "buffer", "level", span) == 5000
    assert store.counters.points_written == values + 15_000
    store.close()


def test_an_outage_spools_and_the_restart_replays_everything_once_in_order(tmp_path: Path) -> None:
    with InfluxServer(tmp_path / "influxd") as server:
        store = open_influx(server.url, tmp_path, timeout_s=2.0, backoff_s=(0.05, 0.2), batch_points=500)
        assert store.write(mix(2000)) is WriteOutcome.WRITTEN
        server.stop()
        health = store.health()
        assert not health.writable
        # While it is down: new points, and rewrites of points written before and during the outage; the last
        # write of a point must win after the replay, which it does only if batches arrive in order.
        outage = [mix(3000)[2000:], [CountsReading(Source("site1", "L1", "ST08"), 0, T0 + 80, 1, 0)]]
        outage.append([CountsReading(Source("site1", "L1", "ST08"), 0, T0 + 80, 2, 1)])
        for batch in outage:
            assert store.write(batch) is WriteOutcome.SPOOLED
        spooled = store.health().spooled_batches
        assert spooled >= 4
        assert store.spool.segments()
        server.start()
        deadline = time.monotonic() + 20
        while store.spool.pending:
            assert time.monotonic() < deadline, "the spool was not replayed"
            time.sleep(0.05)
        assert store.counters.batches_replayed == spooled
        readings = mix(3000)
        values = sum(len(r.values) for r in readings if isinstance(r, ProcessReading))
        assert stored_count(store, "process", "value", 30_000) == values
        assert stored_count(store, "counts", "processed", 30_000) == 300
        (rewritten,) = store.range("counts", start_ms=T0 + 80, end_ms=T0 + 81)
        assert rewritten.fields == {"processed": 2, "defective": 1}
        assert store.health() == (True, f"influxdb {server.url} db {store.database}: writable", 0)
        store.close()


def test_the_spool_outlives_the_process(tmp_path: Path) -> None:
    with InfluxServer(tmp_path / "influxd") as server:
        first = open_influx(server.url, tmp_path, database="gt", timeout_s=0.5)
        server.stop()
        assert first.write(mix(100)) is WriteOutcome.SPOOLED
        first.close()  # the server is down: the batch stays on disk
        server.start()
        again = InfluxStore(server.url, "gt", spool_dir=first.spool.directory, backoff_s=(0.05, 0.2))
        deadline = time.monotonic() + 20
        while again.spool.pending:
            assert time.monotonic() < deadline, "the spool was not replayed"
            time.sleep(0.05)
        assert len(again.range("process", start_ms=T0, end_ms=T0 + 1000, limit=1000)) == sum(
            len(r.values) for r in mix(100) if isinstance(r, ProcessReading)
        )
        again.close()


def test_health_fails_when_writes_fail_although_the_server_answers_ping(server: InfluxServer, tmp_path: Path) -> None:
    store = InfluxStore(server.url, "never_created", spool_dir=tmp_path / "spool")  # and ensure_database not called
    with urllib.request.urlopen(f"{server.url}/ping", timeout=5) as resp:
        assert resp.status == 204  # a ping-based check would call this server healthy
    health = store.health()
    assert not health.writable
    assert "database not found" in health.detail
    store.ensure_database()
    assert store.health().writable
    store.close()


def test_a_closed_store_probes_nothing(server: InfluxServer, tmp_path: Path) -> None:
    # The service's health probe runs in a background thread and may come after the shutdown closed the store: it must
    # not open a connection that nobody closes (it leaked a socket, reported later as an unclosed-socket warning).
    store = InfluxStore(server.url, "gt_closed", spool_dir=tmp_path / "spool")
    store.ensure_database()
    assert store.health().writable
    store.close()
    health = store.health()
    assert not health.writable
    assert "closed" in health.detail


@pytest.mark.parametrize("flavour", ["v2", "v3"])
def test_v2_and_v3_send_the_token(flavour: str, tmp_path: Path) -> None:
    fake = FakeInflux()
    store = InfluxStore("https://influx.example:8086", "gt", flavour=flavour, token="tok3n", spool_dir=tmp_path, transport=fake)
    store.write(mix(1))
    store.range("state", start_ms=T0, end_ms=T0 + 1)
    store.ensure_database()  # nothing to do on v2/v3: no request
    write, query = fake.requests
    assert write.headers["Authorization"] == query.headers["Authorization"] == "Token tok3n"
    assert write.url == "https://influx.example:8086/write?db=gt&precision=ms"
    assert write.headers["Content-Encoding"] == "gzip"
    assert query.url.startswith("https://influx.example:8086/query?db=gt&q=SELECT+")
    store.close()


def test_v1_sends_basic_authentication_and_creates_its_database(tmp_path: Path) -> None:
    fake = FakeInflux()
    store = InfluxStore("http://h:8086", "gt", username="u", password="p", spool_dir=tmp_path, transport=fake)
    store.ensure_database()
    (create,) = fake.requests
    assert create.headers["Authorization"] == "Basic dTpw"
    assert create.body == b"q=CREATE+DATABASE+%22gt%22"
    store.close()
