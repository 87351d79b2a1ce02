"""The benchmarks' real ``influxd``: the tests' server helper, imported by path (simulations never imports the
tests package, and the benchmarks must start the same server the integration tests do)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_influx_server() -> ModuleType:
    """tests/integration/influx_server.py as a module (its ``InfluxServer`` starts and stops an ``influxd``)."""
    spec = importlib.util.spec_from_file_location("influx_server", REPO / "tests" / "integration" / "influx_server.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
