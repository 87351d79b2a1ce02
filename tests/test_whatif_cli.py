"""``gigatwin whatif``: its JSON contract, its tables and report, a start from a store, and its refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from api.cli import main
from connectors.linefile import read_line
from connectors.scenariofile import read_scenario
from connectors.stores import SqliteStore
from tests.conftest import SMALL_LINE_YAML, fill_store
from twin.scenario import ScenarioError, apply_scenario
from twin.whatif import compare

ORIGIN = 1_763_900_000_000  # ms since the epoch: 2025-11-23T12:13:20Z
REFERENCE = Path(__file__).resolve().parents[1] / "simulations" / "lines" / "reference_cell_line.yaml"
SCENARIOS = Path(__file__).resolve().parents[1] / "simulations" / "scenarios"

# small_cell_line: COAT (web breaks) -> AGE (a 1.5 h store) -> EOL (two testers)
FASTER_REPAIRS = """\
name: faster_coat_repairs
description: Halve the coater's repair times
changes:
  - {station: COAT, scale: {failures.*.ttr: 0.5}}
"""
NOTHING = "name: nothing\ndescription: the line as it is\nchanges: []\n"
COAT_DOWN = "name: coat_down\nchanges:\n  - {station: COAT, down: {at: 0h, for: 3h, reason: roll_change}}\n"
LINE_FIGURES = {"throughput_per_hour", "good", "scrap_rate", "wip_mean", "lead_time_mean_h"}
STATION_FIGURES = {"down_h", "oee", "availability", "throughput_per_hour"}


def _files(tmp_path: Path, **scenarios: str) -> tuple[Path, dict[str, Path]]:
    line = tmp_path / "small.yaml"
    line.write_text(SMALL_LINE_YAML)
    paths = {}
    for stem, text in scenarios.items():
        paths[stem] = tmp_path / f"{stem}.yaml"
        paths[stem].write_text(text)
    return line, paths


def _whatif(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["whatif", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_json_is_the_results_to_dict_with_the_documented_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line_file, sc = _files(tmp_path, faster=FASTER_REPAIRS)
    code, out, err = _whatif(
        capsys, line_file, sc["faster"], "--hours", "20", "--warmup", "4", "--replications", "5", "--seed", "7",
        "--workers", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    # exactly WhatIfResult.to_dict() of the same comparison made in this process
    line = read_line(line_file)
    direct = compare(line, [read_scenario(sc["faster"])], 20.0, warmup=4.0, replications=5, seed=7).to_dict()
    assert result == json.loads(json.dumps(direct))
    assert result["line"] == "small_cell_line"
    assert result["config_hash"] == line.config_hash()
    assert (result["start"], result["hours"], result["warmup"], result["replications"], result["seed"]) == (
        "steady_state", 20.0, 4.0, 5, 7,
    )  # fmt: skip
    assert result["parameters"] == "line-file"
    assert set(result["baseline"]["stations"]) == {"COAT", "AGE", "EOL"}
    scenario = result["scenarios"]["faster_coat_repairs"]
    assert scenario["scenario_hash"] == read_scenario(sc["faster"]).scenario_hash()
    assert scenario["description"] == "Halve the coater's repair times"
    assert scenario["kpis"]["config_hash"] != result["config_hash"]  # the scenario's line is another line
    delta = scenario["delta"]
    assert set(delta) == LINE_FIGURES | {"stations"}
    assert set(delta["stations"]) == {"COAT", "AGE", "EOL"}
    for figure in LINE_FIGURES:
        assert set(delta[figure]) == {"mean", "ci95", "ci95_unpaired"}
    for figures in delta["stations"].values():
        assert set(figures) == STATION_FIGURES
    assert sum(scenario["bottleneck_votes"].values()) == 5
    # the progress went to stderr as plain lines (not a terminal), the JSON alone to stdout
    assert "5/5 replications (100%)" in err


def test_a_scenario_that_changes_nothing_differs_by_exactly_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line_file, sc = _files(tmp_path, nothing=NOTHING)
    code, out, err = _whatif(
        capsys, line_file, sc["nothing"], "--hours", "12", "--warmup", "3", "--replications", "4", "--workers", "1", "--json"
    )
    assert code == 0, err
    delta = json.loads(out)["scenarios"]["nothing"]["delta"]
    figures = [delta[f] for f in LINE_FIGURES] + [d for st in delta["stations"].values() for d in st.values()]
    assert len(figures) == 5 + 3 * 4
    for d in figures:
        assert (d["mean"], d["ci95"]) == (0.0, 0.0)


def test_the_table_gives_each_difference_a_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line_file, sc = _files(tmp_path, down=COAT_DOWN, nothing=NOTHING)
    code, out, err = _whatif(
        capsys, line_file, sc["down"], sc["nothing"], "--hours", "6", "--warmup", "3", "--replications", "8", "--workers", "1"
    )
    assert code == 0, err
    assert "what-if of small_cell_line" in out
    assert "steady state: each variant warmed up 3 h, then 6 h measured" in out
    down, nothing = out.split("scenario nothing")
    # a 3 h outage from the window's start: COAT down ~3 machine-hours more in every replication, a clear verdict
    row = next(r for r in down.splitlines() if r.strip().startswith("COAT down (machine-h)"))
    found = re.search(r"([+-][\d.]+) ± ([\d.]+) machine-h: (significant|not significant)$", row)
    assert found is not None, row
    assert 2.0 < float(found.group(1)) <= 3.0 + 1e-9  # the outage, less what the baseline was down anyway
    assert found.group(3) == "significant"
    assert re.search(r"good output \(units/h\) .* good units/h: (significant|not significant)", down)
    assert "pairing: " in down
    # the line as it is: every line figure "no difference", no station named
    for figure in ("good output", "good units shipped", "scrap rate", "WIP", "lead time"):
        row = next(r for r in nothing.splitlines() if r.strip().startswith(figure))
        assert "   +0 ± 0 " in row, row
        assert row.endswith(": no difference"), row
    assert "no station's difference is significant" in nothing


def test_the_report_is_one_self_contained_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line_file, sc = _files(tmp_path, faster=FASTER_REPAIRS, down=COAT_DOWN)
    report = tmp_path / "out.html"
    code, out, err = _whatif(
        capsys, line_file, sc["faster"], sc["down"], "--hours", "8", "--warmup", "3", "--replications", "6", "--seed", "11",
        "--workers", "1", "--json", "--report", report,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<html") == 1
    assert page.count("</html>") == 1
    assert page.count("<svg") >= 4  # per scenario: the distributions and the differences (and the interval bars)
    # nothing to fetch: no external address, script, stylesheet or image
    assert "http" not in page
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert not re.search(r"\b(src|href)\s*=\s*(?![\"']?#)", page)  # only links within the page
    # what reproduces it
    assert result["config_hash"] in page
    for name, scenario in result["scenarios"].items():
        assert name in page
        assert scenario["scenario_hash"] in page
    assert "seed (11, i)" in page
    assert str(sc["down"]) in page


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The small line's file and a SQLite store holding 10 hours of its telemetry from the virtual plant."""
    root = tmp_path_factory.mktemp("whatif_store")
    line_file = root / "small.yaml"
    line_file.write_text(SMALL_LINE_YAML)
    db = root / "plant.db"
    store = SqliteStore(db)
    try:
        fill_store(read_line(line_file), store, 10.0, seed=5, origin_ms=ORIGIN)
    finally:
        store.close()
    return line_file, db


