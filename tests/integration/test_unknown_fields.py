"""The tolerant contract: a field ChatWait does not know is never a 400 on the OpenAI and Anthropic
families. The fields today's SDKs publish (openai-python's and anthropic's types) are taken: passed
on as sent to a server of the same API, left out elsewhere, and named in the
X-ChatWait-Unknown-Fields header, an `unknown_fields` log line (names, never values) and a metric.
What ChatWait reads stays strict; UNKNOWN_FIELDS=refuse brings the 400 back; the native API
refuses them always."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env

pytestmark = pytest.mark.integration

HEADER = "x-chatwait-unknown-fields"
SECRET = "value-never-logged-7f3a"
# Chat completions fields of openai-python's types that ChatWait does not know, as a client sends them.
CHAT_FIELDS = {
    "prompt_cache_retention": "24h",
    "prediction": {"type": "content", "content": SECRET},
    "moderation": {"policy": SECRET},
    "prompt_cache_options": {"mode": "auto"},
    "web_search_options": {},
}
# The Responses API's: Codex CLI's client_metadata, and the newest function tools' fields.
RESPONSES_FIELDS = {
    "client_metadata": {"session": SECRET},
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {"mode": "auto"},
    "moderation": {"policy": "default"},
}
FUNCTION_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
    "defer_loading": True,
    "allowed_callers": ["direct"],
    "output_schema": {"type": "object"},
}


def _unique(directives: str) -> str:
    return f"{uuid.uuid4().hex} {directives}"


def _named(response: httpx.Response) -> set[str]:
    return set(response.headers[HEADER].split(", "))


def test_chat_completions_takes_the_newest_fields_and_passes_them_on(
    server: ChatWaitServer, http: httpx.Client
) -> None:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": _unique("@reply=request")}], **CHAT_FIELDS}
    answer = http.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert _named(answer) == set(CHAT_FIELDS)
    sent = json.loads(answer.json()["choices"][0]["message"]["content"])  # what the fake was sent
    assert {name: sent[name] for name in CHAT_FIELDS} == CHAT_FIELDS, "a server of the same API gets them as sent"
    tool = {"type": "function", "function": {"name": "look", "parameters": {"type": "object"}, "defer_loading": True}}
    called = http.post("/v1/chat/completions", json={**body, "tools": [tool], "messages": [{"role": "user",
                       "content": _unique("@tool_calls=1")}]})  # fmt: skip
    assert called.status_code == 200 and called.json()["choices"][0]["finish_reason"] == "tool_calls"
    assert _named(called) == {*CHAT_FIELDS, "tools[].function.defer_loading"}
    echoed = http.post("/v1/chat/completions", json={**body, "tools": [tool], "tool_choice": "none"})
    assert json.loads(echoed.json()["choices"][0]["message"]["content"])["tools"] == [tool], "the tools as sent"
    lines = [r for r in server.log_records() if r.get("event") == "request_completed"]
    line = next(r for r in lines if "tools[].function.defer_loading" in r.get("unknown_fields", ()))
    assert line["unknown_count"] == 6 and SECRET not in json.dumps(line), "named on its completion line"
    assert not [r for r in server.log_records() if r.get("event") == "unknown_fields"], "not a line of their own"
    assert SECRET not in server.log_text()
    metrics = http.get("/metrics").text
    assert 'chatwait_unknown_fields_total{api="chat_completions",field="prediction"}' in metrics


def test_a_field_chatwait_reads_is_still_checked_beside_unknown_ones(http: httpx.Client) -> None:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": "hot", **CHAT_FIELDS}
    refused = http.post("/v1/chat/completions", json=body)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "temperature"
    assert "prediction" not in refused.text
    n = http.post("/v1/chat/completions", json={**body, "temperature": 1, "n": 2})
    assert n.status_code == 400 and n.json()["error"]["param"] == "n", "a known field that asks for more: refused"


def test_the_responses_api_takes_codex_and_the_newest_tools_fields_and_leaves_them_out(server: ChatWaitServer) -> None:
    message = _unique("@reply=request")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30) as sdk:
        raw = sdk.responses.with_raw_response.create(model=FAKE_MODEL, input=message, extra_body=RESPONSES_FIELDS)
        assert _named(raw.http_response) == set(RESPONSES_FIELDS)
        sent = json.loads(raw.parse().output_text)  # what the fake was sent
        assert not set(RESPONSES_FIELDS) & set(sent), "a chat completions server is not sent the Responses API's"
        called = sdk.responses.with_raw_response.create(model=FAKE_MODEL, input=_unique("@tool_calls=1"),
                                                        tools=[FUNCTION_TOOL])  # fmt: skip
    nested = {"tools[].defer_loading", "tools[].allowed_callers", "tools[].output_schema"}
    assert _named(called.http_response) == nested
    assert [item.type for item in called.parse().output] == ["function_call"]


def test_no_unknown_field_no_header(http: httpx.Client) -> None:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    answer = http.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200 and HEADER not in answer.headers


def test_unknown_fields_refuse_brings_the_400_back_and_the_native_api_always_refuses(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    native = http.post("/v1/chat/wait", json={"message": "hi", "prediction": {}})
    assert native.status_code == 400 and "prediction" in native.json()["fields"]
    strict = ChatWaitServer(server_env(fake.base_url, UNKNOWN_FIELDS="refuse"))
    try:
        with httpx.Client(base_url=strict.url, timeout=30) as client:
            asked = {"model": FAKE_MODEL, "prediction": {}, "messages": [{"role": "user", "content": "hi"}]}
            chat = client.post("/v1/chat/completions", json=asked)
            assert chat.status_code == 400 and chat.json()["error"]["param"] == "prediction"
            responses = client.post("/v1/responses", json={"model": FAKE_MODEL, "input": "hi", "client_metadata": {}})
            assert responses.status_code == 400 and "client_metadata" in responses.text
            assert HEADER not in chat.headers
    finally:
        strict.stop()


@pytest.mark.parametrize("name", ["bad name", "x" * 65, "é"])
def test_a_name_that_is_not_an_identifier_is_named_other(http: httpx.Client, name: str) -> None:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}], name: 1}
    answer = http.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200 and answer.headers[HEADER] == "other"
