"""The broker configuration outside a container: the documented command (``connectors/mosquitto/local.sh``) starts
mosquitto with the shipped settings on a loopback port and a persistence directory of the user's, and a
persistent session's queued messages survive a restart of it. Also ``gigatwin feed`` against such a broker: it
announces how its clock relates to the wall clock and reports its lead."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.mqtt import Delivery, MqttPublisher, MqttSubscriber, parse_mqtt_url
from tests.conftest import REPO
from tests.integration.mqtt_server import free_port, listening

LOCAL_SH = REPO / "connectors" / "mosquitto" / "local.sh"


class LocalBroker:
    """mosquitto started by the documented command, as a user would, in its own process group."""

    def __init__(self, port: int, data: Path) -> None:
        self.port, self.data = port, data
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["sh", str(LOCAL_SH), "--port", str(self.port), "--data", str(self.data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while True:
            if listening(self.port):
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr and self.proc.poll() is not None else ""
                self.stop()
                raise RuntimeError(f"local.sh did not start mosquitto on port {self.port}: {err}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # local.sh execs mosquitto: the signal reaches the broker
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None


@pytest.fixture
def local_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = LocalBroker(free_port(), tmp_path / "not-yet" / "mosquitto")  # a directory that does not exist yet
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_the_readme_documents_the_command_that_is_tested() -> None:
    readme = (REPO / "README.md").read_text()
    assert "connectors/mosquitto/local.sh --port" in readme


def test_the_documented_local_command_runs_the_shipped_settings_and_keeps_sessions_across_a_restart(
    local_broker: LocalBroker,
) -> None:
    conf = (local_broker.data / "mosquitto.conf").read_text()
    assert f"listener {local_broker.port} 127.0.0.1" in conf  # loopback only, the port asked for
    assert f"persistence_location {local_broker.data}/" in conf
    assert "max_queued_messages 2000000" in conf  # the shipped settings, not mosquitto's defaults

    url = f"mqtt://127.0.0.1:{local_broker.port}"
    got: queue.Queue[Delivery] = queue.Queue()
    sub = MqttSubscriber(parse_mqtt_url(url, client_id="local-sub"), "local/#", got.put)
    sub.start()
    sub.stop()  # away: the session stays on the broker
    pub = MqttPublisher(parse_mqtt_url(url, client_id="local-pub"))
    pub.start()
    for i in range(3):
        pub.publish("local/x", f"m{i}".encode())
    assert pub.flush()
    pub.stop()

    local_broker.stop()  # SIGTERM: mosquitto saves the session and its queued messages in the data directory
    assert (local_broker.data / "mosquitto.db").is_file()
    local_broker.start()

    sub = MqttSubscriber(parse_mqtt_url(url, client_id="local-sub"), "local/#", got.put)
    sub.start()
    try:
        payloads = [got.get(timeout=10).payload for _ in range(3)]
    finally:
        sub.stop()
    assert payloads == [b"m0", b"m1", b"m2"]


def test_a_bad_port_is_refused_by_name(tmp_path: Path) -> None:
    done = subprocess.run(["sh", str(LOCAL_SH), "--port", "eighty"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert "--port must be a number from 1 to 65535, got 'eighty'" in done.stderr


def test_gigatwin_feed_announces_its_clock_and_reports_its_lead(local_broker: LocalBroker) -> None:
    url = f"mqtt://127.0.0.1:{local_broker.port}"
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "feed", str(REPO / "simulations/lines/reference_cell_line.yaml"),
         "--mqtt", url, "--speed", "3600", "--hours", "1", "--warmup", "0", "--origin=-2h", "--status-every", "0.3"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"source time = \S+Z \+ 3600 x wall seconds since \S+Z", out)
    assert "the source clock starts 2.0 h behind the wall clock and reaches it after 2 s of wall time" in out
    assert "at the end (1 s of wall time) it is 60.0 min behind the wall clock" in out
    clock = json.loads(next(line for line in out.splitlines() if line.startswith("clock "))[6:])
    assert clock["lead_s_at_start"] == pytest.approx(-7200, abs=1)
    assert clock["lead_s_at_end"] == pytest.approx(-7200 + 3599, abs=1)
    assert clock["max_lead_s"] == 0
    final = json.loads(next(line for line in out.splitlines() if line.startswith("final "))[6:])
    assert final["simulated_h"] == 1.0
    assert final["messages"] > 100
    # after the last message the feed's clock stands still at origin + 1 h, and the wall clock moves on
    assert -3600 - 30 < final["lead_s"] < -3600 + 1


def test_gigatwin_feed_refuses_a_bad_origin_before_warming_up() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "feed", str(REPO / "simulations/lines/reference_cell_line.yaml"),
         "--mqtt", "mqtt://127.0.0.1:1", "--origin", "last tuesday"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2
    assert "origin: expected 'now'" in done.stderr
    assert "warming" not in done.stdout
