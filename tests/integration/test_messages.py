"""Anthropic's Messages API through ChatWait, as the `anthropic` SDK uses it: plain, system and
multi-turn messages, an image, a stream (text and the final message), a tool-use round trip,
count_tokens and errors as the SDK's exception classes; a stream resumed after a drop. Each over
the fake upstream twice: as chat completions (translated), and as a server that speaks the
Messages API itself (`kind = "anthropic"`: the client's body passed through as it is)."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from harness.fake_replies import ARG_PIECE
from harness.processes import ChatWaitServer, FakeUpstream
from harness.proxy import CuttingProxy

from ..conftest import FAKE_MODEL, UPSTREAM_KEY, anthropic_upstream, server_env
from ..sse import expected_reply, parse
from .test_scale_out import _worker_of

pytestmark = pytest.mark.integration

CLIENTS = Path(__file__).resolve().parents[2] / "docs" / "clients.md"

PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()
TOOLS = [
    {
        "name": "lookup",
        "description": "Look a word up.",
        "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
    }
]


@pytest.fixture(scope="module", params=["chat", "messages"])
def upstream(request: pytest.FixtureRequest) -> str:
    """The API the fake upstream is spoken to in: chat completions, or the Messages API."""
    return request.param


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    if upstream == "chat":
        env = server_env(fake.base_url)
    else:
        env = server_env("", UPSTREAMS_FILE=str(anthropic_upstream(fake, tmp_path_factory.mktemp("claude"))))
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _sent(fake: FakeUpstream, message: str) -> dict:
    """The body a Messages API upstream got for the request whose last user text is `message`."""
    (outcome,) = fake.outcomes_for(message)
    assert outcome["api"] == "messages" and outcome["headers"]["x-api-key"] == UPSTREAM_KEY
    assert outcome["headers"]["anthropic-version"] == "2026-10-21", "the client's (the SDK's), else the server's"
    return outcome["body"]


@pytest.fixture
def sdk(server: ChatWaitServer, request: pytest.FixtureRequest) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    request.addfinalizer(client.close)
    return client


def _unique(directives: str) -> str:
    return f"{uuid.uuid4().hex} {directives}"


def test_a_plain_message(sdk) -> None:
    message = _unique("@tokens=6")
    reply = sdk.messages.create(model=FAKE_MODEL, max_tokens=100, messages=[{"role": "user", "content": message}])
    assert reply.type == "message" and reply.role == "assistant" and reply.id.startswith("msg_")
    assert [block.type for block in reply.content] == ["text"]
    assert reply.content[0].text == expected_reply(6)
    assert reply.stop_reason == "end_turn" and reply.model == FAKE_MODEL
    assert reply.usage.output_tokens > 0 and reply.usage.input_tokens > 0


def _asked(reply: anthropic.types.Message) -> dict:
    """What the fake was sent, as it says with @reply=request."""
    return json.loads(reply.content[0].text)


def test_a_system_prompt_and_earlier_turns_reach_the_model(sdk, fake, upstream) -> None:
    message = _unique("@reply=request")
    system = [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}},
    ]
    turns = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]},
        {"role": "user", "content": [{"type": "text", "text": message}]},
    ]
    reply = sdk.messages.create(
        model=FAKE_MODEL,
        max_tokens=50,
        system=system,
        messages=turns,
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
    )
    if upstream == "messages":  # passed through as it came, its cache marks too; the cache's part counted
        sent = _sent(fake, message)
        assert sent == {
            "model": FAKE_MODEL,
            "max_tokens": 50,
            "stream": True,
            "system": system,
            "messages": turns,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "user-7"},
        }
        assert (reply.usage.cache_read_input_tokens, reply.usage.cache_creation_input_tokens) == (7, 5)
        return
    asked = _asked(reply)
    marked = {"type": "text", "text": "Be kind.", "prompt_cache_breakpoint": {"mode": "explicit"}}
    assert asked["messages"] == [  # where a prefix to cache ends, as an OpenAI-compatible server takes it
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}, marked]},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": message},
    ]
    assert asked["stop"] == ["END"] and asked["user"] == "user-7"


def test_an_image_is_sent_on_as_an_image_part(sdk, fake, upstream) -> None:
    message = _unique("@reply=request")
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}
    reply = sdk.messages.create(
        model=FAKE_MODEL,
        max_tokens=50,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": message}]}],
    )
    if upstream == "messages":
        assert _sent(fake, message)["messages"][0]["content"][0] == image
        return
    parts = _asked(reply)["messages"][-1]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}", "detail": "auto"}}
    assert parts[1] == {"type": "text", "text": message}


def test_a_stream_gives_the_text_and_the_final_message(sdk) -> None:
    message = _unique("@tokens=12")
    with sdk.messages.stream(model=FAKE_MODEL, max_tokens=100, messages=[{"role": "user", "content": message}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == expected_reply(12) == final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_a_tool_use_round_trip(sdk) -> None:
    question = [{"role": "user", "content": _unique("look up 'hello'")}]
    asked = sdk.messages.create(model=FAKE_MODEL, max_tokens=100, tools=TOOLS, messages=question)
    assert asked.stop_reason == "tool_use"
    (call,) = [block for block in asked.content if block.type == "tool_use"]
    assert call.name == "lookup" and isinstance(call.input, dict) and "word" in call.input
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "a greeting"}
    turns = [*question, {"role": "assistant", "content": asked.content}, {"role": "user", "content": [result]}]
    answered = sdk.messages.create(model=FAKE_MODEL, max_tokens=100, tools=TOOLS, messages=turns)
    assert answered.stop_reason == "end_turn"
    assert answered.content[0].text == "The tool said: a greeting"


def test_a_streamed_tool_call_arrives_whole(sdk) -> None:
    question = [{"role": "user", "content": _unique("@argpieces=8")}]
    with sdk.messages.stream(model=FAKE_MODEL, max_tokens=100, tools=TOOLS, messages=question) as s:
        final = s.get_final_message()
    (call,) = [block for block in final.content if block.type == "tool_use"]
    assert call.input == {"text": "x" * (ARG_PIECE * 8 - 12)}, "never input: {}"
    assert final.stop_reason == "tool_use"


def test_count_tokens(sdk) -> None:
    counted = sdk.messages.count_tokens(model=FAKE_MODEL, messages=[{"role": "user", "content": "Hello there"}])
    more = sdk.messages.count_tokens(
        model=FAKE_MODEL, tools=TOOLS, messages=[{"role": "user", "content": "Hello there"}]
    )
    assert 0 < counted.input_tokens < more.input_tokens, "the tools' definitions are read too"


def test_errors_are_the_sdks_exception_classes(sdk, server) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        sdk.messages.create(model=FAKE_MODEL, max_tokens=0, messages=[{"role": "user", "content": "x"}])
    assert bad.value.body["error"]["type"] == "invalid_request_error" and "max_tokens" in bad.value.message
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    missing = httpx.get(f"{server.url}/v1/messages/streams/nope")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    down = sdk.messages.with_raw_response
    with pytest.raises(anthropic.OverloadedError) as failed:  # the model servers busy: Anthropic's 529
        down.create(model=FAKE_MODEL, max_tokens=5, messages=[{"role": "user", "content": _unique("@fault=503")}])
    assert failed.value.status_code == 529 and failed.value.body["error"]["type"] == "overloaded_error"


def _events_until(response: httpx.Response, marker: bytes, count: int) -> list:
    """The whole events a stream sent until `marker` had come `count` times (the client then drops it)."""
    head = b""
    for data in response.iter_raw():
        head += data
        if head.count(marker) >= count:
            break
    return [e for e in parse(head.rpartition(b"\n\n")[0] + b"\n\n")[0] if e.event != ":comment"]


def test_a_dropped_stream_resumes_after_its_last_event(server) -> None:
    body = {"model": FAKE_MODEL, "max_tokens": 200, "stream": True, "messages": [{"role": "user", "content": ""}]}
    body["messages"][0]["content"] = _unique("@tokens=30 @delay_ms=5")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", "/v1/messages", json=body) as response:
            stream_id = response.headers["x-stream-id"]
            seen = _events_until(response, b"content_block_delta", 5)
        rest = client.get(f"/v1/messages/streams/{stream_id}", headers={"Last-Event-ID": str(seen[-1].id)})
    events = seen + [e for e in parse(rest.content)[0] if e.event != ":comment"]
    ids = sorted({e.id for e in events})
    assert ids == list(range(len(ids))), "no event id missing or skipped"
    text = "".join(e.data["delta"]["text"] for e in events if e.event == "content_block_delta")
    assert text == expected_reply(30)
    assert [e.event for e in events][-2:] == ["message_delta", "message_stop"]


def test_a_tool_call_cut_mid_input_and_resumed_on_another_worker_arrives_whole(fake, redis_server) -> None:
    """Two workers on Redis: a streamed tool call dropped in the middle of its input and resumed
    on a new connection (either worker) is reassembled by the SDK exactly as the uncut one."""
    env = server_env(fake.base_url, STREAM_STORE="redis", REDIS_URL=redis_server.url, WEB_CONCURRENCY="2")
    server = ChatWaitServer(env)
    try:
        body = {
            "model": FAKE_MODEL,
            "max_tokens": 500,
            "stream": True,
            "tools": TOOLS,
            "messages": [{"role": "user", "content": _unique("@argpieces=120 @delay_ms=5")}],
        }
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=server.url, timeout=30, limits=fresh) as client:
            started = {"X-Correlation-Id": f"tool-{uuid.uuid4().hex[:8]}"}
            with client.stream("POST", "/v1/messages", json=body, headers=started) as response:
                stream_id = response.headers["x-stream-id"]
                seen = _events_until(response, b"input_json_delta", 20)
            for attempt in range(40):  # until a resume lands on the other worker
                resumed = {
                    "Last-Event-ID": str(seen[-1].id),
                    "X-Correlation-Id": f"{started['X-Correlation-Id']}-{attempt}",
                }
                rest = client.get(f"/v1/messages/streams/{stream_id}", headers=resumed)
                if _worker_of(server, resumed["X-Correlation-Id"]) != _worker_of(server, started["X-Correlation-Id"]):
                    break
            else:
                raise AssertionError("no resume reached the other worker")
        events = seen + [e for e in parse(rest.content)[0] if e.event != ":comment"]
        assert [e.event for e in events if e.event == "content_block_start"] == ["content_block_start"]
        pieces = "".join(e.data["delta"]["partial_json"] for e in events if e.event == "content_block_delta")
        assert json.loads(pieces) == {"text": "x" * (ARG_PIECE * 120 - 12)}, "never input: {}"
        assert [e.data["delta"]["stop_reason"] for e in events if e.event == "message_delta"] == ["tool_use"]
    finally:
        server.stop()


def test_a_stopped_stream_ends_with_its_usage(server) -> None:
    body = {"model": FAKE_MODEL, "max_tokens": 500, "stream": True, "messages": [{"role": "user", "content": ""}]}
    body["messages"][0]["content"] = _unique("@tokens=400 @delay_ms=10")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", "/v1/messages", json=body) as response:
            stream_id = response.headers["x-stream-id"]
            for data in response.iter_raw():
                if b"content_block_delta" in data:
                    break
        stopped = client.delete(f"/v1/messages/streams/msg_{stream_id}").json()
        assert stopped["status"] == "cancelled" and stopped["type"] == "message_stream"
        events = [e for e in parse(client.get(f"/v1/messages/streams/{stream_id}").content)[0] if e.event != ":comment"]
    assert [e.event for e in events][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    final = events[-2].data
    assert final["delta"]["stop_reason"] == "end_turn" and final["usage"]["output_tokens"] > 0
    assert len([e for e in events if e.event == "content_block_delta"]) < 400


def _clients_helper() -> dict:
    """The resuming helper exactly as docs/clients.md shows it, run as a user would paste it."""
    blocks = re.findall(r"```python\n(.*?)```", CLIENTS.read_text(encoding="utf-8"), re.DOTALL)
    source = next(block for block in blocks if "def resumable_events" in block)
    namespace: dict = {}
    exec(compile(source.split("\nclient = ")[0], "docs/clients.md", "exec"), namespace)  # the helper, not its usage
    return namespace


@pytest.mark.parametrize("cut_after", [700, 1500, 2600, 4100])
def test_the_clients_helper_resumes_the_sdks_stream_after_a_cut(server, cut_after, request) -> None:
    """Cut at different points (inside an event that opens a block too): every event once."""
    proxy = CuttingProxy(server.port)
    try:
        client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=30)
        request.addfinalizer(client.close)
        resumable_events = _clients_helper()["resumable_events"]
        proxy.cut_next_stream(after_bytes=cut_after)
        message = _unique("@tokens=40 @delay_ms=10 @reasoning=5")
        events = list(
            resumable_events(client, model=FAKE_MODEL, max_tokens=300, messages=[{"role": "user", "content": message}])
        )
        client.close()
        assert proxy.cuts == 1, "the connection was cut once, and the helper carried on"
        kinds = [event.type for event in events]
        assert kinds.count("message_start") == kinds.count("message_stop") == 1
        assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 2
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
        thinking = "".join(
            e.delta.thinking for e in events if e.type == "content_block_delta" and e.delta.type == "thinking_delta"
        )
        assert text == expected_reply(40) and thinking == "".join(f"think{i} " for i in range(5))
    finally:
        proxy.close()


def test_what_claude_code_sends_is_taken(sdk, fake, upstream) -> None:
    """A system message between turns, output_config's effort, context_management, and a
    max_tokens above MAX_TOKENS (lowered to it); its beta features go on with its body."""
    message = _unique("@reply=request")
    beta = {"anthropic-beta": "context-management-2025-06-27"}
    reply = sdk.with_options(timeout=30).messages.create(  # the SDK wants a stream for 32,000 tokens otherwise
        model=FAKE_MODEL,
        max_tokens=32000,
        messages=[
            {"role": "user", "content": "Hello"},
            {"role": "system", "content": [{"type": "text", "text": "Agents: none."}]},
            {"role": "user", "content": message},
        ],
        thinking={"type": "adaptive"},
        extra_body={"output_config": {"effort": "max"}, "context_management": {"edits": []}},
        extra_headers=beta,
    )
    if upstream == "messages":
        sent = _sent(fake, message)
        assert [m["role"] for m in sent["messages"]] == ["user", "system", "user"]
        assert sent["output_config"] == {"effort": "max"} and sent["context_management"] == {"edits": []}
        assert sent["thinking"] == {"type": "adaptive"} and sent["max_tokens"] == 1024
        assert fake.outcomes_for(message)[0]["headers"]["anthropic-beta"] == beta["anthropic-beta"]
        return
    asked = _asked(reply)
    assert [m["role"] for m in asked["messages"]] == ["user", "system", "user"]
    assert asked["messages"][1]["content"] == "Agents: none."
    assert asked["reasoning_effort"] == "xhigh" and asked["max_tokens"] == 1024


def test_the_client_key_comes_as_x_api_key(fake, request) -> None:
    key = "k-" + uuid.uuid4().hex
    server = ChatWaitServer(server_env(fake.base_url, CHATWAIT_API_KEYS=key))
    try:
        with anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0) as sdk:
            reply = sdk.messages.create(
                model=FAKE_MODEL, max_tokens=20, messages=[{"role": "user", "content": "@tokens=2"}]
            )
            assert reply.content[0].text == expected_reply(2)
        wrong = anthropic.Anthropic(base_url=server.url, api_key="k-" + "0" * 32, max_retries=0)
        request.addfinalizer(wrong.close)
        with wrong, pytest.raises(anthropic.AuthenticationError) as refused:
            wrong.messages.create(model=FAKE_MODEL, max_tokens=20, messages=[{"role": "user", "content": "x"}])
        assert refused.value.body["error"]["type"] == "authentication_error"
    finally:
        server.stop()


def test_thinking_comes_back_sealed_with_its_signature(sdk, upstream) -> None:
    """Over a Messages API server a thinking block keeps the signature that seals it (Claude Code
    sends it back with the next turn), waited for or streamed; over chat completions there is none."""
    message = _unique("@tokens=4 @reasoning=3")
    whole = sdk.messages.create(model=FAKE_MODEL, max_tokens=100, messages=[{"role": "user", "content": message}])
    with sdk.messages.stream(model=FAKE_MODEL, max_tokens=100, messages=[{"role": "user", "content": message}]) as s:
        streamed = s.get_final_message()
    for reply in (whole, streamed):
        thinking, text = reply.content
        assert thinking.type == "thinking" and thinking.thinking == "think0 think1 think2 "
        assert thinking.signature == ("sig-fake-0" if upstream == "messages" else "")
        assert text.text == expected_reply(4)


def test_a_reply_cut_mid_answer_over_a_messages_server_is_continued_whole(fake, tmp_path) -> None:
    """A Messages API server's reply cut after 10 tokens: the continuation (translated, with the
    delivered text) completes it, and the client's stream never shows the seam."""
    listing = anthropic_upstream(fake, tmp_path)
    server = ChatWaitServer(server_env("", UPSTREAMS_FILE=str(listing), UPSTREAM_RESCUES="1"))
    try:
        message = _unique("@tokens=30 @delay_ms=5 @fault=reset@10 @fail_times=1")
        with anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0) as sdk:
            turns = [{"role": "user", "content": message}]
            with sdk.messages.stream(model=FAKE_MODEL, max_tokens=200, messages=turns) as s:
                text = "".join(s.text_stream)
                final = s.get_final_message()
        assert text == expected_reply(30) and final.stop_reason == "end_turn"
        first, again = fake.outcomes_for(message)
        assert first["how"] == "reset" and again["api"] == "messages" and again["continued_from"] == 8
        assert again["body"]["messages"][-2] == {
            "role": "assistant",
            "content": [{"type": "text", "text": expected_reply(10)}],
        }
    finally:
        server.stop()