def test_a_whatif_from_the_plants_state_in_a_store(
    plant: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line_file, db = plant
    _, sc = _files(tmp_path, down=COAT_DOWN, nothing=NOTHING)
    code, out, err = _whatif(
        capsys, line_file, sc["down"], sc["nothing"], "--store", f"sqlite:{db}", "--hours", "4", "--replications", "6",
        "--workers", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["start"] == "snapshot"
    assert result["warmup"] == 0.0
    assert result["replications"] == 6
    assert "reading 48 h of telemetry up to 2025-11-23T22:1" in err  # the store's newest reading: 10 h after its origin
    down = result["scenarios"]["coat_down"]["delta"]
    # COAT is down the first 3 of the 4 hours in every replication of the scenario
    assert 2.0 < down["stations"]["COAT"]["down_h"]["mean"] <= 3.0 + 1e-9
    assert down["stations"]["COAT"]["throughput_per_hour"]["mean"] < 0
    nothing = result["scenarios"]["nothing"]["delta"]
    assert (nothing["throughput_per_hour"]["mean"], nothing["throughput_per_hour"]["ci95"]) == (0.0, 0.0)
    # each replication starts from its own drawn state: the baseline's output varies between them
    assert result["baseline"]["throughput_per_hour"]["ci95"] > 0


def test_a_whatif_as_of_a_past_instant_and_its_table(
    plant: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line_file, db = plant
    _, sc = _files(tmp_path, down=COAT_DOWN)
    code, out, err = _whatif(
        capsys, line_file, sc["down"], "--store", f"sqlite:{db}", "--at", "2025-11-23T17:00:00Z", "--hours", "3.5",
        "--replications", "4", "--workers", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "from the plant's state as of 2025-11-23T17:00:00" in out
    assert "3.5 h measured from then" in out
    assert re.search(r"COAT down \(machine-h\) .*: significant", out)


def _refused(capsys: pytest.CaptureFixture[str], *args: str | Path) -> list[str]:
    code, out, err = _whatif(capsys, *args)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines, err
    assert all(line.startswith("gigatwin whatif: ") for line in lines), err
    return lines


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (
            "{station: CALENDER, scale: {cycle_time: 2}}",
            "changes[0].station",
            "'CALENDER' is not a station of line 'small_cell_line'",
        ),
        ("{station: COAT, scale: {cycle_tme: 2}}", "changes[0].scale", "no field 'cycle_tme'"),
        ("{station: COAT, scale: {failures.jam.ttr: 2}}", "changes[0].scale", "no item 'jam'"),
        ("{station: COAT, scale: {cycle_time: 0}}", "changes[0]", "a factor must be a finite number > 0, got 0"),
        ("{station: COAT, scale: {cycle_time: -1.5}}", "changes[0]", "a factor must be a finite number > 0, got -1.5"),
        ("{station: COAT, set: {buffer_after: -4}}", "changes[0] -> line stations[0].buffer_after", "greater than or equal to 0"),
        (
            "{station: COAT, planned_stop: {start: 30h, duration: 1h}}",
            "changes[0].planned_stop.start",
            "30 h is not inside the horizon of 10 h",
        ),
        ("{station: EOL, down: {at: 10h, for: 1h}}", "changes[0].down.at", "10 h is not inside the horizon of 10 h"),
        ("{station: AGE, down: {at: 1h, for: 1h}}", "changes[0].station", "AGE is a store: only process stations go down"),
        ("{station: COAT, down: {at: 1h, for: 0h}}", "changes[0].down.for", "greater than 0"),
    ],
)
def test_a_change_that_does_not_fit_is_refused_naming_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, where: str, says: str
) -> None:
    line_file, sc = _files(tmp_path, bad=f"name: bad\nchanges:\n  - {change}\n")
    lines = _refused(capsys, line_file, sc["bad"], "--hours", "10", "--warmup", "2", "--workers", "1")
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"gigatwin whatif: {sc['bad']}: {where}: "), lines[0]
    assert says in lines[0]


