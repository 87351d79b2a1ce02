"""``gigatwin calibrate`` against a real SQLite store filled through the ingest by a virtual plant whose true
parameters differ from the line file's: it recovers the truth, flags what drifted and only that, and refuses what
it cannot calibrate with a message and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from connectors.linefile import read_line, write_calibrated
from connectors.stores import SqliteStore
from tests.conftest import LINES, fill_store
from twin.calibration import Calibration

ORIGIN = 1_763_900_000_000  # ms since the epoch: 2025-11-23T12:13:20Z
HOURS = 4000.0  # enough failures for 10 % to be 4 standard errors of each mean or more

# The plant as it is: PRESS jams twice as often as designed (its repairs lognormal, designed exponential, with the
# same mean), scraps twice the design rate; OVEN wears out as designed (Weibull, shape 2).
TRUTH = """
name: calib_line
time_unit: h
stations:
  - id: PRESS
    cycle_time: {dist: exponential, mean: 0.05}
    scrap: 0.04
    failures:
      - {name: jam, ttf: {dist: exponential, mean: 2h}, ttr: {dist: lognormal, mean: 15min, cv: 1.0}}
    buffer_after: 50
  - id: OVEN
    cycle_time: 0.04
    failures:
      - {name: wear, ttf: {dist: weibull, shape: 2, mean: 3h}, ttr: {dist: exponential, mean: 12min}}
"""
DESIGN = "# the design line: what the datasheets say" + (
    TRUTH.replace("ttf: {dist: exponential, mean: 2h}", "ttf: {dist: exponential, mean: 4h}")
    .replace("ttr: {dist: lognormal, mean: 15min, cv: 1.0}", "ttr: {dist: exponential, mean: 15min}")
    .replace("scrap: 0.04", "scrap: 0.02")
)
OTHER = TRUTH.replace("id: OVEN", "id: KILN")  # same line name, a station the store does not know


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The design line file, and a SQLite store holding HOURS of the true plant's telemetry."""
    root = tmp_path_factory.mktemp("calibrate")
    truth_file, design_file = root / "truth.yaml", root / "design.yaml"
    truth_file.write_text(TRUTH)
    design_file.write_text(DESIGN)
    line = read_line(truth_file)
    db = root / "plant.db"
    store = SqliteStore(db)
    try:
        fill_store(line, store, HOURS, seed=5, origin_ms=ORIGIN)
    finally:
        store.close()
    return design_file, db


