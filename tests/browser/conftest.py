"""Fixtures of the dashboard's browser tests (see :mod:`tests.browser.harness`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.harness import Chromium, Services


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """Start services with ``services.start([...])``; they are stopped after the test."""
    started = Services(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """The system Chromium under Playwright: ``chromium.launch()`` in the test."""
    holder = Chromium()
    try:
        yield holder
    finally:
        holder.close()
