"""Soak: the virtual plant and ``gigatwin ingest`` run together through a real mosquitto at x600 for a simulated
week (16.8 wall minutes) and not one message is refused or lost.

The feed starts warm (``FEED_WARMUP_H``, as ``gigatwin feed``), announces its clock, and the ingest's accepted lead
(``--max-lead``) is set from what it announces: from ``now`` the feed runs ahead of the wall clock by 599 s every
wall second (the compose set-up), from ``now-7d`` it stays behind it and the default lead suffices. The test stops
by itself: the feed stops after the simulated week, the ingest once it has taken every message (or at a deadline).
``GIGATWIN_SOAK_HOURS`` shortens the simulated span for a quick check of the test itself.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from api.telemetry_commands import FEED_WARMUP_H
from connectors.feed import VirtualPlant, parse_origin, warm_start
from connectors.linefile import read_line
from connectors.mqtt import MqttPublisher, parse_mqtt_url
from connectors.telemetry import Topics
from tests.conftest import LINES, REPO
from tests.integration.mqtt_server import MosquittoServer

SPEED = 600.0
HOURS = float(os.environ.get("GIGATWIN_SOAK_HOURS", "168"))
LINE_FILE = LINES / "reference_cell_line.yaml"
DEFAULT_MAX_LEAD_S = 300.0


class _Lines:
    """A subprocess's stdout, line by line, read in a thread so that the test never blocks on it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        self.stdout = proc.stdout
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.stdout:
            self.lines.put(line)

    def close(self) -> None:
        """After the process has ended: the rest has been read, close the pipe."""
        self.reader.join(10)
        self.stdout.close()

    def until(self, prefix: str, deadline: float) -> str | None:
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        return None


def _stats(line: str) -> dict[str, Any]:
    return dict(json.loads(line.split(" ", 1)[1]))


@pytest.mark.slow
@pytest.mark.parametrize("origin", ["now", "now-7d"])
def test_a_week_at_x600_through_the_broker_refuses_and_loses_nothing(
    broker: MosquittoServer, tmp_path: Path, origin: str
) -> None:
    line = read_line(LINE_FILE)
    topics = Topics("gigatwin", "plant1", line.name)
    publisher = MqttPublisher(parse_mqtt_url(broker.url, client_id="soak-feed"))
    warm = warm_start(line, 1, FEED_WARMUP_H)  # first, as gigatwin feed does: the origin is taken after it
    plant = VirtualPlant(
        line,
        topics=topics,
        publisher=publisher,
        speed=SPEED,
        seed=1,
        origin_ms=parse_origin(origin, round(time.time() * 1000)),
        start=warm,
    )
    run_s = HOURS * 3600 / SPEED
    announced = plant.feed_clock().as_dict(run_s)
    # the ingest accepts the lead the feed announces for its run (plus a minute for start-up and delivery)
    max_lead_s = max(DEFAULT_MAX_LEAD_S, announced["max_lead_s"] + 60)
    if origin == "now":
        # a week at x600 from now ends 6.9 days ahead: the simulated span less the wall time it took
        assert announced["max_lead_s"] == pytest.approx(HOURS * 3600 * (1 - 1 / SPEED), abs=5)
    else:
        assert announced["max_lead_s"] == 0  # from a week ago it never runs ahead: the default lead suffices
        assert max_lead_s == DEFAULT_MAX_LEAD_S

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGATWIN_")}
    env["PYTHONPATH"] = str(REPO)
    err_path = tmp_path / "ingest.err"  # a file, not a pipe: its INFO log must never fill a pipe and block it
    err = err_path.open("w")
    ingest = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "ingest", "--mqtt", broker.url, "--store", f"sqlite:{tmp_path / 'soak.db'}",
         "--line", str(LINE_FILE), "--client-id", "soak-ingest", "--max-lead", f"{max_lead_s:.0f}", "--status-every", "2"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
    )  # fmt: skip
    out = _Lines(ingest)
    try:
        assert out.until("gigatwin ingest:", time.monotonic() + 60), f"ingest did not start: {out.seen}"
        publisher.start()
        try:
            plant.run(until_h=HOURS)  # paced: 16.8 wall minutes for the week, then it stops by itself
            assert publisher.flush()
        finally:
            publisher.stop()
        stats = plant.stats()
        published = sum(stats.messages.values())
        assert stats.simulated_h == HOURS
        assert stats.lead_s <= announced["max_lead_s"] + 1  # never further ahead than it announced
        assert stats.max_lag_s < 30  # it kept pace on a shared machine

        deadline = time.monotonic() + 300
        while (status := out.until("status ", deadline)) is not None and _stats(status)["received"] < published:
            pass
        assert status is not None, f"ingest did not take all {published} messages: {out.seen[-3:]}"
    finally:
        if ingest.poll() is None:
            ingest.send_signal(signal.SIGTERM)
        try:
            ingest.wait(60)
        except subprocess.TimeoutExpired:
            ingest.kill()
            ingest.wait(10)
        err.close()
        out.close()
    final_line = out.until("final ", time.monotonic() + 10)
    assert final_line is not None, err_path.read_text()[-3000:]
    final = _stats(final_line)
    assert ingest.returncode == 0
    assert final["rejected"] == 0, final["last_error"]
    assert (final["received"], final["duplicates"], final["stored"]) == (published, 0, published)
