"""Where a prompt prefix to cache ends (`prompt_cache_breakpoint` on a chat completions or
Responses content part, in any message; a Messages block's `cache_control`): passed on as it is
to an OpenAI-compatible server, with the request's `prompt_cache_options`, a Messages block's as
the part's mark; sent to an Anthropic server as the block's `cache_control` (the system prompt as
text blocks then). A malformed mark is a 400 naming the part."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, anthropic_upstream, server_env

pytestmark = pytest.mark.integration

MARK = {"mode": "explicit"}


@pytest.fixture(scope="module")
def claude_server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    listing = anthropic_upstream(fake, tmp_path_factory.mktemp("breakpoints-claude"))
    running = ChatWaitServer(server_env("", UPSTREAMS_FILE=str(listing)))
    yield running
    running.stop()


def _messages(user_text: str) -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": "A long policy.", "prompt_cache_breakpoint": MARK},
                                       {"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "Earlier words.", "prompt_cache_breakpoint": MARK},
                                     {"type": "text", "text": user_text}]},
    ]  # fmt: skip


def test_an_openai_compatible_server_gets_the_marks_as_they_are(server) -> None:
    body = {"model": FAKE_MODEL, "messages": _messages(" @reply=request"),  # the fake joins the parts
            "prompt_cache_options": {"mode": "explicit", "ttl": "30m"}}  # fmt: skip
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    sent = json.loads(answer.json()["choices"][0]["message"]["content"])
    system, user = sent["messages"]
    assert system["content"][0] == {"type": "text", "text": "A long policy.", "prompt_cache_breakpoint": MARK}
    assert system["content"][1] == {"type": "text", "text": "Be brief."}
    assert user["content"][0]["prompt_cache_breakpoint"] == MARK and "prompt_cache_breakpoint" not in user["content"][1]
    assert sent["prompt_cache_options"] == {"mode": "explicit", "ttl": "30m"}


def test_an_anthropic_server_gets_cache_control_on_the_marked_blocks(claude_server, fake) -> None:
    said = f" {uuid.uuid4().hex} @tokens=2"
    body = {"model": FAKE_MODEL, "messages": _messages(said)}
    answer = httpx.post(f"{claude_server.url}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    (outcome,) = fake.outcomes_for("Earlier words." + said)  # the fake's last user text: the parts joined
    sent = outcome["body"]
    marked = {"type": "ephemeral"}
    assert sent["system"] == [{"type": "text", "text": "A long policy.", "cache_control": marked},
                              {"type": "text", "text": "Be brief."}]  # fmt: skip
    blocks = sent["messages"][0]["content"]
    assert blocks[0] == {"type": "text", "text": "Earlier words.", "cache_control": marked}
    assert "cache_control" not in blocks[1]
    usage = answer.json()["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] > 0, "the fake read its cache: the marks reached it"


@pytest.mark.parametrize(
    "part",
    [
        {"type": "text", "text": "x", "prompt_cache_breakpoint": {"mode": "implicit"}},
        {"type": "text", "text": "x", "prompt_cache_breakpoint": True},
    ],
)
def test_a_malformed_mark_is_a_400_naming_the_part(server, part: dict) -> None:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": [part]}]}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == "messages[0].content" and "Part 0: prompt_cache_brea" in error["message"]


def test_a_system_message_takes_marked_text_parts_but_no_image(server) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    messages = [{"role": "system", "content": [image]}, {"role": "user", "content": "hi"}]
    body = {"model": FAKE_MODEL, "messages": messages}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 400 and "Only user messages take images" in answer.text


def test_a_responses_turns_marks_reach_an_openai_compatible_server(server) -> None:
    marked = {"type": "input_text", "text": "A long policy.", "prompt_cache_breakpoint": MARK}
    body = {"model": FAKE_MODEL, "input": [
        {"role": "developer", "content": [marked, {"type": "input_text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "input_text", "text": " @reply=request"}]},
    ]}  # fmt: skip
    answer = httpx.post(f"{server.url}/v1/responses", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    sent = json.loads(answer.json()["output"][0]["content"][0]["text"])
    developer = next(message for message in sent["messages"] if message["role"] in ("developer", "system"))
    assert developer["content"][0] == {"type": "text", "text": "A long policy.", "prompt_cache_breakpoint": MARK}
    assert "prompt_cache_breakpoint" not in developer["content"][1]


def test_a_messages_requests_cache_control_reaches_an_openai_compatible_server_as_marks(server) -> None:
    ephemeral = {"type": "ephemeral"}
    body = {"model": FAKE_MODEL, "max_tokens": 50,
            "system": [{"type": "text", "text": "A long policy.", "cache_control": ephemeral},
                       {"type": "text", "text": "Be brief."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Earlier.", "cache_control": ephemeral},
                                                      {"type": "text", "text": " @reply=request"}]}]}  # fmt: skip
    answer = httpx.post(f"{server.url}/v1/messages", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    sent = json.loads(answer.json()["content"][0]["text"])
    system, user = sent["messages"]
    assert system["content"] == [{"type": "text", "text": "A long policy.", "prompt_cache_breakpoint": MARK},
                                 {"type": "text", "text": "Be brief."}]  # fmt: skip
    assert user["content"][0] == {"type": "text", "text": "Earlier.", "prompt_cache_breakpoint": MARK}