def test_each_problem_of_each_file_is_a_line_of_its_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line_file, sc = _files(
        tmp_path,
        two=("name: two problems\nchanges:\n  - {station: COAT, scale: {cycle_time: 0}}\n  - {station: EOL}\nextra: 1\n"),
        broken="name: [unclosed\n",
        first=NOTHING,
        again=NOTHING.replace("the line as it is", "the same name again"),
        base="name: baseline\n",
    )
    missing = tmp_path / "missing.yaml"
    lines = _refused(
        capsys, line_file, sc["two"], sc["broken"], missing, sc["first"], sc["again"], sc["base"], "--hours", "5",
    )  # fmt: skip
    text = "\n".join(lines)
    assert f"{sc['two']}: name: String should match pattern" in text
    assert f"{sc['two']}: changes[0]: scale.cycle_time: a factor must be a finite number > 0" in text
    assert f"{sc['two']}: changes[1]: give one of scale, set, repair_crews, planned_stop, down; got none" in text
    assert f"{sc['two']}: extra: Extra inputs are not permitted" in text
    assert re.search(re.escape(f"{sc['broken']}: line ") + r"\d+, column \d+: not valid YAML", text)
    assert f"{missing}: (file): cannot read: No such file or directory" in text
    assert f"{sc['again']}: name: 'nothing' is also the name of the scenario in {sc['first']}" in text
    assert f"{sc['base']}: name: 'baseline' names the line as it is" in text
    assert len(lines) == 8


