"""The dashboard in a real browser against the running demo: the line's stations, live states, KPIs and charts, with no
console errors, no uncaught exceptions and no failed requests; and the API-key prompt when authentication is on."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.harness import STOP_TIMEOUT_S, STOPPED_BY_SIGINT, Chromium, PageProblems, Service, Services

pytestmark = pytest.mark.browser

STATES = {"WORKING", "STARVED", "BLOCKED", "DOWN", "SETUP", "PLANNED_STOP", "UNKNOWN"}
LIVE_TIMEOUT_MS = 15_000
# The demo's default warm-up (504 h) fills the line, so good units ship from the start (after 200-300 h the end of
# the line is still starved); a few corrupted messages show dead letters.
DEMO = ["demo", "--port", "0", "--speed", "600", "--warmup", "504", "--malformed", "0.002"]


def _stop(service: Service) -> None:
    code, took = service.stop()
    assert code is not None, f"the service did not stop within {STOP_TIMEOUT_S:g} s of SIGINT"
    assert code in STOPPED_BY_SIGINT, f"the service exited with {code} after SIGINT:\n{service.stderr()}"
    assert took < STOP_TIMEOUT_S


def _station_states(page: Page) -> dict[str, str]:
    states: dict[str, str] = page.eval_on_selector_all(
        "#flow [data-station]", "els => Object.fromEntries(els.map(e => [e.dataset.station, e.dataset.state]))"
    )
    return states


def _text(page: Page, selector: str) -> str:
    return page.inner_text(selector).strip()


def _assert_clean(problems: PageProblems) -> None:
    assert problems.page_errors == []
    assert problems.console_errors == []
    assert problems.failed_requests == []
    assert problems.error_responses == []


def test_dashboard_follows_the_demo_line(chromium: Chromium, services: Services) -> None:
    browser = chromium.launch()
    demo = services.start(DEMO)
    line_id = demo.get_json("api/v1/lines")[0]["id"]
    line: dict[str, Any] = demo.get_json(f"api/v1/lines/{line_id}")
    expected = [s["id"] for s in line["stations"]]
    machines = {s["id"]: s["machines"] for s in line["stations"]}

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems = PageProblems()
    problems.watch(page)
    page.goto(demo.url)
    page.wait_for_selector("body[data-ready=true]", timeout=LIVE_TIMEOUT_MS)

    # every station of the line, in flow order, each with a known state
    first = _station_states(page)
    assert list(first) == expected
    assert set(first.values()) <= STATES
    assert _text(page, "#line-name") == line_id

    # the stream is live and its state messages are applied: station states change as the plant runs
    page.wait_for_selector("#connection[data-conn=live]", timeout=LIVE_TIMEOUT_MS)
    page.wait_for_function("Number(document.getElementById('flow').dataset.stateMessages) > 0", timeout=LIVE_TIMEOUT_MS)
    seen: dict[str, set[str]] = {sid: {state} for sid, state in first.items()}
    deadline = time.monotonic() + LIVE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline and all(len(states) == 1 for states in seen.values()):
        page.wait_for_timeout(200)
        for sid, state in _station_states(page).items():
            seen[sid].add(state)
    changed = sorted(sid for sid, states in seen.items() if len(states) > 1)
    assert changed, f"no station changed state within {LIVE_TIMEOUT_MS / 1000:g} s: {first}"
    assert int(page.get_attribute("#flow", "data-changes") or 0) > 0

    # the machine counts of a multi-machine station add up to its machines
    for sid, n in machines.items():
        if n > 1:
            counts = page.eval_on_selector_all(
                f"[data-station='{sid}'] [data-count]:not([hidden])",
                "els => els.map(e => Number(e.textContent.split(' ').pop()))",
            )
            assert sum(counts) == n, f"{sid}: machine counts {counts} do not add up to {n}"

    # kpi messages fill the clock, the shift against plan, OEE and dead letters; the line's clock runs
    page.wait_for_function("Number(document.body.dataset.kpiMessages) >= 1", timeout=LIVE_TIMEOUT_MS)
    clock = _text(page, "#clock")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", clock)
    for selector in (
        "#shift-good",
        "#shift-plan",
        "#total-good",
        "#total-wip",
        "#oee-line",
        "#oee-constraint",
        "#oee-bottleneck",
    ):
        assert _text(page, selector) != "—", f"{selector} is not filled"
    for selector in ("#shift-attainment", "#oee-availability", "#oee-performance", "#oee-quality"):
        assert re.fullmatch(r"\d[\d,.]* %", _text(page, selector)), f"{selector}: {_text(page, selector)!r}"
    assert _text(page, "#oee-constraint") == line["constraint"]
    # why output is lost: per cause, units and percent of plan this shift and over the last 24 h
    page.wait_for_function(
        "document.querySelector('#loss-table tbody tr') || document.getElementById('loss-status').textContent",
        timeout=LIVE_TIMEOUT_MS,
    )
    causes = page.eval_on_selector_all("#loss-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    for label, *cells in causes:
        assert label.split(" ")[0] in expected or label in ("supply", "shipping"), label
        for c in cells:
            assert c == "—" or re.fullmatch(r"[\d,]+ \(\d[\d,.]* %\)", c), c
    # a bottleneck is named only when judged from enough active periods, else the page says why not
    bottleneck = _text(page, "#oee-bottleneck")
    assert bottleneck in expected or re.fullmatch(r"— \(\d[\d,]* active periods: too few to judge\)", bottleneck), bottleneck
    rows = page.eval_on_selector_all("#station-oee tbody tr", "rows => rows.map(r => r.dataset.oeeStation)")
    assert rows == expected
    assert _text(page, "#station-oee tbody tr:first-child td:nth-child(5)") != "—"
    page.wait_for_function(f"document.getElementById('clock').textContent !== {clock!r}", timeout=LIVE_TIMEOUT_MS)

    # both charts are drawn with data from their endpoints (throughput, downtime) and the line ships good units
    for chart in ("#throughput-chart", "#pareto-chart"):
        box = page.locator(f"{chart} canvas").first.bounding_box()
        assert box is not None, f"{chart} has no canvas"
        assert box["width"] > 0
        assert box["height"] > 0
    page.wait_for_selector("#throughput-chart[data-points]", timeout=LIVE_TIMEOUT_MS)
    page.wait_for_function("Number(document.getElementById('throughput-chart').dataset.points) > 0", timeout=LIVE_TIMEOUT_MS)
    assert "unavailable" not in _text(page, "#throughput-status")
    page.wait_for_function(
        "Number(document.getElementById('total-good').textContent.replace(/\\D/g, '')) > 0", timeout=LIVE_TIMEOUT_MS
    )
    page.wait_for_selector("#pareto-chart[data-bars]", timeout=LIVE_TIMEOUT_MS)
    assert "unavailable" not in _text(page, "#pareto-status")
    labels = page.eval_on_selector_all("#pareto-list strong", "els => els.map(e => e.textContent)")
    assert len(labels) == int(page.get_attribute("#pareto-chart", "data-bars") or -1)
    for label in labels:
        assert label.split(" ")[0] in expected, f"the stop reason {label!r} names no station of the line"

    # dead letters: the count from kpi messages, the latest with their reasons on demand
    count = _text(page, "#dead-letters-count")
    assert count != "—"
    page.click("#dead-letters-button")
    page.wait_for_selector("#dead-letters-list:not([hidden])", timeout=LIVE_TIMEOUT_MS)
    assert page.get_attribute("#dead-letters-button", "aria-expanded") == "true"
    if count != "0":
        assert page.locator("#dead-letters-list li").count() > 0

    _assert_clean(problems)

    # at 800 px every column of the station table is in view, not behind a scroll bar
    page.set_viewport_size({"width": 800, "height": 1000})
    page.wait_for_timeout(300)
    overflow = page.eval_on_selector("#station-oee", "t => t.parentElement.scrollWidth - t.parentElement.clientWidth")
    assert overflow <= 1, f"the station table is {overflow} px wider than its panel at 800 px"
    # the flow wraps into rows: no arrow at a row's end points off the panel
    arrows = page.eval_on_selector_all(
        "#flow [data-station]",
        """cards => cards.map((c, i) => [c.dataset.station, getComputedStyle(c, '::after').content,
            i + 1 < cards.length && cards[i + 1].offsetTop > c.offsetTop])""",
    )
    assert any(row_end for _, _, row_end in arrows), "the flow does not wrap at 800 px"
    for sid, content, row_end in arrows:
        assert (content in ("none", "normal")) == (row_end or sid == expected[-1]), f"{sid}: arrow {content!r}"

    # the service stops on SIGINT with the dashboard still connected, and the page shows it lost the stream
    _stop(demo)
    page.wait_for_selector("#connection:not([data-conn=live])", timeout=LIVE_TIMEOUT_MS)
    assert page.get_attribute("#connection", "data-conn") in {"reconnecting", "offline"}
    # and its numbers are no longer shown at full colour
    assert float(page.eval_on_selector("#oee-card", "e => getComputedStyle(e).opacity")) < 1
    page.close()


def test_dashboard_asks_for_an_api_key(chromium: Chromium, services: Services) -> None:
    browser = chromium.launch()
    key = "browser-test-viewer-key"
    service = services.start(
        ["serve", "--host", "127.0.0.1", "--port", "0"],
        env={
            "GIGATWIN_SOURCE": "demo",
            "GIGATWIN_VIEWER_KEYS": key,
            "GIGATWIN_STORE_URL": f"sqlite:{services.workdir / 'auth.db'}",
            "GIGATWIN_DEMO_SPEED": "600",
            "GIGATWIN_DEMO_WARMUP_HOURS": "24",
        },
    )
    context = browser.new_context()
    page = context.new_page()
    problems = PageProblems()
    problems.watch(page)
    page.goto(service.url)

    # the first request is refused: the page asks for a key, which then goes as X-API-Key and ?api_key= (the stream)
    page.wait_for_selector("#key-dialog[open]", timeout=LIVE_TIMEOUT_MS)
    page.fill("#key-input", key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", timeout=LIVE_TIMEOUT_MS)
    page.wait_for_selector("#connection[data-conn=live]", timeout=LIVE_TIMEOUT_MS)
    page.wait_for_function("Number(document.getElementById('flow').dataset.stateMessages) > 0", timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("localStorage.getItem('gigatwin.apiKey')") == key
    assert not page.is_visible("#key-dialog")

    # the only errors are the one refused request (Chromium logs it) and its response
    assert problems.page_errors == []
    assert problems.failed_requests == []
    assert problems.error_responses == [f"401 GET {service.url}api/v1/lines"]
    assert len(problems.console_errors) == 1
    assert "401" in problems.console_errors[0]

    # the stored key is used from then on: another page of this browser asks for nothing
    again = context.new_page()
    more = PageProblems()
    more.watch(again)
    again.goto(service.url)
    again.wait_for_selector("body[data-ready=true]", timeout=LIVE_TIMEOUT_MS)
    again.wait_for_selector("#connection[data-conn=live]", timeout=LIVE_TIMEOUT_MS)
    assert not again.is_visible("#key-dialog")
    _assert_clean(more)
    context.close()
    _stop(service)


def test_api_docs_work_without_internet(chromium: Chromium, services: Services) -> None:
    """/api/v1/docs renders every route from files the service serves itself: a request to any other host is
    refused, as on a plant network without internet (FastAPI's default page loads Swagger UI from a CDN)."""
    browser = chromium.launch()
    demo = services.start(DEMO)
    own = demo.url.rstrip("/")
    outside: list[str] = []

    def only_the_service(route: Any) -> None:
        if route.request.url.startswith(own):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    context = browser.new_context()
    context.route("**/*", only_the_service)
    page = context.new_page()
    problems = PageProblems()
    problems.watch(page)
    page.goto(f"{own}/api/v1/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=LIVE_TIMEOUT_MS)
    assert "GigaTwin" in _text(page, ".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path", timeout=LIVE_TIMEOUT_MS)
    paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path || e.textContent)")
    openapi = demo.get_json("api/v1/openapi.json")
    assert {p.replace("\u200b", "") for p in paths} == set(openapi["paths"])
    assert outside == []
    _assert_clean(problems)
    context.close()
    _stop(demo)


def test_the_badge_says_when_every_message_is_rejected(chromium: Chromium, services: Services) -> None:
    """A plant whose every payload is malformed: the stream is up, but nothing it shows is live data."""
    browser = chromium.launch()
    demo = services.start(["demo", "--port", "0", "--speed", "600", "--warmup", "24", "--malformed", "1"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(demo.url)
    page.wait_for_selector("#connection[data-conn=live]", timeout=LIVE_TIMEOUT_MS)
    page.wait_for_selector("#connection[data-fresh=rejecting]", timeout=LIVE_TIMEOUT_MS)
    assert re.fullmatch(r"rejecting 100(\.0)? % of messages", _text(page, "#connection-text"))
    assert page.get_attribute("body", "data-fresh") == "rejecting"
    page.close()
    _stop(demo)
