"""End-to-end ingest speed, measured against a bare paho-mqtt subscriber on the same broker in the same run.

    .venv/bin/python simulations/bench/bench_ingest.py [--messages 100000]

Starts its own mosquitto (the shipped configuration) and influxd on free loopback ports. Both consumers
first open persistent sessions; then N telemetry messages of the virtual plant's mix (process values at
1 Hz per station, state changes, counters, buffer levels of the reference line) are published at QoS 1
while both are away, so the broker holds N for each and the publisher's speed does not limit either.
Then each consumer drains its N, timed:
- bare: a paho-mqtt v5 subscriber that only counts messages (QoS 1, paho's automatic acknowledgement);
- ingest: GigaTwin's pipeline: decode, validate, deduplicate, InfluxDB write (acknowledged after the
  write), live state.
Zero loss is checked: every point is counted back from InfluxDB. Targets: ingest >= 65 % of the bare
rate and >= 10,000 messages/s. A benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from api.ingest_service import IngestService, IngestSettings  # noqa: E402
from connectors.feed import VirtualPlant  # noqa: E402
from connectors.linefile import read_line  # noqa: E402
from connectors.mqtt import MqttPublisher, parse_mqtt_url  # noqa: E402
from connectors.stores.influx import InfluxStore  # noqa: E402
from connectors.telemetry import ProcessReading, Topics, decode  # noqa: E402
from tests.integration.influx_server import InfluxServer  # noqa: E402
from tests.integration.mqtt_server import MosquittoServer  # noqa: E402

LINE = read_line(REPO / "simulations" / "lines" / "reference_cell_line.yaml")
TOPICS = Topics("gigatwin", "bench", LINE.name)


class _Collect:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.sent.append((topic, payload))


def message_mix(n: int) -> list[tuple[str, bytes]]:
    """N messages of the virtual plant's mix (the plant run long enough to make them, then cut to N)."""
    out = _Collect()
    hours = 1.0
    while len(out.sent) < n:
        out.sent.clear()
        VirtualPlant(LINE, topics=TOPICS, publisher=out, seed=1, origin_ms=1_763_900_000_000, process_period_s=1.0).run_unpaced(
            hours
        )
        hours *= 2
    return out.sent[:n]


def _bare_session(url_port: int, client_id: str) -> tuple[paho.Client, list[int]]:
    count = [0]
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)

    def on_message(_c: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        count[0] += 1

    def on_connect(c: paho.Client, *_: object) -> None:
        c.subscribe(TOPICS.subscription(), qos=1)

    client.on_message = on_message
    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", url_port, clean_start=False, properties=props)
    return client, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    n = args.messages
    work = Path(tempfile.mkdtemp(prefix="gigatwin-bench-"))
    mix = message_mix(n)
    # Distinct points: readings of one series at one millisecond are one point (the later replaces the earlier).
    keys: set[tuple[object, ...]] = set()
    for topic, payload in mix:
        src, ch = TOPICS.parse(topic)
        r = decode(src, ch, payload)
        if isinstance(r, ProcessReading):
            keys.update((ch, src.station, r.machine, name, r.ts_ms) for name, _v, _u in r.values)
        else:
            keys.add((ch, src.station, r.machine, "", r.ts_ms))
    points = len(keys)
    kinds: dict[str, int] = {}
    for topic, _p in mix:
        kinds[topic.rsplit("/", 1)[1]] = kinds.get(topic.rsplit("/", 1)[1], 0) + 1
    print(f"{n} messages ({points} points): " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))

    with MosquittoServer(work / "mosquitto") as broker:
        influx = InfluxServer(work / "influxdb")
        influx.start()
        try:
            # 1. open both persistent sessions, then leave
            bare, count = _bare_session(broker.port, "bench-bare")
            bare.loop_start()
            time.sleep(0.5)
            bare.disconnect()
            bare.loop_stop()
            store = InfluxStore(f"http://127.0.0.1:{influx.port}", "bench", spool_dir=work / "spool")
            store.ensure_database()
            settings = IngestSettings(mqtt=parse_mqtt_url(broker.url, client_id="bench-ingest"), topics=TOPICS)
            service = IngestService(LINE, store, settings)
            service.subscriber.start()
            service.subscriber.stop()

            # 2. publish N while both are away
            pub = MqttPublisher(parse_mqtt_url(broker.url, client_id="bench-pub"))
            pub.start()
            t = time.perf_counter()
            for topic, payload in mix:
                pub.publish(topic, payload)
            pub.flush(120)
            pub.stop()
            print(f"published in {time.perf_counter() - t:.1f} s (python publisher, QoS 1)")

            # 3. bare subscriber drains its N
            count[0] = 0
            bare, count = _bare_session(broker.port, "bench-bare")
            t = time.perf_counter()
            bare.loop_start()
            while count[0] < n and time.perf_counter() - t < 300:
                time.sleep(0.005)
            bare_s = time.perf_counter() - t
            bare.disconnect()
            bare.loop_stop()
            bare_got = count[0]

            # 4. ingest drains its N into InfluxDB
            service = IngestService(LINE, store, settings)
            stats = service.ingest.stats
            t = time.perf_counter()
            service.start()
            while stats.received < n and time.perf_counter() - t < 600:
                time.sleep(0.005)
            ingest_s = time.perf_counter() - t
            service.stop()
            check = InfluxStore(f"http://127.0.0.1:{influx.port}", "bench", spool_dir=work / "check")
            stored = 0
            lo, hi = 1_763_900_000_000 - 1, 1_763_900_000_000 + 30 * 86_400_000
            for channel in ("state", "counts", "process", "buffer", "store", "input"):
                offset = 0
                while page := check.range(channel, start_ms=lo, end_ms=hi, limit=50_000, offset=offset):
                    stored += len(page)
                    offset += len(page)
            check.close()
        finally:
            influx.stop()

    bare_rate, ingest_rate = bare_got / bare_s, stats.received / ingest_s
    print()
    print(f"{'consumer':<40}{'messages':>10}{'seconds':>9}{'msg/s':>10}")
    print(f"{'bare paho subscriber (count only)':<40}{bare_got:>10}{bare_s:>9.2f}{bare_rate:>10.0f}")
    print(f"{'ingest: decode+live state+InfluxDB':<40}{stats.received:>10}{ingest_s:>9.2f}{ingest_rate:>10.0f}")
    print(
        f"ratio ingest/bare: {ingest_rate / bare_rate:.2f} (target >= 0.65, moonshot 0.80);"
        f" ingest >= 10,000 msg/s: {ingest_rate >= 10_000}"
    )
    print(
        f"points in InfluxDB: {stored} of {points} expected; "
        f"rejected {stats.rejected}, duplicates {stats.duplicates}, spooled batches {stats.spooled_batches}"
    )


if __name__ == "__main__":
    main()