def _calibrate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["calibrate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _mode(result: dict[str, Any], station: str, name: str) -> dict[str, Any]:
    (mode,) = [m for m in result["stations"][station]["failures"] if m["name"] == name]
    return mode


def test_calibration_recovers_the_true_plant_and_flags_only_what_drifted(
    plant: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    design, db = plant
    code, out, err = _calibrate(capsys, "--line", str(design), "--store", f"sqlite:{db}", "--json", "--bootstrap", "100")
    assert code == 0, err
    r = json.loads(out)
    assert r["window"]["hours"] == pytest.approx(HOURS, rel=0.01)
    jam, wear = _mode(r, "PRESS", "jam"), _mode(r, "OVEN", "wear")
    assert jam["n_failures"] >= 1500
    assert wear["n_failures"] >= 800  # a Weibull of shape 2 (cv 0.52): 10 % is 5 standard errors at 800
    for mode, which, truth in ((jam, "ttf", 2.0), (jam, "ttr", 0.25), (wear, "ttf", 3.0), (wear, "ttr", 0.2)):
        est = mode[which]
        assert est["mean"] == pytest.approx(truth, rel=0.1), (mode["name"], which, est)
        # The truth inside each 95 % interval would fail one run in five over four intervals: the interval's
        # half-width is 1.96 standard errors, and the truth must lie within four of them (twin.fitting's own tests
        # check the intervals' coverage over many datasets).
        se = (est["ci95"][1] - est["ci95"][0]) / (2 * 1.96)
        assert abs(est["mean"] - truth) <= 4 * se, (mode["name"], which, est)
    assert jam["used"] == "fitted"
    assert wear["ttf"]["dist"] == "weibull"  # the family that matters: not memoryless
    assert jam["ttr"]["dist"] == "lognormal"
    assert r["stations"]["PRESS"]["scrap"]["rate"] == pytest.approx(0.04, rel=0.15)
    assert sorted(r["flagged"]) == ["PRESS.jam.ttf", "PRESS.scrap"]
    assert jam["ttf"]["drift"] == pytest.approx(0.5, rel=0.1)
    assert r["stations"]["OVEN"]["cycle_time"]["mean_s"] == pytest.approx(0.04 * 3600, rel=1e-6)  # a constant cycle

    code, out, err = _calibrate(capsys, "--line", str(design), "--store", f"sqlite:{db}", "--bootstrap", "20")
    assert code == 0, err
    assert "flagged: PRESS.jam.ttf, PRESS.scrap" in out
    assert "DRIFT x0.5" in out


def test_the_calibrated_line_file_differs_from_its_source_only_in_the_fitted_values(
    plant: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    design, db = plant
    out = tmp_path / "calibrated.yaml"
    code, _, err = _calibrate(capsys, "--line", str(design), "--store", f"sqlite:{db}", "--bootstrap", "20", "--out", str(out))
    assert code == 0, err
    assert "wrote" in err
    before, written = design.read_text().splitlines(), out.read_text().splitlines()
    notes = [line for line in written if line.lstrip().startswith("# calibrated")]
    assert len(notes) == 3  # a comment above each changed value with its interval and evidence
    assert "# calibrated jam: ttf mean 2." in notes[1]
    after = [line for line in written if line not in notes]
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    # the two failure modes (both fitted) and PRESS's drifted scrap; OVEN's scrap (as designed) and all else kept
    assert len(changed) == 3, changed
    assert after[0] == "# the design line: what the datasheets say"
    assert any(b.strip().startswith("scrap: 0.0") for _, b in changed)
    jam = next(b for _, b in changed if "name: jam" in b)
    assert "ttf: {dist: exponential, mean: 2." in jam
    calibrated = read_line(out)
    press = calibrated.stations[0]
    assert press.failures[0].ttf.mean_value == pytest.approx(2.0, rel=0.1)
    assert press.scrap == pytest.approx(0.04, rel=0.15)
    assert calibrated.stations[1].failures[0].ttf.mean_value == pytest.approx(3.0, rel=0.1)
    assert calibrated.stations[1].scrap == 0.0


def test_what_cannot_be_calibrated_is_refused_with_its_reason(
    plant: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    design, db = plant
    store = f"sqlite:{db}"
    other = tmp_path / "other.yaml"
    other.write_text(OTHER)
    cases = [
        (["--line", str(design), "--store", store, "--site", "elsewhere"], "holds no states or counts of line 'calib_line'"),
        (
            ["--line", str(design), "--store", store, "--since", "2025-11-24T00:00:00Z", "--until", "2025-11-23T00:00:00Z"],
            "is empty",
        ),
        (
            ["--line", str(design), "--store", store, "--since", "2025-11-23T12:13:20Z", "--until", "2025-11-23T12:20:00Z"],
            "no failure or repair",
        ),
        (["--line", str(other), "--store", store], "does not fit the line file"),
        (["--line", str(design), "--store", store, "--min-failures", "0"], "--min-failures must be at least 1"),
        (["--line", str(tmp_path / "missing.yaml"), "--store", store], "missing.yaml"),
        (["--line", str(design), "--store", store, "--since", "soon"], "not an ISO 8601 time"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) if "soon" in args else _no_exit():
            code, _, err = _calibrate(capsys, *args)
            assert code == 2, (args, err)
            assert message in err, (args, err)
            assert "Traceback" not in err
        if "soon" in args:
            assert message in capsys.readouterr().err


class _no_exit:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_a_calibration_that_fitted_nothing_writes_the_line_file_back_unchanged(tmp_path: Path) -> None:
    # every line file shipped, comments, blank lines, flow and block styles, indentation and all
    for source in sorted(LINES.glob("*.yaml")):
        out = tmp_path / source.name
        assert write_calibrated(source, Calibration(source.stem, 0.0, 1.0, 30, {}), out) == []
        assert out.read_text() == source.read_text(), source.name
