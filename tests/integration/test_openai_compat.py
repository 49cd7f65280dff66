"""The OpenAI-compatible endpoints with the real `openai` SDK against a live ChatWait: replies and
streams as the SDK parses them, the options it sends, what ChatWait refuses, errors, models."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from ..conformance import conform
from ..conftest import CANARY_KEY, FAKE_MODEL
from ..sse import expected_reply, parse

pytestmark = pytest.mark.integration


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_a_completion_as_the_sdk_parses_it(sdk: openai.OpenAI, http: httpx.Client) -> None:
    completion = sdk.chat.completions.create(model=FAKE_MODEL, messages=user("Hi @tokens=5"))
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == FAKE_MODEL and len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected_reply(5)
    assert choice.finish_reason == "stop" and choice.index == 0
    assert completion.usage.completion_tokens == 5
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 5
    assert completion.model_extra["usage_source"] == "upstream"
    assert completion._request_id  # X-Request-Id: the correlation id
    raw = http.post("/v1/chat/completions", json={"model": FAKE_MODEL, "messages": user("@tokens=2")})
    conform("Completion", raw.json())
    assert raw.headers["x-request-id"] == raw.headers["x-correlation-id"]


def test_a_streamed_completion_as_the_sdk_parses_it(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model=FAKE_MODEL, messages=user("@tokens=8"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    stream_id = stream.response.headers["x-stream-id"]
    assert {chunk.id for chunk in chunks} == {f"chatcmpl-{stream_id}"}
    first, *texts, finish, usage = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert "".join(chunk.choices[0].delta.content for chunk in texts) == expected_reply(8)
    assert finish.choices[0].finish_reason == "stop" and not finish.choices[0].delta.content
    assert usage.choices == [] and usage.usage.completion_tokens == 8
    assert usage.model_extra["usage_source"] == "upstream"


def test_every_event_has_an_id_and_the_ending_shares_the_last(http: httpx.Client) -> None:
    body = {"model": FAKE_MODEL, "messages": user("@tokens=3"), "stream": True}
    response = http.post("/v1/chat/completions", json=body | {"stream_options": {"include_usage": True}})
    assert response.content.startswith(b"retry: 2000\nid: 0\ndata: "), "retry rides in the first event's block"
    events, _ = parse(response.content)
    assert [event.id for event in events] == [0, 1, 2, 3, 4, 4, 4]
    assert all(event.event == "message" for event in events), "no event names: OpenAI's stream has none"
    assert events[-1].data == "[DONE]"
    for event in events[:-1]:
        conform("CompletionChunk", event.data)


def test_a_stream_without_usage_asked_ends_with_the_finish_chunk_and_done(http: httpx.Client) -> None:
    body = {"model": FAKE_MODEL, "messages": user("@tokens=2"), "stream": True}
    response = http.post("/v1/chat/completions", json=body)
    events, _ = parse(response.content)
    assert events[-2].data["choices"][0]["finish_reason"] == "stop" and "usage" not in events[-2].data
    assert events[-1].data == "[DONE]"


def test_keepalives_during_silence_do_not_break_the_sdk(sdk: openai.OpenAI) -> None:
    """KEEPALIVE_SECONDS is 0.5 in the test server: keepalives flow between the first chunk and
    the first token. As blocks of their own, the SDK would read each as an empty event and fail."""
    stream = sdk.chat.completions.create(model=FAKE_MODEL, messages=user("@tokens=2 @first_ms=1600"), stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == expected_reply(2)


def test_messages_and_options_reach_the_upstream_as_openai_names_them(sdk: openai.OpenAI) -> None:
    """The fake answers @reply=request with the JSON of the request it received."""
    completion = sdk.chat.completions.create(
        model="other-model",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "ok", "refusal": None},
            {"role": "user", "content": "@reply=request", "name": "ada"},
        ],
        max_completion_tokens=40,
        max_tokens=50,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        seed=7,
        user="user-1",
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        n=1,
        tools=None,
        response_format={"type": "text"},
    )
    sent = json.loads(completion.choices[0].message.content)
    assert sent["model"] == "other-model" and sent["max_tokens"] == 40, "with both, the smaller counts"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "part one\ntwo"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "@reply=request", "name": "ada"},
    ]
    expected = {"temperature": 0.5, "top_p": 0.9, "stop": ["END"], "seed": 7, "user": "user-1"}
    assert {key: sent[key] for key in expected} == expected
    assert (sent["presence_penalty"], sent["frequency_penalty"]) == (0.5, -0.5)
    assert "n" not in sent and "tools" not in sent and "response_format" not in sent, "what asks for nothing stays"


@pytest.mark.parametrize(
    "extra,param,words",
    [
        ({"tools": [{"type": "web_search"}]}, "tools", "only function tools"),
        ({"tools": [{"type": "function", "function": {"name": "no spaces"}}]}, "tools", "letters, digits"),
        ({"tool_choice": "required"}, "tool_choice", "only allowed with tools"),
        ({"n": 2}, "n", "one choice"),
        ({"response_format": {"type": "xml"}}, "response_format", "json_schema"),
        ({"top_logprobs": 2}, "top_logprobs", "with logprobs true"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "stream is true"),
        ({"max_tokens": 10**9}, "max_tokens", "between 1 and 100000000"),  # over any model's: more is lowered
        ({"temperature": 3}, "temperature", "2"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "1 to 4"),
        ({"model": "gpt-9"}, "model", "does not exist"),
        ({"messages": []}, "messages", "1 to"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", "needs the tool_call_id"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]},
            "messages[0].content",
            "data:image/png;base64",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0].content",
            '"format": "wav" | "mp3"',
        ),
        ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]}, "messages[0]", "missing"),
    ],
)
def test_what_chatwait_cannot_do_is_refused_with_a_clear_400(sdk: openai.OpenAI, extra, param, words) -> None:
    request = {"model": FAKE_MODEL, "messages": user("hello"), **extra}
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(**request)
    error = raised.value.body
    conform("OpenAIErrorDetail", error)
    assert error["type"] == "invalid_request_error" and error["param"].startswith(param)
    assert words.lower() in error["message"].lower()
    assert error["code"] == ("model_not_found" if param == "model" else "validation_error")


def test_a_conversation_over_the_limit_says_what_to_drop(sdk: openai.OpenAI) -> None:
    """MAX_INPUT_TOKENS is 2000 in the test server: twelve long turns are too many."""
    turns = [{"role": role, "content": "word " * 300} for role in ("user", "assistant") * 6]
    messages = [{"role": "system", "content": "Be brief."}, *turns, *user("And now?")]
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model=FAKE_MODEL, messages=messages)
    error = raised.value.body
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "oldest message(s) after the system prompt" in error["message"]
    assert "maximum context length" in error["message"], "what LiteLLM and others map to their context error"


def test_upstream_failures_in_openai_shape(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model=FAKE_MODEL, messages=user("@fault=429 @retry_after=1"))
    assert limited.value.response.headers["retry-after"] == "1"
    assert limited.value.body["code"] == "rate_limit_exceeded" and limited.value.body["type"] == "rate_limit_error"
    with pytest.raises(openai.InternalServerError) as refused:
        sdk.chat.completions.create(model=FAKE_MODEL, messages=user("@fault=401"))
    assert refused.value.status_code == 502 and refused.value.body["code"] == "upstream_auth_failed"
    assert CANARY_KEY not in str(refused.value.body) and CANARY_KEY[-8:] not in refused.value.response.text


def test_a_failure_mid_stream_is_raised_by_the_sdk_after_the_text_so_far(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model=FAKE_MODEL, messages=user("@tokens=6 @fault=reset@3"), stream=True)
    texts = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            texts.append(chunk.choices[0].delta.content or "")
    assert "".join(texts) == expected_reply(3)
    assert raised.value.body["code"] == "upstream_interrupted"


def test_models_list_and_retrieve(sdk: openai.OpenAI, http: httpx.Client) -> None:
    assert [model.id for model in sdk.models.list()] == [FAKE_MODEL, "other-model"]
    model = sdk.models.retrieve("other-model")
    assert (model.id, model.object, model.owned_by) == ("other-model", "model", "chatwait")
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.models.retrieve("gpt-9")
    assert missing.value.body["code"] == "model_not_found"
    conform("ModelList", http.get("/v1/models").json())
    conform("Model", http.get(f"/v1/models/{FAKE_MODEL}").json())


@pytest.mark.parametrize(
    "method,path,status", [("GET", "/v1/embeddings", 404), ("DELETE", "/v1/chat/completions", 405)]
)
def test_other_v1_paths_answer_in_openai_shape(http: httpx.Client, method, path, status) -> None:
    response = http.request(method, path)
    assert response.status_code == status
    conform("OpenAIError", response.json())


def test_a_body_that_is_not_json_is_refused_in_openai_shape(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json" and '"messages"' in error["message"]


def test_a_streamed_completion_that_fails_before_its_first_token_answers_with_the_http_status(server, fake) -> None:
    """As OpenAI answers: the SDK raises at create() and its own retries act (they honour Retry-After)."""
    import uuid

    base = {"base_url": f"{server.url}/v1", "api_key": "unused", "timeout": 30}
    limited = f"{uuid.uuid4().hex} @fault=429 @retry_after=0"
    with openai.OpenAI(max_retries=0, **base) as sdk, pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model=FAKE_MODEL, messages=user(limited), stream=True)
    assert refused.value.body["code"] == "rate_limit_exceeded" and "retry-after" in refused.value.response.headers
    down = f"{uuid.uuid4().hex} @fault=503"
    with openai.OpenAI(max_retries=0, **base) as sdk, pytest.raises(openai.APIStatusError) as unavailable:
        sdk.chat.completions.create(model=FAKE_MODEL, messages=user(down), stream=True)
    assert unavailable.value.status_code == 503
    flaky = f"{uuid.uuid4().hex} @fault=503 @fail_times=3 @tokens=2"  # ChatWait's own 3 attempts fail, then it works
    with openai.OpenAI(max_retries=1, **base) as sdk:
        chunks = list(sdk.chat.completions.create(model=FAKE_MODEL, messages=user(flaky), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected_reply(2)
    assert len(fake.outcomes_for(flaky)) == 4, "the SDK's retry acted on the status"


def test_a_first_token_later_than_the_hold_is_streamed_as_before(start_server) -> None:
    """Past the hold (5 s) the answer commits to 200 and keepalives; the tokens follow."""
    server = start_server(TIMEOUT_SECONDS="20", IDLE_TIMEOUT_SECONDS="10")  # the first token within both
    body = {"model": FAKE_MODEL, "messages": user("@first_ms=5600 @tokens=2"), "stream": True}
    url = f"{server.url}/v1/chat/completions"
    with httpx.Client(timeout=30) as http, http.stream("POST", url, json=body) as answer:
        assert answer.status_code == 200
        text = answer.read().decode()
    assert ": keepalive" in text and text.rstrip().endswith("data: [DONE]")
    assert '"content":"tok0 "' in text and '"content":"tok1 "' in text and '"error"' not in text


def test_a_longer_reply_than_its_bound_is_lowered_and_said(sdk: openai.OpenAI) -> None:
    """max_tokens over MAX_TOKENS (here 1024) is sent as MAX_TOKENS and the answer says so; the
    Responses API's max_output_tokens too."""
    raw = sdk.chat.completions.with_raw_response.create(
        model=FAKE_MODEL, messages=user("hi @tokens=2"), max_tokens=5000
    )
    assert raw.headers["x-chatwait-adapted"] == "max_tokens lowered to 1024 (MAX_TOKENS)"
    assert raw.parse().choices[0].message.content == expected_reply(2)
    raw = sdk.responses.with_raw_response.create(model=FAKE_MODEL, input="hi @tokens=2", max_output_tokens=5000)
    assert raw.headers["x-chatwait-adapted"] == "max_output_tokens lowered to 1024 (MAX_TOKENS)"
    newer = sdk.chat.completions.with_raw_response.create(
        model=FAKE_MODEL, messages=user("hi @tokens=2"), max_completion_tokens=3000
    )
    assert newer.headers["x-chatwait-adapted"] == "max_completion_tokens lowered to 1024 (MAX_TOKENS)", "its own name"
    within = sdk.chat.completions.with_raw_response.create(
        model=FAKE_MODEL, messages=user("hi @tokens=2"), max_tokens=9
    )
    assert "x-chatwait-adapted" not in within.headers, "what fits is sent as asked, and nothing is said"
