"""Tools, structured output, images and reasoning through chat completions, with the `openai`
SDK against the fake upstream scripted to call tools (harness/fake_replies.py), on both stream
stores (Redis: two workers, so a resume may land on the other one)."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pydantic
import pytest

from harness.proxy import CuttingProxy

from ..conftest import FAKE_MODEL
from ..sse import iter_events, parse

pytestmark = [pytest.mark.integration, pytest.mark.both_stores]  # each test that uses `server`: on both stores

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
QUIRKS = ("noindex", "reuse_index", "empty_name", "finish_every", "whole_args", "noid", "dict_args")


class Answer(pydantic.BaseModel):
    city: str
    days: int
    sunny: bool


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_a_streamed_tool_call_arrives_whole_through_the_sdk_stream_helper(sdk: openai.OpenAI) -> None:
    with sdk.chat.completions.stream(model=FAKE_MODEL, messages=ask("Weather? @delay_ms=5"), tools=[WEATHER]) as s:
        deltas = [event for event in s if event.type == "tool_calls.function.arguments.delta"]
        final = s.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and len(deltas) > 3, "the arguments came in pieces"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id == "call_fake0" and call.type == "function"
    assert json.loads(call.function.arguments) == {"city": "fake", "days": 1}


def test_a_tool_call_and_its_result_make_a_conversation(sdk: openai.OpenAI) -> None:
    first = sdk.chat.completions.create(model=FAKE_MODEL, messages=ask("Weather?"), tools=[WEATHER, TIME])
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and message.content is None
    assert [c.function.name for c in message.tool_calls] == ["get_weather"]
    history = [*ask("Weather?"), message.model_dump(exclude_none=True)]
    history.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny, 21 C"})
    answer = sdk.chat.completions.create(model=FAKE_MODEL, messages=history, tools=[WEATHER, TIME])
    assert answer.choices[0].message.content == "The tool said: sunny, 21 C"
    forced = sdk.chat.completions.create(
        model=FAKE_MODEL, messages=ask("@tool_calls=2"), tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )  # fmt: skip
    assert [c.function.name for c in forced.choices[0].message.tool_calls] == ["get_time", "get_time"]


@pytest.mark.parametrize("quirk", QUIRKS)
def test_each_upstream_quirk_still_gives_one_well_formed_call_per_tool_call(sdk: openai.OpenAI, quirk: str) -> None:
    text = f"Two calls @tool_calls=2 @quirk={quirk}"
    chunks = list(sdk.chat.completions.create(model=FAKE_MODEL, messages=ask(text), tools=[WEATHER], stream=True))
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for piece in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(piece.index, {"id": piece.id, "name": piece.function.name, "arguments": ""})
            assert piece.id is None or piece.id == call["id"], "a call's id never changes"
            assert piece.function.name is None or call["arguments"] == "", "the name comes first, once"
            call["arguments"] += piece.function.arguments or ""
    assert sorted(calls) == [0, 1], "two calls, numbered 0 and 1"
    assert len({call["id"] for call in calls.values()}) == 2 and all(c["id"] for c in calls.values())
    assert all(c["name"] == "get_weather" and json.loads(c["arguments"]) == {"city": "fake", "days": 1}
               for c in calls.values())  # fmt: skip
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] == "tool_calls" and finishes.count("tool_calls") == 1, "one finish_reason, at the end"


def test_parse_with_a_pydantic_model_gets_a_valid_object(sdk: openai.OpenAI) -> None:
    parsed = sdk.chat.completions.parse(model=FAKE_MODEL, messages=ask("Forecast"), response_format=Answer)
    assert parsed.choices[0].message.parsed == Answer(city="fake", days=1, sunny=True)
    with sdk.chat.completions.stream(model=FAKE_MODEL, messages=ask("Forecast"), response_format=Answer) as s:
        assert s.get_final_completion().choices[0].message.parsed == Answer(city="fake", days=1, sunny=True)


def test_an_image_part_reaches_the_upstream_as_sent(sdk: openai.OpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    content = [{"type": "text", "text": "What is it? @reply=request"}, image]
    reply = sdk.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": content}])
    sent = json.loads(reply.choices[0].message.content)
    assert sent["messages"] == [{"role": "user", "content": content}]


def test_reasoning_deltas_stream_before_the_text(sdk: openai.OpenAI) -> None:
    chunks = list(sdk.chat.completions.create(model=FAKE_MODEL, messages=ask("@reasoning=3 @tokens=2"), stream=True))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks[1:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks[1:-1])
    assert reasoning == "think0 think1 think2 " and text == "tok0 tok1 "
    whole = sdk.chat.completions.create(model=FAKE_MODEL, messages=ask("@reasoning=2 @tokens=1"))
    assert whole.choices[0].message.model_extra["reasoning_content"] == "think0 think1 "


def test_a_tool_call_cut_mid_arguments_resumes_exactly(http: httpx.Client) -> None:
    body = {"model": FAKE_MODEL, "messages": ask("@tool_calls=2 @reasoning=2 @delay_ms=10"), "tools": [WEATHER],
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        stream_id = response.headers["x-stream-id"]
        live = iter_events(response)
        head = [next(live) for _ in range(6)]  # priming, reasoning, a call's start, pieces of its arguments
    whole = http.get(f"/v1/chat/completions/{stream_id}/stream")
    assert whole.content.startswith(b"retry: 2000\nid: 0\n")
    for cut in (1, 3, 5, 9):  # after the reasoning, the call's start, mid-arguments, in the second call
        rest = http.get(f"/v1/chat/completions/{stream_id}/stream", headers={"Last-Event-ID": str(cut)}).content
        assert rest.startswith(b"retry: 2000\nid: %d\n" % (cut + 1))
        assert whole.content.endswith(rest.removeprefix(b"retry: 2000\n")), "byte for byte the rest of the replay"
    events, _ = parse(whole.content)
    assert [(e.id, e.data) for e in head] == [(e.id, e.data) for e in events[:6]], "what the client saw is the replay"
    assert events[3].data["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_what_chatwait_cannot_carry_is_refused_by_name(http: httpx.Client) -> None:
    hosted = {"model": FAKE_MODEL, "messages": ask("hi"), "tools": [{"type": "web_search"}]}
    refused = http.post("/v1/chat/completions", json=hosted)
    assert refused.status_code == 400 and refused.json()["error"]["param"].startswith("tools")
    named = {"type": "function", "function": {"name": "x"}}
    orphan = {"model": FAKE_MODEL, "messages": ask("hi"), "tool_choice": named}
    assert http.post("/v1/chat/completions", json=orphan).json()["error"]["param"] == "tool_choice"
    tool_without_id = {"model": FAKE_MODEL, "messages": [*ask("hi"), {"role": "tool", "content": "x"}]}
    refused = http.post("/v1/chat/completions", json=tool_without_id)
    assert refused.json()["error"]["param"] == "messages[1].tool_call_id"


def test_the_agent_of_docs_clients_md_runs_its_tool_through_a_cut_mid_arguments(server) -> None:
    from .test_openai_resume import CLIENTS, readme_helper

    blocks = re.findall(r"```python\n(.*?)```", CLIENTS.read_text(encoding="utf-8"), re.DOTALL)
    source = next(block for block in blocks if "def run_agent" in block)
    namespace = readme_helper()
    exec(compile(source.split("\nweather = ")[0], "docs/clients.md", "exec"), namespace)  # the agent, not its usage
    proxy = CuttingProxy(server.port)
    try:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
        proxy.cut_next_stream(after_bytes=900)  # inside the tool call's arguments
        weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}  # fmt: skip
        asked = [{"role": "user", "content": "Weather in Oslo? @delay_ms=20 @reasoning=2"}]
        functions = {"get_weather": lambda city: {"city": city, "sky": "clear"}}
        answer = namespace["run_agent"](client, [weather], functions, asked, model=FAKE_MODEL)
        assert proxy.cuts == 1, "the first turn was cut, and the agent carried on"
        assert answer == 'The tool said: {"city": "fake", "sky": "clear"}'
    finally:
        proxy.close()


def test_a_long_tool_call_replayed_from_the_store_equals_what_was_sent_live(http: httpx.Client) -> None:
    """Past the last 64 frames a stream keeps encoded, a replay re-writes each piece from its
    stored form: the bytes must be those the client got live (memory), or those the owner wrote
    (Redis, on whichever worker answers)."""
    body = {"model": FAKE_MODEL, "messages": ask("@tool_calls=2 @argpieces=90 @reasoning=3"), "tools": [WEATHER],
            "stream": True}  # fmt: skip
    live = http.post("/v1/chat/completions", json=body)
    stream_id = live.headers["x-stream-id"]
    replay = http.get(f"/v1/chat/completions/{stream_id}/stream")
    assert replay.content == live.content and live.content.count(b'"arguments":') == 2 * 91
    rest = http.get(f"/v1/chat/completions/{stream_id}/stream", headers={"Last-Event-ID": "2"}).content
    assert live.content.endswith(rest.removeprefix(b"retry: 2000\n"))


def test_tool_choice_none_beside_tools_reaches_the_upstream(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(
        model=FAKE_MODEL, messages=ask("@reply=request"), tools=[WEATHER], tool_choice="none"
    )
    sent = json.loads(reply.choices[0].message.content)
    assert sent["tool_choice"] == "none" and sent["tools"] == [WEATHER], "no call, as the client asked"
    alone = json.loads(sdk.chat.completions.create(model=FAKE_MODEL, messages=ask("@reply=request"),
                                                   tool_choice="none").choices[0].message.content)  # fmt: skip
    assert "tool_choice" not in alone and "tools" not in alone


def test_logprobs_come_with_their_text_streamed_or_not_and_resume_with_it(sdk: openai.OpenAI, http) -> None:
    asked = {"model": FAKE_MODEL, "messages": ask("@tokens=4"), "logprobs": True, "top_logprobs": 2}
    chunks = list(sdk.chat.completions.create(**asked, stream=True))
    texts = [c.choices[0].delta.content for c in chunks[1:-1]]
    entries = [c.choices[0].logprobs.content for c in chunks[1:-1]]
    assert texts == ["tok0 ", "tok1 ", "tok2 ", "tok3 "] and [e[0].token for e in entries] == texts
    assert [e[0].logprob for e in entries] == [0.0, -0.1, -0.2, -0.3]
    assert all([t.token for t in e[0].top_logprobs] == ["alt0", "alt1"] for e in entries)
    whole = sdk.chat.completions.create(**asked)
    assert [e.token for e in whole.choices[0].logprobs.content] == texts and whole.choices[
        0
    ].message.content == "".join(texts)
    plain = sdk.chat.completions.create(model=FAKE_MODEL, messages=ask("@tokens=2"))
    assert plain.choices[0].logprobs is None
    live = http.post("/v1/chat/completions", json={**asked, "stream": True})
    stream_id = live.headers["x-stream-id"]
    rest = http.get(f"/v1/chat/completions/{stream_id}/stream", headers={"Last-Event-ID": "2"}).content
    assert (
        live.content.endswith(rest.removeprefix(b"retry: 2000\n"))
        and b'"logprobs":{"content":[{"token":"tok2 "' in rest
    )
    refused = http.post("/v1/chat/completions", json={"model": FAKE_MODEL, "messages": ask("hi"), "top_logprobs": 2})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "top_logprobs"
