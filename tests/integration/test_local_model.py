"""The embedded model, for real (no mocks): ChatWait with no upstream configured answers with
SmolLM2-135M-Instruct through llama.cpp, in both modes, with stop, resume and queueing."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.processes import ChatWaitServer

from ..conformance import conform
from ..sse import Event, content_of, iter_events, parse

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # CPU-bound: run alone (scripts/test)

MODEL = "SmolLM2-135M-Instruct.Q4_1"
LONG_PROMPT = "Write a long story about a dragon who learns to bake bread, with many details."


@pytest.fixture(scope="module")
def local_server():
    """ChatWait with no OPENAI_* variables: LLM_PROVIDER=auto picks the embedded model."""
    running = ChatWaitServer(
        {"KEEPALIVE_SECONDS": "0.3", "LOCAL_CONTEXT_TOKENS": "1024", "LOCAL_ABANDON_SECONDS": "0.5"}
    )
    yield running
    running.stop()


@pytest.fixture
def local(local_server):
    with httpx.Client(base_url=local_server.url, timeout=120) as client:
        yield client


def _long(max_tokens: int) -> dict:
    """A request whose reply (greedy, so the same every time) runs past `max_tokens`."""
    return {"message": LONG_PROMPT, "max_tokens": max_tokens, "temperature": 0}


def _chunks(events: list[Event]) -> list[Event]:
    return [e for e in events if e.event == "chunk"]


def _until_chunks(events: Iterator[Event], count: int) -> list[Event]:
    """Read events until `count` chunks have arrived; returns every event read."""
    seen: list[Event] = []
    while len(_chunks(seen)) < count:
        seen.append(next(events))
    return seen


def test_ready_says_local_provider_and_model(local, local_server) -> None:
    ready = local.get("/ready").json()
    assert ready["provider"] == "local" and ready["model"] == MODEL
    assert ready["allowed_models"] == [MODEL] and ready["context_tokens"] == 1024
    assert ready["failing"] == []
    assert ready["checks"]["model"] == {"ok": True, "detail": f"{MODEL} is loaded (1 instance)."}
    conform("Ready", ready)  # the contract describes the local provider's fields too
    started = [r for r in local_server.log_records() if r.get("event") == "service_started"]
    assert started and started[0]["provider"] == "local" and started[0]["model"] == MODEL


def test_wait_answers_with_generated_text(local) -> None:
    response = local.post("/v1/chat/wait", json={"message": "What is 2+2?"})
    assert response.status_code == 200
    body = response.json()
    assert body["content"].strip()
    assert body["model"] == MODEL
    assert body["finish_reason"] in ("stop", "length")
    assert body["usage"]["prompt_tokens"] > 5 and body["usage"]["completion_tokens"] > 0


def test_streaming_yields_many_contiguous_chunks_and_done_with_usage(local) -> None:
    response = local.post("/v1/chat/streaming", json={"message": "What is 2+2?", "max_tokens": 60})
    events, _ = parse(response.content)
    chunks = _chunks(events)
    assert len(chunks) >= 3, "token by token, not one blob"
    assert [c.data["sequence"] for c in chunks] == list(range(1, len(chunks) + 1))
    done = events[-1]
    assert done.event == "done"
    assert done.data["usage"]["completion_tokens"] >= len(chunks) - 2
    assert done.data["usage"]["prompt_tokens"] > 5
    assert done.data["content_length"] == len(content_of(events)) > 0


def test_max_tokens_and_temperature_are_honoured(local) -> None:
    short = local.post("/v1/chat/wait", json=_long(5)).json()
    assert short["finish_reason"] == "length"
    assert short["usage"]["completion_tokens"] <= 6
    greedy = [
        local.post("/v1/chat/wait", json={"message": "Name a colour.", "temperature": 0, "max_tokens": 12}).json()
        for _ in range(2)
    ]
    assert greedy[0]["content"] == greedy[1]["content"], "temperature 0 is deterministic"


def test_history_and_system_reach_the_model(local) -> None:
    def prompt_tokens(**fields) -> int:
        body = {"message": "And mine?", "max_tokens": 2, **fields}
        return local.post("/v1/chat/wait", json=body).json()["usage"]["prompt_tokens"]

    bare = prompt_tokens()
    history = [
        {"role": "user", "content": "My name is Ada. What is your name?"},
        {"role": "assistant", "content": "I am a small model."},
    ]
    # Usage comes from the model's own template and tokenizer: the two turns add their words
    # and their role markers; a long system prompt replaces the template's default one.
    assert prompt_tokens(history=history) >= bare + 18
    assert prompt_tokens(system="Answer like a pirate. " * 20) >= bare + 60


def test_input_check_uses_the_model_context(local) -> None:
    response = local.post("/v1/chat/wait", json={"message": "word " * 1500})
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "input_too_long"
    assert "the limit is 1008" in body["detail"]  # LOCAL_CONTEXT_TOKENS=1024 minus room for a reply


def test_stop_mid_generation(local, local_server) -> None:
    with local.stream("POST", "/v1/chat/streaming", json=_long(400)) as response:
        stream_id = response.headers["x-stream-id"]
        events = iter_events(response)
        _until_chunks(events, 5)
        stop = local.delete(f"/v1/chat/streaming/{stream_id}").json()
        rest = [e for e in events if e.event != ":comment"]
    assert stop["status"] == "cancelled"
    done = rest[-1]
    assert done.event == "done" and done.data["finish_reason"] == "cancelled"
    # Stopped within one token: at most the token in flight follows the last one appended when
    # the DELETE arrived.
    requested = next(
        r for r in local_server.log_records() if r.get("event") == "stop_requested" and r.get("stream_id") == stream_id
    )
    assert done.data["last_sequence"] <= requested["last_event_id"] + 1
    assert done.data["usage"]["completion_tokens"] < 400
    after = local.post("/v1/chat/wait", json={"message": "Hi", "max_tokens": 3})
    assert after.status_code == 200, "the model instance was released"


def test_resume_mid_generation_and_client_drop_does_not_stop_it(local) -> None:
    with local.stream("POST", "/v1/chat/streaming", json=_long(80)) as response:
        stream_id = response.headers["x-stream-id"]
        first = _until_chunks(iter_events(response), 4)
    with local.stream("GET", f"/v1/chat/streaming/{stream_id}", headers={"Last-Event-ID": str(first[-1].id)}) as again:
        rest = [e for e in iter_events(again) if e.event != ":comment"]
    assert rest[-1].event == "done" and rest[-1].data["finish_reason"] in ("stop", "length")
    replay, _ = parse(local.get(f"/v1/chat/streaming/{stream_id}").content)
    assert content_of(first + rest) == content_of(replay)
    ids = [e.id for e in first + rest if e.event != ":comment"]  # a keepalive may come between chunks
    assert ids == list(range(len(ids)))


def test_health_answers_while_the_model_generates(local) -> None:
    answers = []
    with local.stream("POST", "/v1/chat/streaming", json=_long(200)) as response:
        events = iter_events(response)
        seen = _until_chunks(events, 3)
        for _ in range(5):
            answers.append(local.get("/health").status_code)
        more = _until_chunks(events, 3)  # generation is still running after /health answered
        local.delete(f"/v1/chat/streaming/{response.headers['x-stream-id']}")
    assert answers == [200] * 5
    assert _chunks(more)[0].data["sequence"] > _chunks(seen)[-1].data["sequence"]


def test_concurrent_streams_all_complete_and_a_queued_one_is_primed_at_once(local_server) -> None:
    primed = threading.Event()

    def one(index: int) -> tuple[list[Event], bytes]:
        with httpx.Client(base_url=local_server.url, timeout=120) as client:
            # A reply that runs to max_tokens (a count may stop after a dozen tokens): the stream that
            # waits in line waits for a whole one, several KEEPALIVE_SECONDS (0.3 s).
            body = {"message": f"Write a long story about cat number {index}, with many details.", "max_tokens": 80}
            with client.stream("POST", "/v1/chat/streaming", json=body) as response:
                raw = b""
                events = []
                for data in response.iter_raw():
                    raw += data
                    if not events and b"event: stream" in raw:
                        primed.set()
                    events = parse(raw)[0]
                return events, raw

    with ThreadPoolExecutor(max_workers=3) as pool:
        started = time.monotonic()
        futures = [pool.submit(one, i) for i in range(3)]
        assert primed.wait(5), "every stream gets its priming event at once, queued or not"
        results = [f.result() for f in futures]
    assert time.monotonic() - started < 120
    for events, _ in results:
        assert events[0].event == "stream" and events[-1].event == "done"
        assert _chunks(events)
    # One model instance: the streams were served one after another, so the ones that waited
    # in line saw keepalive comments before their first token.
    assert any(raw.split(b"event: chunk")[0].count(b": keepalive") >= 1 for _, raw in results)


def test_waiting_replies_hear_their_place_and_an_abandoned_one_gives_way(local, local_server) -> None:
    """One instance: A generates, B and C wait and are told 1 and 2 ahead. A's client leaves:
    A is cancelled (others wait), B starts, C moves up; A's partial reply stays resumable."""
    endless = {"message": LONG_PROMPT, "max_tokens": 500, "temperature": 2}  # sampled wildly: no early end
    heard: dict[str, list[Event]] = {"B": [], "C": []}

    def follow(name: str) -> None:
        with httpx.Client(base_url=local_server.url, timeout=120) as client:
            body = {"message": "Say hi.", "max_tokens": 8}
            with client.stream("POST", "/v1/chat/streaming", json=body) as response:
                heard[name].extend(iter_events(response))

    def places(name: str) -> list[int]:
        return [e.data["ahead"] for e in heard[name] if e.event == "queued"]

    def until(check, what: str) -> None:
        deadline = time.monotonic() + 60
        while not check():
            assert time.monotonic() < deadline, what
            time.sleep(0.02)

    with local.stream("POST", "/v1/chat/streaming", json=endless) as first:
        a_id = first.headers["x-stream-id"]
        _until_chunks(iter_events(first), 2)
        b = threading.Thread(target=follow, args=("B",))
        b.start()
        until(lambda: places("B") == [1], "B is told one reply is ahead")
        c = threading.Thread(target=follow, args=("C",))
        c.start()
        until(lambda: places("C") == [2], "C is told two replies are ahead")
    # A's client left: while B and C wait, A gives way after LOCAL_ABANDON_SECONDS.
    b.join(120)
    c.join(120)
    for name, expected in (("B", [1]), ("C", [2, 1])):
        events = [e for e in heard[name] if e.event != ":comment"]
        assert places(name) == expected
        assert events[0].event == "stream" and [e.event for e in events[1 : len(expected) + 1]] == ["queued"] * len(
            expected
        ), "the place comes after the priming event, before any text"
        assert events[-1].event == "done" and _chunks(events)
        assert [e.id for e in events if e.event != "queued"] == list(range(len(events) - len(expected)))
    replay, _ = parse(local.get(f"/v1/chat/streaming/{a_id}").content)
    assert replay[-1].event == "done" and replay[-1].data["finish_reason"] == "cancelled"
    assert len(_chunks(replay)) >= 2 and not [e for e in replay if e.event == "queued"], "never replayed"
    abandoned = [r for r in local_server.log_records() if r.get("event") == "stream_abandoned"]
    assert [r["stream_id"] for r in abandoned] == [a_id]


