"""From other origins, in Chromium itself: a page on a listed origin (CORS_ORIGINS) calls ChatWait
with a key (a preflighted request), reads X-Stream-Id and streams the reply; a page on another
origin is blocked by the browser. And the embedded model's line as the chat page shows it."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from harness.processes import ChatWaitServer

from ..conftest import server_env
from .conftest import open_page, screenshot
from .test_chat_page import last_reply, send

KEY = "cross-origin-key-0123456789abcdef"
CALL = """async ([url, key]) => {
    try {
        const response = await fetch(url + "/v1/chat/streaming", {
            method: "POST",
            headers: {"Content-Type": "application/json", "Authorization": "Bearer " + key},
            body: JSON.stringify({message: "Hello from afar @tokens=5"}),
        });
        return {status: response.status, streamId: response.headers.get("X-Stream-Id"), body: await response.text()};
    } catch (error) {
        return {failed: String(error)};
    }
}"""


class _AppPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>app</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_) -> None:
        pass


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """Two web apps on loopback (so Chromium's local network checks let them call ChatWait):
    one listed in CORS_ORIGINS, one not."""
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AppPage) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tuple(f"http://127.0.0.1:{server.server_address[1]}" for server in servers)
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def cors_page_server(fake, origins) -> Iterator[ChatWaitServer]:
    running = ChatWaitServer(server_env(fake.base_url, CORS_ORIGINS=origins[0], CHATWAIT_API_KEYS=KEY))
    yield running
    running.stop()


def _page_on(browser: Browser, origin: str):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{origin}/")
    return page


def test_a_listed_origin_streams_a_reply_through_cors(browser: Browser, cors_page_server, origins) -> None:
    page = _page_on(browser, origins[0])
    try:
        result = page.evaluate(CALL, [cors_page_server.url, KEY])
        assert result.get("status") == 200, result
        assert result["streamId"], "X-Stream-Id is exposed to the page"
        assert "event: done" in result["body"] and "tok4" in result["body"]
    finally:
        page.context.close()


def test_another_origin_is_blocked_by_the_browser(browser: Browser, cors_page_server, origins) -> None:
    page = _page_on(browser, origins[1])
    try:
        result = page.evaluate(CALL, [cors_page_server.url, KEY])
        assert "failed" in result and "fetch" in result["failed"].lower(), result
    finally:
        page.context.close()


@pytest.fixture(scope="module")
def local_page_server() -> Iterator[ChatWaitServer]:
    running = ChatWaitServer({"LOCAL_CONTEXT_TOKENS": "1024", "KEEPALIVE_SECONDS": "1"})
    yield running
    running.stop()


def test_the_page_shows_its_place_in_the_embedded_models_line(browser: Browser, local_page_server) -> None:
    """Two replies hold the only model instance and the line: the page's reply waits 2 ahead."""
    url = local_page_server.url
    endless = {"message": "Write a very long story.", "max_tokens": 500, "temperature": 2}
    held: list[str] = []
    opened = threading.Barrier(3)

    def hold() -> None:
        with (
            httpx.Client(base_url=url, timeout=120) as client,
            client.stream("POST", "/v1/chat/streaming", json=endless) as response,
        ):
            held.append(response.headers["x-stream-id"])
            opened.wait(30)
            for _ in response.iter_raw():  # followed to its end (or its stop)
                pass

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for holder in holders:
        holder.start()
    opened.wait(30)
    page = open_page(browser, url)
    try:
        send(page, "Hi")
        reply = last_reply(page)
        expect(reply.locator(".state")).to_have_text("Waiting for the model (2 ahead)")
        screenshot(page, "waiting-for-the-model")
        httpx.delete(f"{url}/v1/chat/streaming/{held[0]}", timeout=30)
        expect(reply.locator(".state")).to_have_text("Waiting for the model (1 ahead)")
        httpx.delete(f"{url}/v1/chat/streaming/{held[1]}", timeout=30)
        expect(reply).to_have_attribute("data-status", "complete", timeout=120_000)
    finally:
        for stream_id in held:
            httpx.delete(f"{url}/v1/chat/streaming/{stream_id}", timeout=30)
        for holder in holders:
            holder.join(60)
        page.context.close()
