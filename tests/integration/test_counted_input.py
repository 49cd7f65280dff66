"""Everything sent upstream is bounded and counted: a Messages body passed through as sent counts
whole (thinking, signatures, redacted thinking, images in tool results, fields the translation
does not read) toward MAX_CONVERSATION_CHARS / MAX_INPUT_TOKENS and the key's tpm; and tool
definitions count as input tokens on every API, at the limit and in the key's tpm alike.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, anthropic_upstream, server_env

pytestmark = pytest.mark.integration

KEY = "sk-counted-" + "1" * 24
TPM = 200_000
TEXT = {"type": "text", "text": "a"}
IMAGE = "A" * 290_000  # base64 of a ~217 KB picture
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{n}",
            "description": " ".join(f"word{n}x{i}" for i in range(200)),
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    for n in range(20)
]
ANTHROPIC_TOOLS = [
    {
        "name": t["function"]["name"],
        "description": t["function"]["description"],
        "input_schema": t["function"]["parameters"],
    }
    for t in TOOLS
]


@pytest.fixture(scope="module")
def gateway(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    """One instance over the fake as a Messages API server (bodies passed through), and a key with tpm."""
    folder = tmp_path_factory.mktemp("counted")
    listing = anthropic_upstream(fake, folder)
    keys = folder / "keys.txt"
    keys.write_text(f"{KEY} name=counted-{uuid.uuid4().hex[:6]} tpm={TPM}\n")
    running = ChatWaitServer(server_env("", UPSTREAMS_FILE=str(listing), CHATWAIT_API_KEYS_FILE=str(keys)))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def roomy(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    """The same with MAX_INPUT_TOKENS high enough for 20 long tools (to read the tpm counted)."""
    folder = tmp_path_factory.mktemp("roomy")
    keys = folder / "keys.txt"
    keys.write_text(f"{KEY} name=roomy-{uuid.uuid4().hex[:6]} tpm={TPM}\n")
    env = server_env(fake.base_url, CHATWAIT_API_KEYS_FILE=str(keys), MAX_INPUT_TOKENS="100000")
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _messages(server: ChatWaitServer, body: dict) -> httpx.Response:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    body = {"model": FAKE_MODEL, "max_tokens": 16, **body}
    return httpx.post(f"{server.url}/v1/messages", json=body, headers=headers, timeout=30)


def _turns(assistant: list[dict], user: list[dict] | str = "go on @tokens=2") -> list[dict]:
    return [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": user},
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": _turns([{"type": "thinking", "thinking": "x" * 900_000, "signature": "s"}, TEXT])},
        {"messages": _turns([{"type": "thinking", "thinking": "t", "signature": "s" * 900_000}, TEXT])},
        {"messages": _turns([{"type": "redacted_thinking", "data": "d" * 900_000}, TEXT])},
        {"messages": [{"role": "user", "content": "@tokens=2"}], "context_management": {"edits": ["e" * 900_000]}},
        {
            "messages": [
                {"role": "user", "content": "look"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [
                                {
                                    "type": "image",
                                    "source": {"type": "base64", "media_type": "image/png", "data": IMAGE},
                                }
                                for _ in range(3)
                            ],
                        }
                    ],
                },
            ]
        },
    ],
    ids=["thinking", "signature", "redacted_thinking", "context_management", "tool_result_images"],
)
def test_what_a_passed_through_body_holds_counts_toward_the_input_limit(gateway, body) -> None:
    refused = _messages(gateway, body)
    assert refused.status_code == 400, refused.text[:300]
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert "MAX_INPUT_TOKENS" in refused.text or "MAX_CONVERSATION_CHARS" in refused.text, refused.text[:300]


def test_a_passed_through_body_is_counted_whole_in_the_keys_tpm(gateway) -> None:
    thinking = " ".join(f"step{i}" for i in range(500))  # ~1,500 tokens the translation leaves out
    turns = _turns([{"type": "thinking", "thinking": thinking, "signature": "sig"}, {"type": "text", "text": "a"}])
    answer = _messages(gateway, {"messages": turns})
    assert answer.status_code == 200, answer.text[:300]
    used = TPM - int(answer.headers["x-ratelimit-remaining-tokens"])
    assert used >= 1000, f"the thinking block is counted: {used} tokens"


def _used(answer: httpx.Response) -> int:
    assert answer.status_code == 200, answer.text[:300]
    return TPM - int(answer.headers["x-ratelimit-remaining-tokens"])


@pytest.mark.parametrize("api", ["chat_completions", "responses", "messages"])
def test_tool_definitions_count_in_the_keys_tpm_on_every_api(roomy, api) -> None:
    message = f"{uuid.uuid4().hex} @tokens=2"
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=roomy.url, timeout=30, headers=auth) as client:
        before = _used(client.post("/v1/chat/wait", json={"message": "@tokens=1"}))
        if api == "chat_completions":
            body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}], "tools": TOOLS}
            answer = client.post("/v1/chat/completions", json={**body, "max_tokens": 16})
        elif api == "responses":
            tools = [{"type": "function", **t["function"]} for t in TOOLS]
            answer = client.post("/v1/responses", json={"model": FAKE_MODEL, "input": message, "tools": tools})
        else:
            body = {"model": FAKE_MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": message}]}
            answer = client.post("/v1/messages", json={**body, "tools": ANTHROPIC_TOOLS})
    counted = _used(answer) - before
    assert counted >= 8000, f"20 tools of ~450 tokens each are read by the model: {counted} counted"


@pytest.mark.parametrize("api", ["chat_completions", "messages"])
def test_tool_definitions_count_toward_max_input_tokens(gateway, api) -> None:
    message = f"{uuid.uuid4().hex} @tokens=2"
    auth = {"Authorization": f"Bearer {KEY}"}
    if api == "chat_completions":
        body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}], "tools": TOOLS}
        answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=auth, timeout=30)
    else:
        body = {"messages": [{"role": "user", "content": message}], "tools": ANTHROPIC_TOOLS}
        answer = _messages(gateway, body)
    assert answer.status_code == 400, answer.text
    assert "input_too_long" in answer.text or "context_length_exceeded" in answer.text, answer.text


def test_a_big_reservation_is_lowered_to_what_tpm_has_left_not_refused(fake, tmp_path) -> None:
    """MAX_TOKENS=32000 and tpm=20000: after a 23-token request, one asking for 32,000 tokens is
    answered, asking the upstream for no more than the key has left, instead of a 429 for a minute."""
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{KEY} name=lowered-{uuid.uuid4().hex[:6]} tpm=20000\n")
    server = ChatWaitServer(server_env(fake.base_url, CHATWAIT_API_KEYS_FILE=str(keys), MAX_TOKENS="32000"))
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as client:
            assert client.post("/v1/chat/wait", json={"message": "@tokens=3"}).status_code == 200
            asking = [{"role": "user", "content": "@reply=request"}]
            body = {"model": FAKE_MODEL, "max_tokens": 32000, "messages": asking}
            answer = client.post("/v1/chat/completions", json=body)
            assert answer.status_code == 200, answer.text
            asked = json.loads(answer.json()["choices"][0]["message"]["content"])
            assert 19_000 < asked["max_tokens"] < 20_000, asked["max_tokens"]
    finally:
        server.stop()


def _schema(properties: int) -> dict:
    """A structured-output JSON Schema of `properties` long-described string fields."""
    described = {f"field_{n}": {"type": "string", "description": f"word{n} " * 20} for n in range(properties)}
    return {"type": "object", "properties": described, "required": list(described), "additionalProperties": False}


def _with_schema(server: ChatWaitServer, api: str, schema: dict) -> httpx.Response:
    """A request of `api` whose reply must follow `schema` (structured output)."""
    message = [{"role": "user", "content": f"{uuid.uuid4().hex} @tokens=2"}]
    if api == "chat_completions":
        form = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        body, path = {"messages": message, "max_tokens": 16, "response_format": form}, "/v1/chat/completions"
    elif api == "responses":
        form = {"type": "json_schema", "name": "answer", "schema": schema}
        body, path = {"input": message[0]["content"], "text": {"format": form}}, "/v1/responses"
    else:
        form = {"type": "json_schema", "schema": schema}
        body, path = {"messages": message, "max_tokens": 16, "output_config": {"format": form}}, "/v1/messages"
    headers = {"Authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}
    return httpx.post(f"{server.url}{path}", json={"model": FAKE_MODEL, **body}, headers=headers, timeout=30)


NAMED = {"chat_completions": "response_format", "responses": "text", "messages": "output_config"}


@pytest.mark.parametrize("api", ["chat_completions", "responses", "messages"])
def test_a_huge_structured_output_schema_is_refused_naming_its_field(roomy, api) -> None:
    """The red team's 860 KB schema: past MAX_SCHEMA_CHARS, a 400 that names the field."""
    huge = _schema(4_000)
    assert len(json.dumps(huge)) > 800_000
    refused = _with_schema(roomy, api, huge)
    assert refused.status_code == 400, refused.text[:300]
    assert NAMED[api] in refused.text and "120000" in refused.text, refused.text[:500]


@pytest.mark.parametrize("api", ["chat_completions", "responses", "messages"])
def test_a_structured_output_schema_counts_in_the_keys_tpm_and_the_input_limit(roomy, gateway, api) -> None:
    """A schema under the bound is input the model reads: counted in tpm (as tools are) and
    toward MAX_INPUT_TOKENS."""
    with httpx.Client(base_url=roomy.url, timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as client:
        before = _used(client.post("/v1/chat/wait", json={"message": "@tokens=1"}))
    counted = _used(_with_schema(roomy, api, _schema(200))) - before
    assert counted >= 4000, f"a schema of ~45,000 characters is read by the model: {counted} counted"
    refused = _with_schema(gateway, api, _schema(200))
    assert refused.status_code == 400, refused.text[:300]
    assert "input_too_long" in refused.text or "context_length_exceeded" in refused.text, refused.text[:300]
