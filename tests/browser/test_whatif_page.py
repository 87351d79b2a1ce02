"""The what-if page in a real browser against a running service: a viewer's key may not run a what-if and is told so,
an operator's runs an example scenario from the plant's state now, follows its progress and reads the differences
table the API's result holds; a viewer then finds it among the recent what-ifs and reads the same table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.harness import STOP_TIMEOUT_S, STOPPED_BY_SIGINT, Chromium, PageProblems, Service, Services
from tests.conftest import SMALL_LINE_YAML

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 15_000
WHATIF_TIMEOUT_MS = 60_000  # 20 paired replications of 4 h of the small line: seconds, a process pool started first
VIEWER = "browser-whatif-viewer-key"
OPERATOR = "browser-whatif-operator-key"
FITS = "name: faster_coat_repairs\ndescription: Halve the coater's repair times\nchanges:\n  - {station: COAT, scale: {failures.*.ttr: 0.5}}\n"
COAT_DOWN = (
    "name: coat_down_now\ndescription: The coater down now for 2 h\nchanges:\n  - {station: COAT, down: {at: 0h, for: 2h}}\n"
)
OTHER_LINE = "name: stacker\ndescription: for the reference line\nchanges:\n  - {station: STACK, set: {machines: 3}}\n"


def _stop(service: Service) -> None:
    code, _took = service.stop()
    assert code is not None, f"the service did not stop within {STOP_TIMEOUT_S:g} s of SIGINT"
    assert code in STOPPED_BY_SIGINT, f"the service exited with {code} after SIGINT:\n{service.stderr()}"


def _use_key(page: Page, key: str) -> None:
    page.click("#key-button")
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", timeout=LIVE_TIMEOUT_MS)


def _table(page: Page) -> dict[str, list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        "#delta-table tr[data-figure]",
        "rows => rows.map(r => [r.dataset.figure, r.dataset.significant, ...[...r.cells].map(c => c.textContent.trim())])",
    )
    return {r[0]: r[1:] for r in rows}


def _expected_row(d: dict[str, Any]) -> tuple[str, str]:
    """The significance and the significant? cell the page must show for a difference of the API's result."""
    significant = abs(d["mean"]) > d["ci95"]
    return str(significant).lower(), "yes" if significant else "no"


