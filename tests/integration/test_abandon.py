"""Who stops what when a client leaves a stream, on both stores: a foreground stream of the
OpenAI APIs (a Responses `background: false` stream, a streamed chat completion) is cancelled
once nobody has followed it for ABANDON_SECONDS, its partial text and usage kept; a background
response and a native stream run to their end. And how long a stored response is kept."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from ..conftest import FAKE_MODEL
from ..sse import iter_events

pytestmark = pytest.mark.integration

ABANDON = "1"
TOKENS = 150  # at 20 ms a token: 3 s, well past ABANDON_SECONDS and the reaper's rounds
# A reply that should be cancelled: 10 s, so that a busy machine (tests run in parallel) still
# cancels it long before its end.
LONG = 500


@pytest.fixture
def server(start_store_server):
    return start_store_server(ABANDON_SECONDS=ABANDON)


def _drop_after(server, path: str, body: dict, events: int) -> str:
    """Start a stream, read `events` events, drop the connection; the stream's id."""
    with httpx.Client(base_url=server.url, timeout=30) as http, http.stream("POST", path, json=body) as response:
        stream_id = response.headers["x-stream-id"]
        for index, _ in enumerate(iter_events(response)):
            if index + 1 == events:
                break
    return stream_id


def _message(tokens: int = TOKENS) -> str:
    return f"{uuid.uuid4().hex} @tokens={tokens} @delay_ms=20"


def _final_status(server, response_id: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        found = httpx.get(f"{server.url}/v1/responses/{response_id}").json()
        if found["status"] not in ("queued", "in_progress") or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_foreground_response_nobody_follows_is_cancelled_with_its_usage(server, fake) -> None:
    message = _message(LONG)
    body = {"model": FAKE_MODEL, "input": message, "stream": True}
    stream_id = _drop_after(server, "/v1/responses", body, 6)
    assert fake.wait_for_outcome(message, "client_closed", timeout=20)["tokens"] < LONG
    ended = _final_status(server, f"resp_{stream_id}")
    assert ended["status"] == "cancelled" and ended["usage"]["output_tokens"] > 0
    assert ended["output"][0]["content"][0]["text"], "the partial text is kept"


def test_a_background_response_nobody_follows_runs_to_its_end(server, fake) -> None:
    message = _message()
    body = {"model": FAKE_MODEL, "input": message, "stream": True, "background": True}
    stream_id = _drop_after(server, "/v1/responses", body, 6)
    assert _final_status(server, f"resp_{stream_id}")["status"] == "completed"
    assert fake.wait_for_outcome(message, "completed")["tokens"] == TOKENS


def test_a_streamed_completion_nobody_follows_is_cancelled(server, fake) -> None:
    message = _message(LONG)
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}], "stream": True}
    _drop_after(server, "/v1/chat/completions", body, 4)
    assert fake.wait_for_outcome(message, "client_closed", timeout=20)["tokens"] < LONG


def test_a_native_stream_nobody_follows_runs_on(server, fake) -> None:
    message = _message()
    stream_id = _drop_after(server, "/v1/chat/streaming", {"message": message}, 4)
    assert fake.wait_for_outcome(message, "completed")["tokens"] == TOKENS
    resumed = httpx.get(f"{server.url}/v1/chat/streaming/{stream_id}", params={"last_event_id": "3"}, timeout=30)
    assert resumed.status_code == 200 and b"event: done" in resumed.content


def test_a_stored_response_is_kept_for_response_ttl_seconds(start_store_server) -> None:
    server = start_store_server(RESPONSE_TTL_SECONDS="1")
    created = httpx.post(f"{server.url}/v1/responses", json={"model": FAKE_MODEL, "input": "@tokens=2"}, timeout=30)
    response_id = created.json()["id"]
    assert httpx.get(f"{server.url}/v1/responses/{response_id}").status_code == 200
    deadline, gone = time.monotonic() + 20, []
    while len(gone) < 4 and time.monotonic() < deadline:  # gone on every worker (each drops its copy in turn)
        answer = httpx.get(f"{server.url}/v1/responses/{response_id}")
        gone = [*gone, answer] if answer.status_code == 404 else []
        time.sleep(0.2)
    assert len(gone) == 4 and gone[-1].json()["error"]["code"] == "response_not_found"


def test_a_foreground_response_awaited_by_a_client_that_left_is_cancelled(server, fake) -> None:
    message = _message(LONG)
    with pytest.raises(httpx.ReadTimeout):  # the client gives up waiting for the whole reply
        httpx.post(f"{server.url}/v1/responses", json={"model": FAKE_MODEL, "input": message}, timeout=0.5)
    assert fake.wait_for_outcome(message, "client_closed", timeout=20)["tokens"] < LONG
