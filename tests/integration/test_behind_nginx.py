"""ChatWait behind nginx (Debian's) configured with the exact block of docs/scaling.md, in front
of two instances sharing the tests' Redis: a WebSocket turn of the Responses API through it (the
`openai` SDK's `responses.connect()`), a turn cut mid-reply reattached on a new socket through
it (landing on either instance) with nothing lost or repeated, and SSE streaming unbuffered."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import httpx
import openai
import pytest
from websockets.sync.client import connect as ws_connect

from harness.nginx import Nginx
from harness.processes import ChatWaitServer

from ..conftest import FAKE_MODEL, ROOT, server_env
from .test_responses_socket import ENDINGS, RESUME, sse_messages
from .test_responses_tools import WEATHER

pytestmark = pytest.mark.integration


def documented_block() -> str:
    """The nginx block docs/scaling.md gives."""
    (block,) = re.findall(r"```nginx\n(.*?)```", (ROOT / "docs" / "scaling.md").read_text(), re.S)
    return block


@pytest.fixture(scope="module")
def proxied(fake, redis_server) -> Iterator[Nginx]:
    env = server_env(fake.base_url, STREAM_STORE="redis", REDIS_URL=redis_server.url, WEB_CONCURRENCY="1")
    instances = [ChatWaitServer(env), ChatWaitServer(env)]
    proxy = Nginx(documented_block(), [running.url.removeprefix("http://") for running in instances])
    yield proxy
    proxy.stop()
    for running in instances:
        running.stop()


def _until_ending(ws) -> list[str]:
    found = []
    while True:
        message = ws.recv(timeout=30)
        found.append(message)
        if json.loads(message)["type"] in ENDINGS:
            return found


def test_the_documented_block_forwards_websocket_upgrades(proxied: Nginx) -> None:
    assert "proxy_set_header Upgrade $http_upgrade;" in documented_block()
    sdk = openai.OpenAI(base_url=f"{proxied.url}/v1", api_key="unused", max_retries=0, timeout=30)
    with sdk, sdk.responses.connect() as conn:
        conn.send({"type": "response.create", "model": FAKE_MODEL, "input": "Weather?", "tools": [WEATHER]})
        events = list(_events(conn))
        (call,) = events[-1].response.output
        output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        chained = {"previous_response_id": events[-1].response.id, "input": [output], "tools": [WEATHER]}
        conn.send({"type": "response.create", "model": FAKE_MODEL, **chained})
        answer = list(_events(conn))[-1].response
    assert answer.status == "completed" and answer.output_text == "The tool said: sunny"


def _events(conn) -> Iterator:
    for event in conn:
        yield event
        if event.type in ENDINGS:
            return


def test_a_turn_cut_mid_reply_is_reattached_through_nginx_with_nothing_lost_or_repeated(proxied: Nginx) -> None:
    ws_url = proxied.url.replace("http://", "ws://") + "/v1/responses"
    ws = ws_connect(ws_url)
    ws.send(json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=40 @delay_ms=20"}))
    received = [ws.recv(timeout=10) for _ in range(6)]
    ws.socket.shutdown(socket.SHUT_RDWR)  # the network drops mid-turn
    ws.socket.close()
    response_id, last = json.loads(received[0])["response"]["id"], json.loads(received[-1])["sequence_number"]
    for _ in range(2):  # a new socket each time: nginx may take it to either instance
        with ws_connect(ws_url) as again:
            again.send(json.dumps({"type": RESUME, "response_id": response_id, "starting_after": last}))
            rest = _until_ending(again)
        whole = sse_messages(httpx.get(f"{proxied.url}/v1/responses/{response_id}?stream=true", timeout=30).content)
        assert received + rest == whole


def test_event_streams_pass_through_unbuffered(proxied: Nginx) -> None:
    body = {"message": "@tokens=5 @delay_ms=300"}
    with httpx.stream("POST", f"{proxied.url}/v1/chat/streaming", json=body, timeout=30) as answer:
        pieces = answer.iter_raw()
        first = next(pieces)
        rest = b"".join(pieces)
    assert b"event: stream" in first and b"event: done" not in first, "the first event comes before the reply ends"
    assert b"event: done" in rest
