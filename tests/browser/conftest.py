"""The browser layer: the dashboard in headless Chromium (Debian's ``chromium`` package, driven by Playwright;
never a downloaded browser). Skipped with the reason when /usr/bin/chromium is missing, unless
``BATON_REQUIRE_BROWSER=1`` (CI), which fails instead. The skip is decided at collection, so a machine without
Chromium starts no Prefect server for these tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CHROMIUM = Path(os.environ.get("BATON_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing() -> str | None:
    """What this machine lacks to drive a browser, or None."""
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing (Debian's chromium package: `apt-get install -y chromium`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (`pip install -e .[dev]`)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = _missing()
    if missing is None or os.environ.get("BATON_REQUIRE_BROWSER") == "1":  # required: the fixture fails instead
        return
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=missing))


@pytest.fixture(scope="module")
def playwright_driver():
    """Playwright's driver (a failure naming what is missing under BATON_REQUIRE_BROWSER=1). Module scope, not
    session: its sync API keeps an event loop running in this thread while it lives, and the tests after this
    layer call asyncio.run()."""
    missing = _missing()
    if missing:
        pytest.fail(f"BATON_REQUIRE_BROWSER=1 but {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright_driver):
    browser = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    try:
        yield browser
    finally:
        browser.close()