def test_an_operator_runs_a_whatif_from_the_page_and_a_viewer_reads_it(
    chromium: Chromium, services: Services, tmp_path: Path
) -> None:
    line_file = tmp_path / "small_line.yaml"
    line_file.write_text(SMALL_LINE_YAML)
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "coat_down_now.yaml").write_text(COAT_DOWN)
    (scenarios / "faster_coat_repairs.yaml").write_text(FITS)
    (scenarios / "stacker.yaml").write_text(OTHER_LINE)
    service = services.start(
        ["serve", "--host", "127.0.0.1", "--port", "0"],
        env={
            "GIGATWIN_SOURCE": "demo",
            "GIGATWIN_LINE_FILE": str(line_file),
            "GIGATWIN_VIEWER_KEYS": VIEWER,
            "GIGATWIN_OPERATOR_KEYS": OPERATOR,
            "GIGATWIN_STORE_URL": f"sqlite:{services.workdir / 'whatif.db'}",
            "GIGATWIN_DEMO_SPEED": "600",
            "GIGATWIN_DEMO_WARMUP_HOURS": "24",
            "GIGATWIN_FORECAST_PERIOD_S": "0",
            "GIGATWIN_SCENARIO_DIR": str(scenarios),
        },
    )
    browser = chromium.launch()
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    problems = PageProblems()
    problems.watch(page)
    page.goto(f"{service.url}whatif")

    # the page asks for a key; a viewer's shows the example scenarios that fit the line, the others greyed out
    page.wait_for_selector("#key-dialog[open]", timeout=LIVE_TIMEOUT_MS)
    page.fill("#key-input", VIEWER)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", timeout=LIVE_TIMEOUT_MS)
    assert page.inner_text("#line-name") == "small_cell_line"
    options = page.eval_on_selector_all("#scenario-pick option", "os => os.map(o => [o.textContent, o.disabled])")
    assert options == [
        ["Write your own (JSON below)", False],
        ["coat_down_now", False],
        ["faster_coat_repairs", False],
        ["stacker (does not fit this line)", True],
    ]
    page.select_option("#scenario-pick", label="coat_down_now")
    assert '"station": "COAT"' in page.input_value("#scenario-text")
    assert "The coater down now for 2 h" in page.inner_text("#scenario-note")
    page.fill("#hours", "4")
    page.fill("#replications", "20")
    page.click("#run")
    page.wait_for_function("document.getElementById('ask-status').textContent.includes('operator key')", timeout=LIVE_TIMEOUT_MS)
    assert page.is_hidden("#job-panel")  # nothing was queued

    # with an operator's key it runs: progress, then the differences
    _use_key(page, OPERATOR)
    page.select_option("#scenario-pick", label="coat_down_now")
    page.fill("#hours", "4")
    page.fill("#replications", "20")
    page.click("#run")
    page.wait_for_selector("#job-panel[data-state=running], #job-panel[data-state=done]", timeout=WHATIF_TIMEOUT_MS)
    page.wait_for_selector("#job-panel[data-state=done]", timeout=WHATIF_TIMEOUT_MS)
    page.wait_for_selector("#delta-table:not([hidden])", timeout=LIVE_TIMEOUT_MS)
    assert page.inner_text("#job-progress-text") == "20 of 20 replications"

    jobs = service.get_json("api/v1/lines/small_cell_line/whatif", OPERATOR)["jobs"]
    assert len(jobs) == 1
    job = service.get_json(f"api/v1/lines/small_cell_line/whatif/{jobs[0]['id']}", VIEWER)
    assert job["state"] == "done"
    assert job["request"]["start"] == "now"
    delta = job["result"]["scenarios"]["coat_down_now"]["delta"]
    table = _table(page)
    assert list(table) == [
        "throughput_per_hour",
        "good",
        "scrap_rate",
        "wip_mean",
        "lead_time_mean_h",
        "COAT.down_h",
        "AGE.down_h",
        "EOL.down_h",
    ]
    tp = table["throughput_per_hour"]
    assert tp[0] == _expected_row(delta["throughput_per_hour"])[0]
    assert tp[1] == "Good throughput (units/h)"
    assert tp[5] == _expected_row(delta["throughput_per_hour"])[1]
    # the coater down 2 of the 4 hours: about 2 machine-hours more down, significantly
    coat = delta["stations"]["COAT"]["down_h"]
    assert 1.0 < coat["mean"] < 3.0
    row = table["COAT.down_h"]
    assert row[0] == "true"
    assert row[5] == "yes"
    assert row[3].startswith("+")
    mean_shown = float(row[3].split("±")[0].strip().lstrip("+").replace(",", ""))
    assert mean_shown == pytest.approx(coat["mean"], abs=0.006)
    verdict = page.inner_text("#verdict")
    assert "good units/h at the line's end" in verdict
    assert ("not significant" in verdict) == (abs(delta["throughput_per_hour"]["mean"]) <= delta["throughput_per_hour"]["ci95"])
    page.wait_for_selector(f"#jobs-table tr[data-job='{job['id']}'][data-state=done]", timeout=LIVE_TIMEOUT_MS)

    # the only errors are the first request, made without a key, and the viewer's refused run (Chromium logs both)
    assert problems.page_errors == []
    assert len(problems.console_errors) == 2
    assert all(" 401 " in e or " 403 " in e or "401" in e or "403" in e for e in problems.console_errors), problems.console_errors
    assert problems.failed_requests == []
    assert problems.error_responses == [
        f"401 GET {service.url}api/v1/lines",
        f"403 POST {service.url}api/v1/lines/small_cell_line/whatif",
    ]

    # a viewer in another browser finds it among the recent what-ifs and reads the same table
    viewer = browser.new_context(viewport={"width": 1300, "height": 1000})
    viewer.add_init_script(f"localStorage.setItem('gigatwin.apiKey', {VIEWER!r})")
    other = viewer.new_page()
    clean = PageProblems()
    clean.watch(other)
    other.goto(f"{service.url}whatif")
    other.wait_for_selector("body[data-ready=true]", timeout=LIVE_TIMEOUT_MS)
    other.click(f"#jobs-table tr[data-job='{job['id']}'] button")
    other.wait_for_selector("#job-panel[data-state=done] #delta-table:not([hidden])", timeout=LIVE_TIMEOUT_MS)
    assert _table(other) == table
    assert other.inner_text("#verdict") == verdict
    assert clean.page_errors == []
    assert clean.console_errors == []
    assert clean.failed_requests == []
    assert clean.error_responses == []
    viewer.close()
    context.close()
    _stop(service)
