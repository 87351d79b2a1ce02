"""``gigatwin calibrate`` on InfluxDB: the same plant's history in a real ``influxd`` and in SQLite gives the same
calibration (the stores are interchangeable behind the Store protocol)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main
from connectors.linefile import read_line
from connectors.stores import InfluxStore, SqliteStore
from tests.conftest import fill_store
from tests.integration.influx_server import InfluxServer
from tests.test_calibrate_command import DESIGN, ORIGIN, TRUTH

pytestmark = pytest.mark.integration

HOURS = 600.0  # some 300 failures of each mode: the comparison is of the stores, not of the statistics


def test_influxdb_and_sqlite_give_the_same_calibration(
    influx: InfluxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth, design = tmp_path / "truth.yaml", tmp_path / "design.yaml"
    truth.write_text(TRUTH)
    design.write_text(DESIGN)
    line = read_line(truth)
    sqlite = SqliteStore(tmp_path / "plant.db")
    flux = InfluxStore(influx.url, "plant", spool_dir=tmp_path / "spool")
    flux.ensure_database()
    try:
        for store in (sqlite, flux):
            fill_store(line, store, HOURS, seed=9, origin_ms=ORIGIN)
    finally:
        sqlite.close()
        flux.close()
    results = []
    for url in (f"sqlite:{tmp_path / 'plant.db'}", f"influxdb://127.0.0.1:{influx.port}/plant"):
        code = main(["calibrate", "--line", str(design), "--store", url, "--json", "--bootstrap", "50"])
        out, err = capsys.readouterr()
        assert code == 0, err
        results.append(json.loads(out))
    on_sqlite, on_influx = results
    assert on_influx == on_sqlite
    assert "PRESS.jam.ttf" in on_influx["flagged"]