def test_a_silent_stream_is_kept_alive_with_ping_events(sdk, server) -> None:
    """While the model is silent mid-answer the stream carries Anthropic's `ping` events
    (KEEPALIVE_SECONDS is 0.5 here), which the SDK passes over."""
    message = _unique("@delay_ms=900 @tokens=3")
    body = {"model": FAKE_MODEL, "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": message}]}
    raw = httpx.post(f"{server.url}/v1/messages", json=body, timeout=30).content
    assert raw.count(b'event: ping\ndata: {"type":"ping"}\n\n') >= 2 and b": keepalive" not in raw
    with sdk.messages.stream(model=FAKE_MODEL, max_tokens=50, messages=[{"role": "user", "content": message}]) as s:
        assert "".join(s.text_stream) == expected_reply(3)


def test_structured_output_follows_the_schema(sdk, fake, upstream) -> None:
    """`output_config.format`: the reply's text is JSON of the schema, over either upstream (a
    chat completions server is asked for a json_schema response format)."""
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    }
    message = _unique("plan a trip")
    reply = sdk.messages.create(
        model=FAKE_MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": message}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    assert json.loads(reply.content[0].text) == {"city": "fake", "days": 1}
    if upstream == "messages":
        assert _sent(fake, message)["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_the_stop_sequence_that_ended_a_reply_is_named(sdk, upstream) -> None:
    """A Messages API server says which stop sequence ended the reply, and so does ChatWait,
    waited for or streamed; a chat completions server cannot say (`end_turn`)."""
    turns = [{"role": "user", "content": _unique("@tokens=3 @stopped_by=END")}]
    whole = sdk.messages.create(model=FAKE_MODEL, max_tokens=50, messages=turns, stop_sequences=["END"])
    with sdk.messages.stream(model=FAKE_MODEL, max_tokens=50, messages=turns, stop_sequences=["END"]) as s:
        streamed = s.get_final_message()
    said = ("stop_sequence", "END") if upstream == "messages" else ("end_turn", None)
    for reply in (whole, streamed):
        assert (reply.stop_reason, reply.stop_sequence) == said and reply.content[0].text == expected_reply(3)


def test_the_newest_clients_fields_are_taken_passed_through_and_named(sdk, fake, upstream) -> None:
    """Claude Code's deferred tools and thinking display, the Vercel AI SDK's eager input
    streaming, fields of anthropic's newest types, and a reply's tool_use block sent back as the
    SDK dumps it: never a 400; sent on to a Messages API server, named either way."""
    tools = [{**TOOLS[0], "defer_loading": True, "eager_input_streaming": True, "allowed_callers": ["direct"]}]
    question = [{"role": "user", "content": _unique("look up 'hello'")}]
    newest = {"thinking": {"type": "adaptive", "display": "summarized"}, "speed": "fast", "inference_geo": "us"}
    first = sdk.messages.with_raw_response.create(
        model=FAKE_MODEL, max_tokens=100, tools=tools, messages=question, extra_body=newest
    )
    named = {"tools[].defer_loading", "tools[].eager_input_streaming", "tools[].allowed_callers", "thinking.display"}
    assert set(first.headers["x-chatwait-unknown-fields"].split(", ")) == {*named, "speed", "inference_geo"}
    asked = first.parse()
    (call,) = [block.model_dump() for block in asked.content if block.type == "tool_use"]
    dumped = {**call, "caller": {"type": "direct"}, "toolset_name": None}  # as anthropic 2.14's types dump it
    result = {"type": "tool_result", "tool_use_id": call["id"], "content": "a greeting"}
    turns = [*question, {"role": "assistant", "content": [dumped]}, {"role": "user", "content": [result]}]
    answered = sdk.messages.with_raw_response.create(model=FAKE_MODEL, max_tokens=100, tools=tools, messages=turns)
    assert answered.parse().content[0].text == "The tool said: a greeting"
    assert "messages[].content[].caller" in answered.headers["x-chatwait-unknown-fields"]
    if upstream == "messages":
        sent, again = [outcome["body"] for outcome in fake.outcomes_for(question[0]["content"])]
        assert again["messages"][1]["content"][0]["caller"] == {"type": "direct"}
        assert sent["tools"][0]["defer_loading"] is True and sent["tools"][0]["eager_input_streaming"] is True
        assert sent["thinking"] == newest["thinking"] and sent["speed"] == "fast", "the body as sent, all of it"


def test_a_server_tool_is_left_out_and_named_and_a_messages_server_gets_it(sdk, fake, upstream) -> None:
    """Anthropic's own tools (web search) run on its servers: a Messages API server gets the body
    as sent; translated for a chat completions server, the tool is left out and named."""
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    question = [{"role": "user", "content": _unique("look up 'hello'")}]
    raw = sdk.messages.with_raw_response.create(model=FAKE_MODEL, max_tokens=100, tools=[*TOOLS, search],
                                               messages=question)  # fmt: skip
    assert raw.headers["x-chatwait-unknown-fields"] == "tools[].web_search_20250305"
    assert [block.type for block in raw.parse().content] == ["tool_use"], "the client tool still called"
    if upstream == "messages":
        (sent,) = [outcome["body"] for outcome in fake.outcomes_for(question[0]["content"])]
        assert sent["tools"][1] == search, "the body as sent"


def test_a_server_tool_without_a_name_is_a_400_naming_it(sdk) -> None:
    """Anthropic's API names every tool; a server tool without a name is malformed, not unknown."""
    question = [{"role": "user", "content": "hello"}]
    for search in ({"type": "web_search_20250305"}, {"type": "web_search_20250305", "name": "no spaces"}):
        with pytest.raises(anthropic.BadRequestError) as refused:
            sdk.messages.create(model=FAKE_MODEL, max_tokens=50, tools=[search], messages=question)
        assert "tools" in refused.value.message and "name" in refused.value.message


def test_a_choice_of_a_server_tool_is_left_out_with_it(sdk, upstream) -> None:
    search = {"type": "web_search_20250305", "name": "web_search"}
    question = [{"role": "user", "content": _unique("hello")}]
    for choice in ({"type": "tool", "name": "web_search"}, {"type": "any"}):
        raw = sdk.messages.with_raw_response.create(
            model=FAKE_MODEL, max_tokens=50, tools=[search], tool_choice=choice, messages=question
        )
        assert raw.http_response.status_code == 200, "the model chooses (auto): it answers in text"
        named = set(raw.headers["x-chatwait-unknown-fields"].split(", "))
        assert named == {"tools[].web_search_20250305", "tool_choice"}
