"""The chat page in front of a ChatWait that asks for client keys (CHATWAIT_API_KEYS): it asks
the person for a key on the first 401, sends the turn again with it, and keeps using it; a key's
rate limit says how long to wait."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from harness.processes import ChatWaitServer

from ..conftest import server_env
from .conftest import open_page, screenshot
from .test_chat_page import assert_reply, full_reply, last_reply, send

KEY = "page-key-0123456789abcdef"
SLOW_KEY = "page-slow-key-0123456789abcdef"  # one request a minute


@pytest.fixture(scope="module")
def keyed_page_server(fake, tmp_path_factory) -> Iterator[ChatWaitServer]:
    keys = tmp_path_factory.mktemp("page-keys") / "keys.txt"
    keys.write_text(f"{KEY} name=page\n{SLOW_KEY} name=slow rpm=1\n")
    running = ChatWaitServer(server_env(fake.base_url, KEEPALIVE_SECONDS="5", CHATWAIT_API_KEYS_FILE=str(keys)))
    yield running
    running.stop()


def test_the_page_asks_for_a_key_then_sends_the_turn_with_it(browser: Browser, keyed_page_server) -> None:
    page = open_page(browser, keyed_page_server.url)
    try:
        expect(page.locator("#key-button")).to_be_visible()  # /ready says the API asks for keys
        expect(page.get_by_role("combobox", name="Model")).to_be_hidden()  # /v1/models needs the key
        send(page, "Hello with a key @tokens=6")
        expect(page.locator("#key-dialog")).to_be_visible()
        expect(page.locator(".message")).to_have_count(0)  # the refused turn is taken back...
        expect(page.locator("#input")).to_have_value("Hello with a key @tokens=6")  # ...to the composer
        expect(page.locator("#notice")).to_contain_text("key")
        page.locator("#key-input").fill("a-wrong-key-0000000000")
        page.locator("#key-save").click()  # refused again: the dialog comes back
        expect(page.locator("#key-dialog")).to_be_visible()
        screenshot(page, "key-dialog")
        page.locator("#key-input").fill(KEY)
        page.locator("#key-save").click()
        expect(page.locator("#key-dialog")).to_be_hidden()
        expect(last_reply(page)).to_have_attribute("data-status", "complete")
        assert_reply(page, full_reply(6))
        expect(page.locator(".message.user")).to_have_count(1)
        options = page.get_by_role("combobox", name="Model").locator("option")  # the list, once a key is given
        expect(options).to_have_text(["fake-model — 1k out", "other-model — 1k out"])
        send(page, "Again @tokens=3")  # the key is kept
        expect(last_reply(page)).to_have_attribute("data-status", "complete")
        assert_reply(page, full_reply(3))
        expect(page.locator("#key-dialog")).to_be_hidden()
    finally:
        page.context.close()


def test_a_rate_limit_says_how_long_to_wait(browser: Browser, keyed_page_server) -> None:
    """Issue 82: the notice said "Wait a moment" where the service says how long (Retry-After)."""
    page = open_page(browser, keyed_page_server.url)
    try:
        page.evaluate("(key) => localStorage.setItem('chatwait.apiKey', key)", SLOW_KEY)
        send(page, "The first of the minute @tokens=2")
        expect(last_reply(page)).to_have_attribute("data-status", "complete")
        send(page, "One too many @tokens=2")
        notice = page.locator("#notice .notice-text")
        expect(notice).to_contain_text("faster than this key allows")
        expect(notice).to_contain_text(re.compile(r"Wait \d+ seconds?, then try again\."))
        expect(notice).not_to_contain_text("a moment")
        screenshot(page, "rate-limited")
    finally:
        page.context.close()
