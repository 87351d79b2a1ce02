"""``gigatwin forecast`` against a real SQLite store filled by the virtual plant through the ingest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main
from connectors.linefile import read_line
from connectors.stores import SqliteStore
from tests.conftest import SMALL_LINE_YAML, fill_store

ORIGIN = 1_763_900_000_000  # ms since the epoch: 2025-11-23T12:13:20Z


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A line file and a SQLite store holding 10 hours of its telemetry from the virtual plant."""
    root = tmp_path_factory.mktemp("forecast")
    line_file = root / "small.yaml"
    line_file.write_text(SMALL_LINE_YAML)
    line = read_line(line_file)
    db = root / "plant.db"
    store = SqliteStore(db)
    try:
        fill_store(line, store, 10.0, seed=2, origin_ms=ORIGIN)
    finally:
        store.close()
    return line_file, db


def _forecast(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["forecast", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_forecast_from_the_store_as_of_its_newest_reading(
    filled: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    line_file, db = filled
    code, out, err = _forecast(
        capsys, "--line", str(line_file), "--store", f"sqlite:{db}", "--horizon", "2.5", "--replications", "24",
        "--workers", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    # as of the newest stored reading: the feed ran 10 h from its origin
    as_of = result["as_of"]
    assert as_of.startswith("2025-11-23T22:1")
    assert result["horizon_h"] == 2.5
    assert result["replications"] == 24
    assert result["readings"] > 1000
    assert result["lookback_h"] == 48.0  # the default: at least two days, longer than the 1.5 h dwell + 8 h
    g = result["good_output"]
    assert g["p10"] <= g["p50"] <= g["p90"]
    # EOL's two machines make at most 2 / 0.035 h = 57 cells an hour; the line ships while COAT keeps up
    assert 0 < g["p50"] <= 2.5 * 2 / 0.035
    assert [h["end"][:16] for h in result["hourly"]][-1] > as_of[:16]
    assert len(result["hourly"]) == 3
    assert result["hourly"][-1]["p50"] == g["p50"]
    assert set(result["stations"]) == {"COAT", "AGE", "EOL"}
    for st in result["stations"].values():
        assert 0 <= st["p_failure"] <= 1
        assert st["expected_downtime_h"] >= 0
    assert 0 <= result["plan"]["p_meet"] <= 1
    assert "reading 48 h of telemetry" in err


def test_a_forecast_as_of_a_past_instant_and_the_readable_table(
    filled: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    line_file, db = filled
    code, out, err = _forecast(
        capsys, "--line", str(line_file), "--store", f"sqlite:{db}", "--at", "2025-11-23T17:00:00Z", "--horizon", "1",
        "--replications", "8", "--workers", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "forecast of small_cell_line as of 2025-11-23T17:00:00" in out
    assert "P(failure)" in out
    assert "EOL" in out
    # each station's row says what its P(failure) rests on (the small line's stations with failures)
    rows = [r for r in out.splitlines() if r.split() and r.split()[0] in {"COAT", "STACK", "EOL"}]
    assert rows
    assert all(r.rstrip().endswith(("condition-signal", "age-only", "—")) for r in rows), rows


def test_bad_forecasts_are_refused_with_their_reason(
    filled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line_file, db = filled
    with pytest.raises(SystemExit):
        main(["forecast", "--line", str(line_file), "--store", f"sqlite:{db}", "--horizon", "0"])
    assert "--horizon must be at least a minute and at most 168 h" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["forecast", "--line", str(line_file), "--store", f"sqlite:{db}", "--at", "yesterday"])
    assert "is not an ISO 8601 time" in capsys.readouterr().err
    empty = tmp_path / "empty.db"
    SqliteStore(empty).close()
    code, _, err = _forecast(capsys, "--line", str(line_file), "--store", f"sqlite:{empty}")
    assert code == 2
    assert "holds no telemetry of line 'small_cell_line'" in err
