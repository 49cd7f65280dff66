"""Conversations are bounded as whole turns, and per key: the item bound never keeps a tool output
without its call; a key's conversations share a bound in bytes (CONVERSATION_KEY_BYTES), its least
recently changed going first; changes and token counts are requests under the key's rpm; an item
that cannot be kept is a 400. Both stores (Redis: two gateways share them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.processes import ChatWaitServer

from ..conftest import FAKE_MODEL, gateways_of, server_env

pytestmark = pytest.mark.integration

KEY = "sk-conv-bounds-" + "2" * 20
LIMITED = "sk-conv-rpm-" + "3" * 20
OTHER = "sk-conv-other-" + "4" * 20


@pytest.fixture(scope="module", params=["memory", "redis"])
def gateways(request, fake, tmp_path_factory) -> Iterator[list[ChatWaitServer]]:
    keys = tmp_path_factory.mktemp("conversation-bounds") / "keys.txt"
    run = uuid.uuid4().hex[:6]  # names of this run only: the session's Redis outlives the module
    keys.write_text(f"{KEY} name=bounds-{run}\n{LIMITED} name=rpm-{run} rpm=3\n{OTHER} name=other-{run}\n")
    env = server_env(
        fake.base_url,
        CHATWAIT_API_KEYS_FILE=str(keys),
        MAX_CONVERSATION_ITEMS="4",
        CONVERSATION_KEY_BYTES="65536",
    )
    servers = gateways_of(request, env, request.param)
    yield servers
    for server in servers:
        server.stop()


def _client(server: ChatWaitServer, key: str = KEY) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _message(role: str, text: str) -> dict:
    return {"type": "message", "role": role, "content": text}


def test_the_item_bound_drops_whole_turns_never_orphaning_a_tool_output(gateways) -> None:
    turn = [
        _message("user", "what is the weather?"),
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        _message("assistant", "It is sunny."),
    ]
    with _client(gateways[0]) as first, _client(gateways[-1]) as other:
        conversation = first.post("/v1/conversations", json={"items": turn}).json()["id"]
        added = other.post(
            f"/v1/conversations/{conversation}/items",
            json={"items": [_message("user", "and tomorrow?"), _message("user", "and after?")]},
        )
        assert added.status_code == 200, added.text
        kept = first.get(f"/v1/conversations/{conversation}/items", params={"order": "asc"}).json()["data"]
    kinds = [(item["type"], item.get("call_id")) for item in kept]
    assert ("function_call_output", "call_1") not in kinds, f"an output without its call: {kinds}"
    assert kinds == [("message", None)] * 3, kinds


def test_a_keys_conversations_share_a_byte_budget(gateways) -> None:
    text = "x" * 20_000
    with _client(gateways[0]) as client, _client(gateways[-1], OTHER) as other:
        theirs = other.post("/v1/conversations", json={"items": [_message("user", text)]}).json()["id"]
        made = [
            client.post("/v1/conversations", json={"items": [_message("user", f"{n} {text}")]}).json()["id"]
            for n in range(5)
        ]
        kept = [cid for cid in made if client.get(f"/v1/conversations/{cid}").status_code == 200]
        assert kept == made[-3:], "about 60 KB of 64 KB: the least recently changed went first"
        assert other.get(f"/v1/conversations/{theirs}").status_code == 200, "another key's budget is its own"


def test_conversation_changes_and_token_counts_are_under_the_keys_rpm(gateways) -> None:
    with _client(gateways[0], LIMITED) as client:
        answers = [client.post("/v1/conversations", json={}).status_code for _ in range(3)]
        assert answers == [200] * 3
        refused = client.post("/v1/conversations", json={})
        assert refused.status_code == 429 and refused.headers["x-ratelimit-remaining-requests"] == "0", refused.text
        counted = client.post("/v1/responses/input_tokens", json={"model": FAKE_MODEL, "input": "hi"})
        assert counted.status_code == 429, counted.text
        body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/messages/count_tokens", json=body).status_code == 429


def test_an_item_that_cannot_be_kept_is_a_400(gateways) -> None:
    huge = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "x", "n": 2**70}]}
    with _client(gateways[0]) as client:
        refused = client.post("/v1/conversations", json={"items": [_message("user", "hi"), huge]})
        assert refused.status_code == 400, refused.text
