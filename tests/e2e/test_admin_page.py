"""The admin page in Chromium, desktop and phone: it asks for the admin key, lists the keys (the
key file's too), creates one (its secret shown once), rotates and revokes it, shows this
month's spend by day as a chart and the top end users, and the live streams, one of which it
stops."""

from __future__ import annotations

import datetime
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from harness.processes import ChatWaitServer

from ..conftest import FAKE_MODEL, server_env
from ..sse import iter_events
from .conftest import PHONE, open_page, screenshot

ADMIN = "admin-page-key-0123456789abcdef"
SEEDED = "seeded-page-key-0123456789abcdef"


@pytest.fixture(scope="module")
def admin_server(fake, tmp_path_factory) -> Iterator[ChatWaitServer]:
    folder = tmp_path_factory.mktemp("admin-page")
    (folder / "keys").write_text(f"{SEEDED} name=seeded rpm=100\n")
    prices = f"prices: {{{FAKE_MODEL}: {{input: 100, output: 1000}}}}\n"
    (folder / "upstreams.yaml").write_text(f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}}}\n{prices}")
    env = server_env("", UPSTREAMS_FILE=str(folder / "upstreams.yaml"), CHATWAIT_API_KEYS_FILE=str(folder / "keys"),
                     ADMIN_API_KEY=ADMIN, DATA_DIR=str(folder / "data"))  # fmt: skip
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _ask(url: str, key: str, user: str) -> None:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "Hello @tokens=5"}]}
    headers = {"Authorization": f"Bearer {key}", "X-ChatWait-User": user}
    assert httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30).status_code == 200


def test_the_admin_page_lists_creates_rotates_and_revokes_keys_and_shows_spend(browser: Browser, admin_server) -> None:
    page = open_page(browser, f"{admin_server.url}/admin")
    try:
        expect(page.locator("#key-dialog")).to_be_visible()
        page.locator("#key-input").fill(ADMIN)
        page.locator("#key-save").click()
        expect(page.locator("#keys tbody tr")).to_have_count(1)
        expect(page.locator("#keys tbody tr").first).to_contain_text("seeded (file)")
        page.locator("#create-name").fill("web")
        page.locator("#create-rpm").fill("60")
        page.locator("#create-user-rpm").fill("5")
        page.locator("#create button[type=submit]").click()
        expect(page.locator("#secret")).to_be_visible()
        secret = page.locator("#secret-value").inner_text()
        assert secret.startswith("cw-")
        web = page.locator("#keys tbody tr[data-name=web]")
        expect(web).to_contain_text("rpm 60")
        expect(web).to_contain_text("active")
        for user in ("alice", "alice", "bob"):
            _ask(admin_server.url, secret, user)
        page.locator("#secret-done").click()
        expect(page.locator("#secret")).to_be_hidden()
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        today = datetime.datetime.now(datetime.UTC)
        expect(page.locator("#spend-chart rect")).to_have_count(today.day)  # the month's days so far
        expect(page.locator("#spend-chart rect[height='130']")).to_have_count(1)  # today's, the dearest
        expect(page.locator("#top-users tbody tr")).to_have_count(2)
        expect(page.locator("#top-users tbody tr").first).to_contain_text("alice")
        expect(page.locator("#spend-total")).to_contain_text("$0.0")
        page.locator("#keys tbody tr[data-name=web] button", has_text="Rotate").click()
        expect(page.locator("#secret")).to_be_visible()
        assert page.locator("#secret-value").inner_text() not in ("", secret)
        expect(web).to_contain_text("rotating")
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#keys tbody tr[data-name=web] button", has_text="Revoke").click()
        expect(web).to_contain_text("revoked")
        expect(web.locator("button")).to_have_count(0)
        assert "cw-" not in page.locator("#keys").inner_text(), "never a secret in the list"
    finally:
        page.context.close()


def test_the_admin_page_shows_the_live_streams_and_stops_one(browser: Browser, admin_server) -> None:
    started, ending = threading.Event(), []

    def stream() -> None:
        body = {"message": f"{uuid.uuid4().hex} @tokens=5000 @delay_ms=20"}
        headers = {"Authorization": f"Bearer {SEEDED}"}
        url = f"{admin_server.url}/v1/chat/streaming"
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as reply:
            started.set()
            ending.extend(event for event in iter_events(reply) if event.event == "done")

    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    assert started.wait(10)
    page = open_page(browser, f"{admin_server.url}/admin")
    try:
        page.locator("#key-input").fill(ADMIN)
        page.locator("#key-save").click()
        row = page.locator("#streams tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("seeded")
        expect(row).to_contain_text("/v1/chat/streaming")
        expect(page.locator("#streams-count")).to_contain_text("1 generating now")
        expect(page.locator("#top-users tbody tr")).to_have_count(2)
        screenshot(page, "admin-desktop")
        row.locator("button", has_text="Stop").click()
        expect(row).to_have_count(0)
        expect(page.locator("#streams-count")).to_contain_text("0 generating now")
        reader.join(10)
        assert [event.data["finish_reason"] for event in ending] == ["cancelled"], "its client got the ending"
    finally:
        page.context.close()


def test_the_admin_page_on_a_phone(browser: Browser, admin_server) -> None:
    page = open_page(browser, f"{admin_server.url}/admin", PHONE)
    try:
        page.locator("#key-input").fill(ADMIN)
        page.locator("#key-save").click()
        expect(page.locator("#keys tbody tr").first).to_contain_text("seeded")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "nothing wider than the phone"
        screenshot(page, "admin-phone")
    finally:
        page.context.close()


def test_a_wrong_admin_key_is_asked_again(browser: Browser, admin_server) -> None:
    page = open_page(browser, f"{admin_server.url}/admin")
    try:
        page.locator("#key-input").fill(SEEDED)  # a client key opens no admin path
        page.locator("#key-save").click()
        expect(page.locator("#key-dialog")).to_be_visible()
        expect(page.locator("#notice")).to_contain_text("admin key")
    finally:
        page.context.close()
