"""``gigatwin ingest`` as a service manager runs it: a pipeline that dies for good exits non-zero with its error, and
``--workers N`` runs N processes on one shared subscription, storing every message once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import api.runtime
from api.cli import main
from api.supervisor import RestartPolicy
from connectors.ingest import Ingest
from connectors.mqtt import MqttPublisher, parse_mqtt_url
from connectors.stores.influx import InfluxStore
from tests.integration.influx_server import InfluxServer
from tests.integration.mqtt_server import MosquittoServer
from tests.integration.streams import REFERENCE_LINE, REPO, buffer_stream, stored_levels, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("GIGATWIN_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_a_pipeline_that_keeps_dying_exits_1_with_its_error(
    broker: MosquittoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def dies(self: Ingest, stop: threading.Event) -> None:
        raise RuntimeError("pipeline bug: boom")  # not a ConnectorError: nothing in the pipeline catches it

    monkeypatch.setattr(Ingest, "run", dies)
    fast = RestartPolicy(min_backoff_s=0.01, max_backoff_s=0.05, max_restarts=3, restart_window_s=60.0)
    monkeypatch.setattr(api.runtime, "RESTART_POLICY", fast)
    code = main(
        ["ingest", "--mqtt", broker.url, "--store", f"sqlite:{tmp_path / 'd.db'}", "--client-id", "dying", "--status-every", "0"]
    )
    err = capsys.readouterr().err
    assert code == 1  # a service manager's restart-on-failure restarts it
    assert "the ingest task stopped for good" in err
    assert "RuntimeError: pipeline bug: boom" in err
    assert "died 4 times" in err


def test_a_broker_that_cannot_be_reached_at_start_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.integration.mqtt_server import free_port

    url = f"mqtt://127.0.0.1:{free_port()}"
    assert main(["ingest", "--mqtt", url, "--store", f"sqlite:{tmp_path / 'n.db'}", "--status-every", "0"]) == 2
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]}" in capsys.readouterr().err


def _publish_paced(broker: MosquittoServer, messages: list[tuple[str, bytes, object]], per_s: float) -> None:
    pub = MqttPublisher(parse_mqtt_url(broker.url, client_id="workers-pub"))
    pub.start()
    gap, t = 1.0 / per_s, time.monotonic()
    for topic, payload, _r in messages:
        pub.publish(topic, payload)
        t += gap
        time.sleep(max(0.0, t - time.monotonic()))
    assert pub.flush(30)
    pub.stop()


def test_two_workers_share_one_subscription_and_store_every_message_once(
    broker: MosquittoServer, influx: InfluxServer, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    url = f"influxdb://127.0.0.1:{influx.port}/gigatwin"
    cmd = [
        sys.executable, "-m", "api.cli", "ingest", "--workers", "2", "--mqtt", broker.url, "--store", url,
        "--line", str(REFERENCE_LINE), "--client-id", "wk", "--status-every", "0.5", "--spool-dir", str(tmp_path / "spool"),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        wait_for(lambda: "gigatwin ingest: 2 workers" in log.read_text() or proc.poll() is not None, 60, "both workers")
        assert proc.poll() is None, log.read_text()[-3000:]
        n = 3000
        _publish_paced(broker, buffer_stream(n), 3000.0)
        store = InfluxStore(f"http://127.0.0.1:{influx.port}", "gigatwin", spool_dir=tmp_path / "check")
        wait_for(lambda: len(stored_levels(store)) >= n, 60, "every message to be stored")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert sorted(stored_levels(store)) == list(range(n))  # nothing lost, nothing stored twice
    store.close()
    lines = text.splitlines()
    each = [json.loads(t.split("] final ", 1)[1]) for t in lines if t.startswith("[worker") and "] final " in t]
    (total,) = [json.loads(t.removeprefix("final ")) for t in lines if t.startswith("final ")]
    assert total["stored"] == n  # the parent's final line adds the workers' counters up
    assert total["workers"] == 2
    assert len(each) == 2
    assert all(f["stored"] > 0 for f in each), f"the stream was not split: {[f['stored'] for f in each]}"
    assert sum(f["stored"] for f in each) == n
    assert "wk-0" in text  # one client id per process: the base id and its index
    assert "wk-1" in text
    assert (tmp_path / "spool" / "worker-0").is_dir()  # a spool belongs to one process
    assert (tmp_path / "spool" / "worker-1").is_dir()
