"""Real servers for the integration tests: each test starts its own mosquitto and influxd on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.influx_server import InfluxServer
from tests.integration.mqtt_server import MosquittoServer


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A mosquitto started from the shipped configuration, stopped after the test."""
    server = MosquittoServer(tmp_path / "mosquitto")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def influx(tmp_path: Path) -> Iterator[InfluxServer]:
    """An influxd (Debian's 1.6, v1 API), stopped after the test."""
    server = InfluxServer(tmp_path / "influxdb")
    server.start()
    try:
        yield server
    finally:
        server.stop()
