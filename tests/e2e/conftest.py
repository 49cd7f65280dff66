"""The chat page in a real browser: Debian's Chromium driven by Playwright, against ChatWait
(gunicorn) and the fake upstream, through a proxy that can cut a streaming response.

No browser is downloaded: CHROMIUM (default /usr/bin/chromium, installed by .ci/run with apt)
is launched directly. Screenshots of the main states go to artifacts/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from harness.processes import ChatWaitServer
from harness.proxy import CuttingProxy

from ..conftest import server_env

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
]
DESKTOP = {"width": 1200, "height": 800}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 20_000  # generous: a shared CI machine may be slow; nothing here measures speed

expect.set_options(timeout=WAIT_MS)


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"Chromium not found at {path}: install Debian's `chromium` (.ci/run does) or set CHROMIUM.")
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def page_server(fake) -> Iterator[ChatWaitServer]:
    """ChatWait for the page tests (a longer keepalive than the API tests need)."""
    running = ChatWaitServer(server_env(fake.base_url, KEEPALIVE_SECONDS="5", MAX_TOKENS="16000"))  # a reply of 10,000
    yield running
    running.stop()


@pytest.fixture
def proxy(page_server: ChatWaitServer) -> Iterator[CuttingProxy]:
    """The page is loaded through this proxy, so a test can cut its streaming response."""
    running = CuttingProxy(page_server.port)
    yield running
    running.close()


def open_page(browser: Browser, url: str, viewport: dict[str, int] = DESKTOP) -> Page:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


@pytest.fixture
def page(browser: Browser, proxy: CuttingProxy) -> Iterator[Page]:
    """A fresh browser context (empty localStorage) on the chat page, desktop size."""
    opened = open_page(browser, proxy.url)
    yield opened
    opened.context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
