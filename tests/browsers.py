"""The headless browser the browser tests use (tests/test_tour_screenshot.py, tests/test_browser_notebook.py):
where it is looked for, and the one rule for a missing one — skipped with how to install one, or a failure
where `EGOKIT_REQUIRE_BROWSER` is set (CI, once it has installed a browser). `browser` is the fixture
(registered in tests/conftest.py)."""

from __future__ import annotations

import os
import shutil

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = ("no headless Chromium found on PATH (looked for: " + ", ".join(BROWSERS) + "), so the browser "
                "test is skipped; to run it, install one: `apt-get install chromium` (Debian/Ubuntu), "
                "`brew install --cask chromium` (macOS), or Google Chrome from its website.")
REQUIRE_BROWSER = "EGOKIT_REQUIRE_BROWSER"


def find_browser() -> str | None:
    return next((found for found in map(shutil.which, BROWSERS) if found), None)


@pytest.fixture(scope="module")
def browser() -> str:
    """The headless browser's path; without one the test is skipped with how to install one."""
    found = find_browser()
    if found is None:
        if os.environ.get(REQUIRE_BROWSER, "") not in ("", "0"):
            pytest.fail(f"{INSTALL_HINT} ({REQUIRE_BROWSER} is set, so a missing browser fails)", pytrace=False)
        pytest.skip(INSTALL_HINT)
    return found
