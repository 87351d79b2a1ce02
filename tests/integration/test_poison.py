"""Poison messages through real parts: mosquitto, the ingest pipeline and InfluxDB.

Three payloads used to stop the pipeline thread for good (and, redelivered after a restart, to stop it again):
deeply nested JSON, an integer beyond 64 bits and a lone surrogate escape. Published between valid messages,
each must become a dead letter with its reason while every valid message, before and after them, is stored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.ingest import Ingest
from connectors.linefile import read_line
from connectors.mqtt import MqttPublisher, MqttSubscriber, parse_mqtt_url
from connectors.stores import open_store
from connectors.stores.base import Store
from connectors.telemetry import Channel
from tests.integration.influx_server import InfluxServer
from tests.integration.mqtt_server import MosquittoServer
from tests.integration.streams import REFERENCE_LINE, T0_MS, TOPICS, buffer_stream, stored_levels, wait_for
from twin.state import LiveLine

pytestmark = pytest.mark.integration

LINE = read_line(REFERENCE_LINE)
POISON = {
    "deep": (TOPICS.topic("COAT_C", Channel.STATE), b"[" * 100_000),
    "int64": (TOPICS.topic("COAT_C", Channel.BUFFER), b'{"v": 1, "ts": %d, "level": 18446744073709551616}' % T0_MS),
    "surrogate": (
        TOPICS.topic("COAT_C", Channel.STATE),
        b'{"v": 1, "ts": %d, "state": "HELD", "reason": "\\ud800"}' % (T0_MS + 500),
    ),
}


class _Pipeline:
    """A subscriber feeding an ingest whose pipeline thread runs until stopped, as ``gigatwin ingest`` wires them."""

    def __init__(self, broker: MosquittoServer, store: Store) -> None:
        cfg = parse_mqtt_url(broker.url, client_id="ingest-poison")
        self.live = LiveLine(LINE)
        self.ingest = Ingest(
            TOPICS, store, line=LINE, observers=[self.live], batch_size=100, batch_wait_s=0.02, queue_size=2 * cfg.receive_maximum
        )
        self.subscriber = MqttSubscriber(cfg, TOPICS.subscription(), self.ingest.submit)
        self.ingest.ack = self.subscriber.ack
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.ingest.run, args=(self.stop,), daemon=True)

    def start(self) -> None:
        self.thread.start()
        self.subscriber.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.subscriber.stop()


@pytest.fixture
def pipeline(broker: MosquittoServer, influx: InfluxServer, tmp_path: Path) -> Iterator[tuple[_Pipeline, Store]]:
    store = open_store(f"influxdb://127.0.0.1:{influx.port}/gigatwin", spool_dir=str(tmp_path / "spool"))
    p = _Pipeline(broker, store)
    p.start()
    try:
        yield p, store
    finally:
        p.close()
        store.close()


def test_poison_payloads_between_valid_messages_are_dead_letters_and_everything_valid_is_stored(
    broker: MosquittoServer, pipeline: tuple[_Pipeline, Store]
) -> None:
    p, store = pipeline
    pub = MqttPublisher(parse_mqtt_url(broker.url, client_id="poison-publisher"))
    pub.start()
    valid = buffer_stream(30)
    sent = 0
    for i, (topic, payload, _r) in enumerate(valid[:20]):
        pub.publish(topic, payload)
        sent += 1
        if i % 7 == 5:  # after the 6th, 13th and 20th message: a poison payload, in the middle of a batch
            pub.publish(*POISON[("deep", "int64", "surrogate")[i // 7]])
            sent += 1
    assert pub.flush()
    wait_for(lambda: p.ingest.stats.acked >= sent, 60, "ingest to take the first messages and the poison ones")
    assert p.thread.is_alive()
    # Published after the poison: still stored (the pipeline was not stopped, nor stuck redelivering them).
    for topic, payload, _r in valid[20:]:
        pub.publish(topic, payload)
    assert pub.flush()
    pub.stop()
    wait_for(lambda: p.ingest.stats.acked >= sent + 10, 60, "ingest to take the messages after the poison ones")
    wait_for(lambda: len(stored_levels(store)) >= 30, 60, "InfluxDB to hold every valid reading")
    assert stored_levels(store) == list(range(30))
    letters = store.dead_letters(limit=10)
    assert sorted(dl.payload for dl in letters) == sorted(payload for _t, payload in POISON.values())
    reasons = {dl.payload: dl.reason for dl in letters}
    assert "nested deeper than" in reasons[POISON["deep"][1]]
    assert "payload.level" in reasons[POISON["int64"][1]]
    assert "not valid Unicode" in reasons[POISON["surrogate"][1]]
    assert p.ingest.stats.rejected == 3
    assert p.ingest.stats.last_error == ""
    assert p.live.status().stations["COAT_C"].buffer_level == 29  # the live state took the valid ones too