def test_the_openai_sdk_works_against_the_embedded_model(local_server, request) -> None:
    """The README's first OpenAI example, as it is, then a stream with its options."""
    import openai

    client = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused", max_retries=0, timeout=120)
    request.addfinalizer(client.close)
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "What is 2+2?"}])
    assert reply.choices[0].message.content.strip() and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5 and reply.model_extra["usage_source"] == "upstream", "the model's own count"
    assert [model.id for model in client.models.list()] == [MODEL]
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": LONG_PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=12,
        temperature=0,
        seed=1,
        top_p=0.9,
        stop=["\n\n\n"],
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text.strip() and chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage.completion_tokens > 0


def test_the_responses_api_works_against_the_embedded_model(local_server, request) -> None:
    """A response in the background, streamed and resumed part-way, then one chained to it."""
    import openai

    client = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused", max_retries=0, timeout=120)
    request.addfinalizer(client.close)
    stream = client.responses.create(model=MODEL, input=LONG_PROMPT, max_output_tokens=16, background=True, stream=True)
    received = []
    for event in stream:
        received.append(event)
        if event.type == "response.output_text.delta":
            break  # the client drops after the first piece of text
    stream.close()
    rest = list(
        client.responses.retrieve(received[0].response.id, stream=True, starting_after=received[-1].sequence_number)
    )
    events = received + rest
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert text.strip() and final.output_text == text and final.status == "incomplete"  # 16 tokens: cut short
    chained = client.responses.create(model=MODEL, input="Say it shorter.", previous_response_id=final.id)
    assert chained.status in ("completed", "incomplete") and chained.output_text.strip()
    assert chained.usage.input_tokens > final.usage.input_tokens, "the earlier turn reached the model"
    counted = client.responses.input_tokens.count(model=MODEL, input="Say it shorter.", previous_response_id=final.id)
    assert counted.input_tokens == chained.usage.input_tokens, "counted as the generation counts them"


