"""A real browser for the page tests: Debian's chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"  # tests/screenshots: look at them
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"
)


@contextlib.contextmanager
def chromium():
    """A headless chromium for the duration of the block."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def opened_page(browser, url: str, ready: str, timeout_ms: float):
    """A desktop-sized page at ``url``, once ``ready`` (a selector) is on it."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        page.wait_for_selector(ready, timeout=timeout_ms)
        yield page
    finally:
        page.close()


def error_toasts(page) -> list[str]:
    return page.locator('[data-testid="toast-body"].error').all_inner_texts()
