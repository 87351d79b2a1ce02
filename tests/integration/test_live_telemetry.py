"""Live telemetry with real parts: mosquitto and influxd started by the tests, the feed, ingest and the stores.

Each test checks what a plant engineer relies on: what was published is stored, exactly once, through a
consumer crash, a broker restart, a database outage, bad messages, and a stream split between consumers.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from api.ingest_service import IngestService, IngestSettings
from connectors.feed import Faults, VirtualPlant
from connectors.linefile import read_line
from connectors.mqtt import MqttPublisher, parse_mqtt_url
from connectors.stores import open_store
from connectors.stores.influx import InfluxStore
from connectors.stores.sqlite import SqliteStore
from connectors.telemetry import Channel, CountsReading, StateReading
from tests.integration.influx_server import InfluxServer
from tests.integration.mqtt_server import MosquittoServer
from tests.integration.streams import (
    REFERENCE_LINE,
    TOPICS,
    IngestProcess,
    RecordingPublisher,
    buffer_stream,
    readings_of,
    stored_levels,
    wait_for,
)
from twin.events import MachineState

pytestmark = pytest.mark.integration

LINE = read_line(REFERENCE_LINE)


def _publisher(broker: MosquittoServer, client_id: str = "test-publisher") -> MqttPublisher:
    pub = MqttPublisher(parse_mqtt_url(broker.url, client_id=client_id))
    pub.start()
    return pub


def _service(broker: MosquittoServer, store_url: str, tmp_path: Path, client_id: str = "ingest-a") -> IngestService:
    store = open_store(store_url, spool_dir=str(tmp_path / "spool"))
    settings = IngestSettings(mqtt=parse_mqtt_url(broker.url, client_id=client_id), topics=TOPICS, batch_wait_s=0.02)
    return IngestService(LINE, store, settings)


def _publish_paced(pub: MqttPublisher, messages: list[tuple[str, bytes, object]], per_s: float) -> None:
    gap = 1.0 / per_s
    t = time.monotonic()
    for topic, payload, _r in messages:
        pub.publish(topic, payload)
        t += gap
        pause = t - time.monotonic()
        if pause > 0:
            time.sleep(pause)


def test_the_feed_publishes_ingest_stores_and_queries_return_what_was_published(
    broker: MosquittoServer, influx: InfluxServer, tmp_path: Path
) -> None:
    service = _service(broker, f"influxdb://127.0.0.1:{influx.port}/gigatwin", tmp_path)
    service.start()
    pub = RecordingPublisher(_publisher(broker))
    plant = VirtualPlant(LINE, topics=TOPICS, publisher=pub, seed=4, origin_ms=1_763_900_000_000)
    plant.run_unpaced(6.0)
    pub.inner.flush()
    readings, bad = readings_of(pub.sent)
    assert bad == 0
    assert len(readings) > 1000
    wait_for(lambda: service.ingest.stats.received >= len(pub.sent), 60, "ingest to take every message")
    service.stop()
    pub.inner.stop()

    store = InfluxStore(f"http://127.0.0.1:{influx.port}", "gigatwin", spool_dir=tmp_path / "check")
    lo, hi = min(r.ts_ms for r in readings), max(r.ts_ms for r in readings) + 1
    # every published count is there with its value (the last per machine equals the last published)
    last_counts = {(p.station, p.machine): (p.fields["processed"], p.fields["defective"]) for p in store.last("counts")}
    published_last: dict[tuple[str, int], tuple[int, int]] = {}
    for r in sorted((r for r in readings if isinstance(r, CountsReading)), key=lambda r: r.ts_ms):
        published_last[(r.source.station, r.machine)] = (r.processed, r.defective)
    assert last_counts == published_last
    # raw ranges: one stored point per distinct (channel, station, machine, signal, ts) published
    for channel in ("state", "buffer", "counts"):
        expected = {(r.source.station, r.machine, r.ts_ms) for r in readings if r.__class__.__name__.lower().startswith(channel)}
        got = {(p.station, p.machine, p.ts_ms) for p in store.range(channel, start_ms=lo, end_ms=hi, limit=100_000)}
        assert got == expected, channel
    # windowed aggregates agree with the published process values
    speeds = [
        v for r in readings if r.__class__.__name__ == "ProcessReading" and r.source.station == "COAT_C"
        for name, v, _u in r.values if name == "line_speed_m_min"
    ]  # fmt: skip
    if speeds:
        buckets = store.aggregate(
            "process", "value", start_ms=lo, end_ms=hi, every_ms=hi - lo, station="COAT_C", signal="line_speed_m_min"
        )
        # buckets are aligned to multiples of every_ms, so the span may fall into two of them
        assert sum(b.count for b in buckets) == len(speeds)
        mean = sum(b.mean * b.count for b in buckets if b.mean is not None) / len(speeds)
        assert mean == pytest.approx(sum(speeds) / len(speeds), rel=1e-9)
        assert min(b.min for b in buckets if b.min is not None) == min(speeds)
        assert max(b.max for b in buckets if b.max is not None) == max(speeds)
    store.close()


def test_a_consumer_killed_mid_stream_misses_nothing_when_it_returns(broker: MosquittoServer, tmp_path: Path) -> None:
    db = tmp_path / "ingest.db"
    proc = IngestProcess(broker.url, f"sqlite:{db}", "ingest-crash", workdir=tmp_path)
    proc.start()
    messages = buffer_stream(3000)
    pub = _publisher(broker)
    sender = threading.Thread(target=_publish_paced, args=(pub, messages, 1500.0))
    sender.start()
    store = SqliteStore(db)
    wait_for(lambda: len(stored_levels(store)) >= 300, 30, "ingest to store part of the stream")
    proc.stop(kill=True)  # a crash: whatever it had not acknowledged is redelivered
    at_crash = len(stored_levels(store))
    assert sender.is_alive(), "the crash did not happen mid-stream"
    sender.join()
    assert pub.flush(30)
    assert at_crash < 3000
    proc.start()
    wait_for(lambda: len(set(stored_levels(store))) == 3000, 60, "all 3000 messages to be stored")
    second = proc.stop()
    assert sorted(stored_levels(store)) == list(range(3000))  # nothing lost, nothing stored twice
    assert second["rejected"] == 0
    store.close()
    pub.stop()


def test_the_broker_restarted_mid_stream_loses_nothing_acknowledged(broker: MosquittoServer, tmp_path: Path) -> None:
    service = _service(broker, f"sqlite:{tmp_path / 'b.db'}", tmp_path)
    service.start()
    pub = _publisher(broker)
    messages = buffer_stream(4000)
    _publish_paced(pub, messages[:2000], 2000.0)
    assert pub.flush(30)
    broker.restart()  # SIGTERM: mosquitto saves sessions and queued messages
    _publish_paced(pub, messages[2000:], 2000.0)  # paho queues while disconnected and resends on reconnect
    assert pub.flush(60), "the publisher's messages were not all acknowledged by the broker"
    wait_for(lambda: service.ingest.stats.stored >= 4000, 60, "every acknowledged message to be stored")
    service.stop()
    store = SqliteStore(tmp_path / "b.db")
    assert sorted(stored_levels(store)) == list(range(4000))
    store.close()
    pub.stop()


def test_influxdb_stopped_and_restarted_loses_nothing(broker: MosquittoServer, influx: InfluxServer, tmp_path: Path) -> None:
    url = f"influxdb://127.0.0.1:{influx.port}/gigatwin"
    service = _service(broker, url, tmp_path)
    service.start()
    pub = _publisher(broker)
    messages = buffer_stream(6000)
    _publish_paced(pub, messages[:2000], 2000.0)
    wait_for(lambda: service.ingest.stats.stored >= 2000, 30, "the first part to be written")
    influx.stop()
    _publish_paced(pub, messages[2000:4000], 2000.0)
    wait_for(lambda: service.ingest.stats.stored >= 4000, 30, "the outage's messages to be spooled")
    assert service.ingest.stats.spooled_batches > 0
    influx.start()
    _publish_paced(pub, messages[4000:], 2000.0)
    wait_for(lambda: service.ingest.stats.stored >= 6000, 30, "the rest to be taken")
    check = InfluxStore(f"http://127.0.0.1:{influx.port}", "gigatwin", spool_dir=tmp_path / "check")
    wait_for(lambda: len(stored_levels(check)) == 6000, 60, "the spool to be replayed")
    service.stop()
    assert sorted(stored_levels(check)) == list(range(6000))
    check.close()
    pub.stop()


def test_malformed_duplicated_and_reordered_messages_are_dead_lettered_or_deduplicated(
    broker: MosquittoServer, tmp_path: Path
) -> None:
    service = _service(broker, f"sqlite:{tmp_path / 'f.db'}", tmp_path)
    service.start()
    pub = RecordingPublisher(_publisher(broker))
    faults = Faults(drop=0.01, duplicate=0.01, reorder=0.01, malformed=0.01, seed=11)
    plant = VirtualPlant(LINE, topics=TOPICS, publisher=pub, seed=2, origin_ms=1_763_900_000_000, faults=faults)
    plant.run_unpaced(8.0)
    assert pub.inner.flush(30)
    wait_for(lambda: service.ingest.stats.received >= len(pub.sent), 60, "ingest to take every message")
    service.stop()
    readings, bad = readings_of(pub.sent)
    stats = service.ingest.stats
    unique = set(readings)
    assert bad > 0, "the run injected no malformed message"
    assert len(readings) > len(unique), "the run injected no duplicate"
    assert stats.rejected == bad  # every malformed message is a dead letter, none lost
    assert stats.duplicates == len(readings) - len(unique)
    assert stats.stored == len(unique)
    store = SqliteStore(tmp_path / "f.db")
    assert store.dead_letter_count() == bad
    assert all(dl.reason for dl in store.dead_letters(limit=1000))
    lo, hi = min(r.ts_ms for r in readings), max(r.ts_ms for r in readings) + 1
    stored_states = store.range("state", start_ms=lo, end_ms=hi, limit=100_000)
    published_states = {(r.source.station, r.machine, r.ts_ms) for r in unique if r.__class__.__name__ == "StateReading"}
    assert {(p.station, p.machine, p.ts_ms) for p in stored_states} == published_states
    store.close()


def test_two_ingest_processes_on_one_shared_subscription_split_the_stream(
    broker: MosquittoServer, influx: InfluxServer, tmp_path: Path
) -> None:
    url = f"influxdb://127.0.0.1:{influx.port}/gigatwin"
    a = IngestProcess(broker.url, url, "ingest-a", "--group", "g1", "--spool-dir", str(tmp_path / "sa"), workdir=tmp_path)
    b = IngestProcess(broker.url, url, "ingest-b", "--group", "g1", "--spool-dir", str(tmp_path / "sb"), workdir=tmp_path)
    a.start()
    b.start()
    pub = _publisher(broker)
    _publish_paced(pub, buffer_stream(4000), 4000.0)
    assert pub.flush(30)
    wait_for(lambda: a.stats().get("stored", 0) + b.stats().get("stored", 0) >= 4000, 60, "both consumers to store the stream")
    sa, sb = a.stop(), b.stop()
    assert sa["stored"] > 500, f"the stream was not split: {sa['stored']} / {sb['stored']}"
    assert sb["stored"] > 500, f"the stream was not split: {sa['stored']} / {sb['stored']}"
    assert sa["stored"] + sb["stored"] == 4000  # nothing doubled
    check = InfluxStore(f"http://127.0.0.1:{influx.port}", "gigatwin", spool_dir=tmp_path / "check")
    assert sorted(stored_levels(check)) == list(range(4000))  # nothing lost
    check.close()
    pub.stop()


def test_a_gateway_publishing_with_mosquitto_pub_is_stored_and_its_bad_message_kept(
    broker: MosquittoServer, tmp_path: Path
) -> None:
    service = _service(broker, f"sqlite:{tmp_path / 'g.db'}", tmp_path)
    service.start()
    topic = TOPICS.topic("COAT_C", Channel.STATE)
    good = '{"v": 1, "ts": 1763900000000, "state": "HELD", "reason": "web_break", "code": 1042}'
    bad = '{"v": 1, "ts": 1763900001000, "state": "HELD", "machine": 7}'
    for payload in (good, bad):
        subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-V", "mqttv5", "-t", topic, "-m", payload],
            check=True,
        )
    wait_for(lambda: service.ingest.stats.received >= 2, 20, "both messages")
    service.stop()
    store = SqliteStore(tmp_path / "g.db")
    (point,) = store.last("state", station="COAT_C")
    assert point.fields["state"] == "DOWN"
    assert point.fields["reason"] == "web_break"
    assert point.fields["code"] == 1042
    (letter,) = store.dead_letters()
    assert letter.payload == bad.encode()
    assert "machine" in letter.reason
    coat = service.live.status().stations["COAT_C"]
    assert coat.machines[0].state is MachineState.DOWN
    assert coat.machines[0].reason == "web_break"
    store.close()


def test_the_live_state_rebuilt_from_the_wire_shows_what_the_plant_published(broker: MosquittoServer, tmp_path: Path) -> None:
    service = _service(broker, f"sqlite:{tmp_path / 'l.db'}", tmp_path)
    service.start()
    pub = RecordingPublisher(_publisher(broker))
    plant = VirtualPlant(LINE, topics=TOPICS, publisher=pub, seed=9, origin_ms=1_763_900_000_000)
    plant.run_unpaced(6.0)
    assert pub.inner.flush(30)
    wait_for(lambda: service.ingest.stats.received >= len(pub.sent), 60, "ingest to take every message")
    service.stop()
    readings, _ = readings_of(pub.sent)
    last_counts: dict[tuple[str, int], CountsReading] = {}
    last_state: dict[tuple[str, int], StateReading] = {}
    for r in sorted(readings, key=lambda r: r.ts_ms):  # stable: same-ms messages keep their publishing order
        if isinstance(r, CountsReading):
            last_counts[(r.source.station, r.machine)] = r
        elif isinstance(r, StateReading):
            last_state[(r.source.station, r.machine)] = r
    status = service.live.status()
    for station in LINE.stations:
        st = status.stations[station.id]
        made = [c for (sid, _m), c in last_counts.items() if sid == station.id]
        assert st.good == sum(c.processed - c.defective for c in made), station.id
        assert st.scrapped == sum(c.defective for c in made), station.id
        for m in st.machines:
            sent = last_state.get((station.id, m.machine))
            assert (m.state, m.reason) == ((sent.state, sent.reason) if sent else (None, "")), (station.id, m.machine)
    # from an empty line nothing reaches the end in 6 h (aging alone takes 14 days); the coater has made rolls
    assert status.good == status.stations[LINE.stations[-1].id].good
    assert status.stations["COAT_C"].good > 0
    shift = service.live.shift_kpis()
    assert shift is not None
    assert 0.0 <= shift.stations["FORM"].oee <= 1.0