FORECAST = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "sunny": {"type": "boolean"},
        "kind": {"enum": ["rain", "snow", "sun"]},
    },
    "required": ["city", "days", "sunny", "kind"],
    "additionalProperties": False,
}


def test_structured_output_always_parses_and_validates(local_server, request) -> None:
    import json

    import jsonschema
    import openai

    sdk = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused", max_retries=0, timeout=120)
    request.addfinalizer(sdk.close)
    form = {"type": "json_schema", "json_schema": {"name": "forecast", "schema": FORECAST, "strict": True}}
    cities = ["Paris", "Lima", "Oslo", "Kyoto", "Accra"]
    for number in range(20):
        messages = [{"role": "user", "content": f"The weather in {cities[number % 5]} for {number + 1} days, as JSON."}]
        reply = sdk.chat.completions.create(
            model=MODEL, messages=messages, response_format=form, max_tokens=96, temperature=1.0, seed=number,
            stream=number % 2 == 1,
        )  # fmt: skip
        text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices) if number % 2 else (
            reply.choices[0].message.content
        )  # fmt: skip
        jsonschema.validate(json.loads(text), FORECAST)


def test_a_forced_tool_call_comes_whole_and_what_it_cannot_do_is_refused(local_server, request) -> None:
    import json

    import openai

    sdk = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused", max_retries=0, timeout=120)
    request.addfinalizer(sdk.close)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": FORECAST}}
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = sdk.chat.completions.create(model=MODEL, messages=messages, tools=[tool], tool_choice="required")
    (call,) = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == set(FORECAST["required"])
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [image]}])
    assert refused.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=MODEL, messages=messages, logprobs=True)
    assert refused.value.body["param"] == "logprobs"
    responses_tool = {"type": "function", "name": "get_weather", "parameters": FORECAST}
    forced = sdk.responses.create(
        model=MODEL,
        input="Weather in Paris?",
        tools=[responses_tool],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    (item,) = forced.output
    assert item.type == "function_call" and set(json.loads(item.arguments)) == set(FORECAST["required"])


# Forced calls the range-and-enum test makes (CHATWAIT_FORCED_CALLS=50 for the measure).
FORCED_CALLS = int(os.environ.get("CHATWAIT_FORCED_CALLS", "8"))


def test_forced_arguments_keep_to_the_schemas_ranges_enums_and_lengths(local_server, request) -> None:
    import jsonschema
    import openai

    sdk = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused", max_retries=0, timeout=120)
    request.addfinalizer(sdk.close)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": FORECAST}}
    for n in range(FORCED_CALLS):
        asked = [{"role": "user", "content": f"Forecast {n}: somewhere, some days."}]
        reply = sdk.chat.completions.create(
            model=MODEL, messages=asked, tools=[tool], tool_choice="required", temperature=1.0
        )
        (call,) = reply.choices[0].message.tool_calls
        jsonschema.validate(json.loads(call.function.arguments), FORECAST)


WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                               "required": ["city"]}}}  # fmt: skip


