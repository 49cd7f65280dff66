"""Chat completions and the Responses API over a server that speaks Anthropic's Messages API
(`kind = "anthropic"` in UPSTREAMS_FILE), as the `openai` SDK uses them: the request translated
into Anthropic's (system prompt, turns, tools, tool results, reasoning effort), its events back
into each family's stream; the key as `x-api-key`; what the Messages API cannot do refused with
a reason. The fake upstream plays the Messages API server (`harness/fake_anthropic.py`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from harness.fake_replies import ARG_PIECE
from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, UPSTREAM_KEY, anthropic_upstream, server_env
from ..sse import expected_reply

pytestmark = pytest.mark.integration

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up.",
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
        },
    }
]


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatWaitServer]:
    # Translated at the version that takes sampling (the newest's rules: test_model_rules).
    listing = anthropic_upstream(fake, tmp_path_factory.mktemp("claude"), anthropic_version="2023-06-01")
    running = ChatWaitServer(server_env("", UPSTREAMS_FILE=str(listing), MAX_TOKENS="20000"))
    yield running
    running.stop()


@pytest.fixture
def sdk(server: ChatWaitServer, request: pytest.FixtureRequest) -> openai.OpenAI:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30)
    request.addfinalizer(client.close)
    return client


def _unique(directives: str) -> str:
    return f"{uuid.uuid4().hex} {directives}"


def _sent(fake: FakeUpstream, message: str) -> dict:
    """The Messages API body the upstream got for the request whose last user text is `message`."""
    (outcome,) = fake.outcomes_for(message)
    assert outcome["api"] == "messages" and outcome["headers"]["x-api-key"] == UPSTREAM_KEY
    return outcome["body"]


def test_a_chat_completion_is_sent_as_a_messages_request(sdk, fake) -> None:
    message = _unique("@tokens=5")
    reply = sdk.chat.completions.create(
        model=FAKE_MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": message},
        ],
        max_tokens=60,
        temperature=1.5,
        stop=["END"],
        user="user-7",
        reasoning_effort="medium",
    )
    assert reply.choices[0].message.content == expected_reply(5) and reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 5 and reply.usage.prompt_tokens > 0
    sent = _sent(fake, message)
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 60 and sent["stream"] is True
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]},
        {"role": "user", "content": [{"type": "text", "text": message}]},
    ]
    assert sent["stop_sequences"] == ["END"] and sent["metadata"] == {"user_id": "user-7"}
    assert "thinking" not in sent, "a budget under Anthropic's least (1,024 tokens) is no thinking"
    assert sent["temperature"] == 1.0, "Anthropic's range is 0 to 1"


def test_reasoning_effort_asks_for_a_thinking_budget(sdk, fake) -> None:
    message = _unique("@tokens=2 @reasoning=2")
    stream = sdk.chat.completions.create(
        model=FAKE_MODEL,
        messages=[{"role": "user", "content": message}],
        max_tokens=8000,
        reasoning_effort="medium",
        temperature=0.3,
        stream=True,
    )
    reasoning = text = ""
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            reasoning += getattr(delta, "reasoning_content", None) or ""
            text += delta.content or ""
    assert reasoning == "think0 think1 " and text == expected_reply(2)
    sent = _sent(fake, message)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert "temperature" not in sent, "thinking takes the default temperature only"


def test_a_tool_round_trip_through_a_messages_server(sdk, fake) -> None:
    question = _unique("@argpieces=6")
    turns = [{"role": "user", "content": question}]
    stream = sdk.chat.completions.create(model=FAKE_MODEL, messages=turns, tools=TOOLS, stream=True)
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for piece in choice.delta.tool_calls or ():
                call = calls.setdefault(piece.index, {"id": piece.id, "name": None, "arguments": ""})
                call["name"] = piece.function.name or call["name"]
                call["arguments"] += piece.function.arguments or ""
    assert finish == "tool_calls" and list(calls) == [0]
    call = calls[0]
    assert call["name"] == "lookup" and json.loads(call["arguments"]) == {"text": "x" * (ARG_PIECE * 6 - 12)}
    sent = fake.outcomes_for(question)[0]["body"]
    assert sent["tools"] == [
        {
            "name": "lookup",
            "description": "Look a word up.",
            "input_schema": TOOLS[0]["function"]["parameters"],
        }
    ]
    assert sent["tool_choice"] == {"type": "auto"}
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": "lookup", "arguments": call["arguments"]}}
        ],
    }
    result = {"role": "tool", "tool_call_id": call["id"], "content": "a greeting"}
    answered = sdk.chat.completions.create(
        model=FAKE_MODEL, messages=[*turns, assistant, result], tools=TOOLS, tool_choice="required"
    )
    assert answered.choices[0].message.content == "The tool said: a greeting"
    _, after = fake.outcomes_for(question)
    assert after["body"]["tool_choice"] == {"type": "any"}
    turns_sent = after["body"]["messages"]
    assert turns_sent[-2]["content"] == [
        {"type": "tool_use", "id": call["id"], "name": "lookup", "input": json.loads(call["arguments"])}
    ]
    assert turns_sent[-1] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "a greeting"}],
    }


def test_the_responses_api_over_a_messages_server(sdk, fake) -> None:
    message = _unique("@tokens=6")
    response = sdk.responses.create(model=FAKE_MODEL, input=message, instructions="Be brief.")
    assert response.status == "completed" and response.output_text == expected_reply(6)
    assert _sent(fake, message)["system"] == "Be brief."
    streamed = _unique("@tokens=4")
    with sdk.responses.stream(model=FAKE_MODEL, input=streamed) as events:
        text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
        final = events.get_final_response()
    assert text == expected_reply(4) == final.output_text and final.usage.output_tokens == 4


def test_what_the_messages_api_cannot_do_is_refused_with_a_reason(sdk) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        sdk.chat.completions.create(
            model=FAKE_MODEL, messages=[{"role": "user", "content": _unique("@tokens=2")}], logprobs=True
        )
    error = refused.value.body
    assert refused.value.status_code == 502 and error["code"] == "upstream_rejected"
    assert "logprobs" in error["message"] and "Messages API" in error["message"]


def test_ready_checks_a_messages_api_server_and_names_its_api(server) -> None:
    """/ready's check of the server (GET /models) passes, names the API it speaks, shows no key."""
    ready = httpx.get(f"{server.url}/ready", timeout=10)
    (listed,) = ready.json()["servers"]
    assert ready.status_code == 200 and listed["kind"] == "anthropic" and listed["ok"] is True
    assert UPSTREAM_KEY not in ready.text


def test_llm_provider_anthropic_alone_reaches_a_messages_server_and_says_so(fake: FakeUpstream) -> None:
    """Issue 82: LLM_PROVIDER=anthropic with ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL (as the SDK
    takes it, without /v1) is the whole set-up; the start-up line and /ready name `anthropic`."""
    env = server_env("", LLM_PROVIDER="anthropic", ANTHROPIC_API_KEY=UPSTREAM_KEY, ANTHROPIC_BASE_URL=fake.url)
    running = ChatWaitServer(env)
    try:
        message = _unique("@tokens=3")
        asked = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}]}
        answer = httpx.post(f"{running.url}/v1/chat/completions", json=asked, timeout=30)
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"], answer.text
        assert _sent(fake, message)["model"] == FAKE_MODEL, "a Messages API request with the key"
        ready = httpx.get(f"{running.url}/ready", timeout=10).json()
        assert ready["provider"] == "anthropic" and ready["servers"][0]["url"].startswith(fake.url), ready
        started = [line for line in running.log_records() if line.get("event") == "service_started"]
        assert started and started[0]["provider"] == "anthropic"
    finally:
        running.stop()
