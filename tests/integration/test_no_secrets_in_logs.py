"""No secret in any line a command prints or logs: ``gigatwin ingest`` and ``serve`` run with broker and store URLs that
carry passwords and tokens (and API keys), everything they write to stdout and stderr (log records included) is
captured, and none of the secrets appears in it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from connectors.mqtt import MqttPublisher, parse_mqtt_url
from connectors.stores import open_store
from tests.integration.influx_server import InfluxServer
from tests.integration.mqtt_server import MosquittoServer
from tests.integration.streams import REFERENCE_LINE, buffer_stream, wait_for

pytestmark = pytest.mark.integration

MQTT_PW = "mqtt-pw-Zq81"
INFLUX_TOKEN = "influx-token-Xv27"
INFLUX_PW = "influx-pw-Kd55"
API_KEY = "api-key-Wr93"
SECRETS = (MQTT_PW, INFLUX_TOKEN, INFLUX_PW, API_KEY)


class _Command:
    """A command with stdout and stderr captured, as a service manager's journal would keep them."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(p,), daemon=True) for p in (self.proc.stdout, self.proc.stderr)]
        for r in self.readers:
            r.start()

    def _read(self, pipe: object) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            self.out.append(line)

    @property
    def text(self) -> str:
        return "".join(self.out)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        for r in self.readers:
            r.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGATWIN_")}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env.update(extra)
    return env


def _assert_no_secret(text: str, what: str) -> None:
    assert text.strip(), f"{what} printed nothing: the test would prove nothing"
    for secret in SECRETS:
        assert secret not in text, f"{what} printed {secret!r}:\n{text[-3000:]}"


def _database(influx: InfluxServer, tmp_path: Path) -> None:
    # the v2 flavour does not create databases; InfluxDB 1.6 without authentication ignores the credentials
    open_store(f"influxdb://127.0.0.1:{influx.port}/gigatwin", spool_dir=tmp_path / "setup").close()


def test_ingest_prints_and_logs_no_secret(broker: MosquittoServer, influx: InfluxServer, tmp_path: Path) -> None:
    _database(influx, tmp_path)
    mqtt = f"mqtt://plant:{MQTT_PW}@127.0.0.1:{broker.port}?client_id=secret-ingest"
    store = f"influxdb://127.0.0.1:{influx.port}/gigatwin?flavour=v2&token={INFLUX_TOKEN}"
    cmd = _Command(
        ["ingest", "--mqtt", mqtt, "--store", store, "--line", str(REFERENCE_LINE), "--status-every", "0.2", "--spool-dir", "sp"],
        _env(tmp_path),
        tmp_path,
    )
    try:
        wait_for(lambda: "gigatwin ingest:" in cmd.text or cmd.proc.poll() is not None, 30, "ingest to subscribe")
        pub = MqttPublisher(parse_mqtt_url(broker.url, client_id="secret-pub"))
        pub.start()
        for topic, payload, _r in buffer_stream(50):
            pub.publish(topic, payload)
        assert pub.flush(10)
        pub.stop()
        wait_for(lambda: '"received": 50' in cmd.text, 30, "ingest to take the messages")
    finally:
        code = cmd.stop()
    assert code == 0, cmd.text[-3000:]
    assert "mqtt://127.0.0.1" in cmd.text  # the banner names the broker and the store, without their secrets
    assert "token=***" in cmd.text
    _assert_no_secret(cmd.text, "gigatwin ingest")

    # a URL refused at start is quoted in the error, with its password hidden
    bad = subprocess.run(
        [sys.executable, "-m", "api.cli", "ingest", "--mqtt", f"mqtt://plant:{MQTT_PW}@127.0.0.1:1?bogus=1", "--store", store],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "bogus" in bad.stderr
    _assert_no_secret(bad.stdout + bad.stderr, "gigatwin ingest with a bad URL")


def test_serve_prints_and_logs_no_secret(broker: MosquittoServer, influx: InfluxServer, tmp_path: Path) -> None:
    _database(influx, tmp_path)
    env = _env(
        tmp_path,
        GIGATWIN_MQTT_URL=f"mqtt://plant:{MQTT_PW}@127.0.0.1:{broker.port}?client_id=secret-serve",
        GIGATWIN_STORE_URL=f"influxdb://127.0.0.1:{influx.port}/gigatwin?flavour=v2&token={INFLUX_TOKEN}",
        GIGATWIN_VIEWER_KEYS=API_KEY,
        GIGATWIN_PORT="0",
        GIGATWIN_SPOOL_DIR=str(tmp_path / "spool"),
    )
    cmd = _Command(["serve"], env, tmp_path)
    try:
        wait_for(lambda: "dashboard at" in cmd.text or cmd.proc.poll() is not None, 60, "serve to start")
        assert cmd.proc.poll() is None, cmd.text[-3000:]
        url = cmd.text.split("dashboard at ", 1)[1].split()[0]
        with httpx.Client(base_url=url, timeout=10) as http:
            ready = http.get("/api/v1/health/ready")  # probes the store and names it
            _assert_no_secret(ready.text, "the readiness answer")
            assert http.get("/api/v1/lines", headers={"X-API-Key": API_KEY}).status_code == 200
            assert http.get("/api/v1/lines", headers={"X-API-Key": "wrong"}).status_code == 401
        time.sleep(0.5)  # let the log lines of the requests come out
    finally:
        code = cmd.stop()
    assert code == 0, cmd.text[-3000:]
    assert "token=***" in cmd.text  # the start-up line names the store, without its token
    _assert_no_secret(cmd.text, "gigatwin serve")

    # the same with a v1 store whose URL carries a user and password
    env["GIGATWIN_STORE_URL"] = f"influxdb://gigatwin:{INFLUX_PW}@127.0.0.1:{influx.port}/gigatwin"
    cmd = _Command(["serve"], env, tmp_path)
    try:
        wait_for(lambda: "dashboard at" in cmd.text or cmd.proc.poll() is not None, 60, "serve to start")
    finally:
        code = cmd.stop()
    assert code == 0, cmd.text[-3000:]
    assert "gigatwin:***@" in cmd.text
    _assert_no_secret(cmd.text, "gigatwin serve with a v1 store")
