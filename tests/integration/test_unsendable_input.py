"""What cannot be sent upstream is a 400 in the family's shape, never a 500: an unpaired UTF-16
surrogate (`\\ud800`) anywhere in a body (image URLs, tool schemas, tool results, output schemas,
fields passed through as sent), and an `anthropic-beta` header that is not printable ASCII; over
an OpenAI-compatible server and over a Messages API server alike."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, anthropic_upstream, server_env

pytestmark = pytest.mark.integration

S = "\\ud800"  # as the client's JSON escapes it
CHAT = f'{{"model": "{FAKE_MODEL}", "messages": [{{"role": "user", "content": "hi"}}]'
MESSAGES = f'{{"model": "{FAKE_MODEL}", "max_tokens": 5'
TURN = '"messages": [{"role": "user", "content": "x"}]'
CASES = {
    "chat_image_url": (
        "/v1/chat/completions",
        f'{{"model": "{FAKE_MODEL}", "messages": [{{"role": "user", "content": [{{"type": "text", "text": "hi"}}, '
        f'{{"type": "image_url", "image_url": {{"url": "https://x.test/a{S}.png"}}}}]}}]}}',
    ),
    "chat_tool_schema": (
        "/v1/chat/completions",
        CHAT + ', "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", '
        f'"properties": {{"a{S}": {{"type": "string"}}}}}}}}}}]}}',
    ),
    "chat_output_schema": (
        "/v1/chat/completions",
        CHAT + f', "response_format": {{"type": "json_schema", "json_schema": {{"name": "n", "schema": '
        f'{{"type": "object", "description": "{S}"}}}}}}}}',
    ),
    "messages_tool_result": (
        "/v1/messages",
        MESSAGES + ', "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [{"type": '
        '"tool_use", "id": "t", "name": "f", "input": {}}]}, {"role": "user", "content": [{"type": "tool_result", '
        f'"tool_use_id": "t", "content": "r{S}"}}]}}]}}',
    ),
    "messages_image_url": (
        "/v1/messages",
        MESSAGES + ', "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", '
        f'"url": "https://x.test/{S}"}}}}]}}]}}',
    ),
    "messages_passed_through": ("/v1/messages", MESSAGES + f', {TURN}, "context_management": {{"a": "{S}"}}}}'),
    "messages_output_schema": (
        "/v1/messages",
        MESSAGES + f', {TURN}, "output_config": {{"format": {{"type": "json_schema", "schema": '
        f'{{"type": "object", "description": "{S}"}}}}}}}}',
    ),
    "responses_image": (
        "/v1/responses",
        f'{{"model": "{FAKE_MODEL}", "input": [{{"role": "user", "content": [{{"type": "input_image", '
        f'"image_url": "https://x.test/{S}"}}]}}]}}',
    ),
}


@pytest.fixture(scope="module", params=["openai", "anthropic"])
def gateway(request, fake: FakeUpstream, tmp_path_factory) -> Iterator[ChatWaitServer]:
    if request.param == "openai":
        running = ChatWaitServer(server_env(fake.base_url))
    else:
        listing = anthropic_upstream(fake, tmp_path_factory.mktemp("unsendable"))
        running = ChatWaitServer(server_env("", UPSTREAMS_FILE=str(listing)))
    yield running
    running.stop()


def _refused(answer: httpx.Response) -> str:
    assert answer.status_code == 400, answer.text[:300]
    assert "Traceback" not in answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error["message"]


@pytest.mark.parametrize("case", list(CASES))
def test_an_unpaired_surrogate_anywhere_is_a_400_naming_it(gateway, case) -> None:
    path, body = CASES[case]
    answer = httpx.post(f"{gateway.url}{path}", content=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert "unpaired UTF-16 surrogate" in _refused(answer)


def test_an_anthropic_beta_header_that_is_not_ascii_is_a_400(gateway) -> None:
    headers = {"Content-Type": "application/json", "anthropic-beta": "caf\xe9".encode("latin-1")}
    answer = httpx.post(f"{gateway.url}/v1/messages", content=MESSAGES + f", {TURN}}}", headers=headers, timeout=30)
    assert "anthropic-beta" in _refused(answer)