def test_an_agent_loop_calls_gets_the_result_back_and_answers_on_every_api(local_server, request) -> None:
    """tool_choice auto, as every agent loop sends it: a call, its result sent back in the API's
    own shape (an assistant's null content beside its tool_calls included), then a text answer."""
    import anthropic
    import openai

    sdk = openai.OpenAI(base_url=f"{local_server.url}/v1", api_key="unused", max_retries=0, timeout=120)
    claude = anthropic.Anthropic(base_url=local_server.url, api_key="unused", max_retries=0, timeout=120)
    request.addfinalizer(sdk.close)
    request.addfinalizer(claude.close)
    asked = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = sdk.chat.completions.create(model=MODEL, messages=asked, tools=[WEATHER_TOOL], tool_choice="auto")
    (call,) = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    turn = {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]}
    result = {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"}
    final = sdk.chat.completions.create(
        model=MODEL, messages=[*asked, turn, result], tools=[WEATHER_TOOL], max_tokens=30
    )
    assert final.choices[0].finish_reason in ("stop", "length") and final.choices[0].message.content

    tool = {"type": "function", **WEATHER_TOOL["function"]}
    called = sdk.responses.create(model=MODEL, input="What is the weather in Paris?", tools=[tool])
    (item,) = called.output
    assert item.type == "function_call" and "city" in json.loads(item.arguments)
    back = {"type": "function_call_output", "call_id": item.call_id, "output": "Sunny, 21 C"}
    answered = sdk.responses.create(
        model=MODEL, previous_response_id=called.id, input=[back], tools=[tool], max_output_tokens=30
    )
    assert answered.status in ("completed", "incomplete") and answered.output_text

    claude_tool = {"name": "get_weather", "description": "The weather in a city.",
                   "input_schema": WEATHER_TOOL["function"]["parameters"]}  # fmt: skip
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    used = claude.messages.create(model=MODEL, max_tokens=100, tools=[claude_tool], messages=question)
    (block,) = [b for b in used.content if b.type == "tool_use"]
    assert used.stop_reason == "tool_use" and "city" in block.input
    outcome = {"type": "tool_result", "tool_use_id": block.id, "content": "Sunny, 21 C"}
    turns = [*question, {"role": "assistant", "content": used.content}, {"role": "user", "content": [outcome]}]
    said = claude.messages.create(model=MODEL, max_tokens=30, tools=[claude_tool], messages=turns)
    assert said.stop_reason in ("end_turn", "max_tokens") and said.content[0].type == "text"