def test_bad_options_are_refused(plant: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line_file, db = plant
    _, sc = _files(tmp_path, nothing=NOTHING, late=COAT_DOWN.replace("at: 0h", "at: 5h"))
    assert _refused(capsys, line_file, sc["nothing"], "--hours", "2", "--at", "2025-11-23T17:00:00Z") == [
        "gigatwin whatif: --at: only with --store (the plant's state is read from a store)"
    ]
    # from a store too, a time outside the horizon is refused before anything runs
    lines = _refused(capsys, line_file, sc["late"], "--store", f"sqlite:{db}", "--hours", "4")
    assert lines == [f"gigatwin whatif: {sc['late']}: changes[0].down.at: 5 h is not inside the horizon of 4 h"]
    empty = tmp_path / "empty.db"
    SqliteStore(empty).close()
    lines = _refused(capsys, line_file, sc["nothing"], "--store", f"sqlite:{empty}", "--hours", "4")
    assert lines == ["gigatwin whatif: --store: holds no telemetry of line 'small_cell_line' (site 'plant1')"]
    lines = _refused(capsys, tmp_path / "no_line.yaml", sc["nothing"], "--hours", "4")
    assert lines[0].startswith(f"gigatwin whatif: {tmp_path / 'no_line.yaml'}: (file): cannot read")
    for args in (["--hours", "0"], ["--hours", "4", "--replications", "1"], ["--hours", "4", "--warmup", "-1"],
                 ["--hours", "4", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
                 ["--hours", "4", "--warmup", "1", "--store", f"sqlite:{db}"]):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(["whatif", str(line_file), str(sc["nothing"]), *args])
        assert exit_.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


def test_the_reference_scenarios_fit_the_reference_line() -> None:
    line = read_line(REFERENCE)
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert 3 <= len(files) <= 5
    names = set()
    for path in files:
        scenario = read_scenario(path)
        assert scenario.name == path.stem  # one file, one scenario of its name
        assert scenario.description
        names.add(scenario.name)
        try:
            applied = apply_scenario(scenario, line, 504.0, 168.0, str(path))  # the week their comments run
        except ScenarioError as exc:  # pragma: no cover - the message says which
            pytest.fail(str(exc))
        assert applied.line != line or applied.outages
    assert len(names) == len(files)


def test_a_reference_scenario_on_the_reference_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _whatif(
        capsys, REFERENCE, SCENARIOS / "calslit_c_down_now.yaml", "--hours", "6", "--warmup", "30", "--replications", "3",
        "--workers", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    delta = json.loads(out)["scenarios"]["calslit_c_down_now"]["delta"]
    # down 4 h of the 6 in every replication, less what the baseline was down anyway (MTBF 16 h, MTTR 30 min)
    assert 3.0 < delta["stations"]["CALSLIT_C"]["down_h"]["mean"] <= 4.0 + 1e-9
    assert delta["stations"]["CALSLIT_C"]["throughput_per_hour"]["mean"] < 0
    # nothing reaches the line's end within hours: the aging store holds cells 14 days
    assert delta["throughput_per_hour"]["mean"] == 0.0
