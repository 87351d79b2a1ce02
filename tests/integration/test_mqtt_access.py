"""Credentials, TLS and the feed command against a real mosquitto, as a plant's broker would be set up."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.ingest_service import IngestService, IngestSettings
from connectors.linefile import read_line
from connectors.mqtt import MqttError, MqttPublisher, parse_mqtt_url
from connectors.stores.sqlite import SqliteStore
from tests.integration.mqtt_server import MosquittoServer
from tests.integration.streams import REFERENCE_LINE, REPO, TOPICS, buffer_stream, stored_levels, wait_for

pytestmark = pytest.mark.integration

LINE = read_line(REFERENCE_LINE)


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A broker that takes only user ``plant`` with password ``s3cret``, over TLS with a CA made for the test."""
    certs = tmp_path / "certs"
    certs.mkdir()

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
    )
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-extfile",
        "san.ext",
    )
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "plant", "s3cret"], check=True, capture_output=True)
    extra = "\n".join(
        [
            "allow_anonymous false",
            f"password_file {passwords}",
            f"cafile {certs / 'ca.crt'}",
            f"certfile {certs / 'server.crt'}",
            f"keyfile {certs / 'server.key'}",
        ]
    )
    server = MosquittoServer(tmp_path / "mosquitto", extra=extra)
    server.start()
    server.ca = str(certs / "ca.crt")  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


def test_ingest_connects_with_credentials_over_tls_and_a_wrong_password_is_refused_clearly(
    secured_broker: MosquittoServer, tmp_path: Path
) -> None:
    ca = secured_broker.ca  # type: ignore[attr-defined]
    good = f"mqtts://plant:s3cret@127.0.0.1:{secured_broker.port}?ca={ca}"
    wrong = MqttPublisher(parse_mqtt_url(f"mqtts://plant:guess@127.0.0.1:{secured_broker.port}?ca={ca}"))
    with pytest.raises(MqttError, match="refused the connection: Not authorized"):
        wrong.start(timeout_s=3)
    plain = MqttPublisher(parse_mqtt_url(f"mqtt://plant:s3cret@127.0.0.1:{secured_broker.port}"))
    with pytest.raises(MqttError):
        plain.start(timeout_s=3)  # the listener speaks only TLS

    store = SqliteStore(tmp_path / "s.db")
    service = IngestService(LINE, store, IngestSettings(mqtt=parse_mqtt_url(good, client_id="secure-ingest"), topics=TOPICS))
    service.start()
    pub = MqttPublisher(parse_mqtt_url(good, client_id="secure-pub"))
    pub.start()
    for topic, payload, _r in buffer_stream(200):
        pub.publish(topic, payload)
    assert pub.flush(20)
    wait_for(lambda: service.ingest.stats.stored >= 200, 20, "200 messages over TLS")
    service.stop()
    pub.stop()
    check = SqliteStore(tmp_path / "s.db")
    assert stored_levels(check) == list(range(200))
    check.close()


def test_the_feed_command_publishes_what_ingest_stores(broker: MosquittoServer, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "feed.db")
    service = IngestService(LINE, store, IngestSettings(mqtt=parse_mqtt_url(broker.url, client_id="feed-ingest"), topics=TOPICS))
    service.start()
    # 2 simulated hours at x7200: about one wall second of pacing; started 2 h in the past, so the feed's clock ends
    # at the present instead of 2 h ahead of it, beyond the lead ingest accepts (max_lead_s, 300 s)
    feed = [sys.executable, "-m", "api.cli", "feed", str(REFERENCE_LINE), "--mqtt", broker.url]
    run = subprocess.run(
        [*feed, "--speed", "7200", "--hours", "2", "--origin=-2h"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    published = int(run.stdout.split("published ")[1].split(" ")[0])
    acknowledged = int(run.stdout.split("messages, ")[1].split(" ")[0])
    assert published == acknowledged > 100
    wait_for(lambda: service.ingest.stats.received >= published, 30, "ingest to take what the feed published")
    service.stop()
    assert service.ingest.stats.rejected == 0
    assert service.live.status().stations["COAT_C"].machines[0].state is not None


def test_a_bad_feed_setting_is_refused_with_its_name(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "api.cli", "feed", str(REFERENCE_LINE), "--mqtt", "http://x", "--speed", "60"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "scheme must be mqtt or mqtts" in run.stderr
