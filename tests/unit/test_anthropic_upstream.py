"""A server that speaks Anthropic's Messages API, unit by unit: its event stream read into text,
thinking (with its signature), tool calls, stop reason and usage, split anywhere; any stream
(fuzzed) gives pieces or a classified error, never holds a line over the limit; the request
written from a ChatCall (translated, or the client's own body passed through)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.generation.outcome import Outcome
from app.providers.anthropic.request import messages_body
from app.providers.anthropic.stream import AnthropicAttempt
from app.providers.base import UpstreamError
from app.providers.call import ChatCall, Usage
from app.providers.deltas import REASONING, TOOL_CALL, Delta, ReplyParts, decode

from .test_fuzz_upstream import _split

MAX_LINE = 2048


class FedResponse:
    def __init__(self, blocks: list[bytes]) -> None:
        self.headers = httpx.Headers({"request-id": "req_1"})
        self.stream = iter(blocks)

    def close(self) -> None:
        pass


def _event(data: dict[str, Any]) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n"


def _start(index: int, block: dict[str, Any]) -> bytes:
    return _event({"type": "content_block_start", "index": index, "content_block": block})


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return _event({"type": "content_block_delta", "index": index, "delta": delta})


USAGE = {"input_tokens": 20, "output_tokens": 1, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 30}
HEAD = _event({"type": "message_start", "message": {"id": "msg_1", "usage": USAGE}}) + _event({"type": "ping"})


def _tail(stop: str = "end_turn", output: int = 9, sequence: str | None = None) -> bytes:
    ended = {"stop_reason": stop, "stop_sequence": sequence}
    ending = {"type": "message_delta", "delta": ended, "usage": {"output_tokens": output}}
    return _event(ending) + _event({"type": "message_stop"})


WHOLE = (
    HEAD
    + _start(0, {"type": "thinking", "thinking": "", "signature": ""})
    + _delta(0, {"type": "thinking_delta", "thinking": "Let me "})
    + _delta(0, {"type": "thinking_delta", "thinking": "see."})
    + _delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM"})
    + _event({"type": "content_block_stop", "index": 0})
    + _start(1, {"type": "text", "text": ""})
    + _delta(1, {"type": "text_delta", "text": "Hello "})
    + _delta(1, {"type": "citations_delta", "citation": {"type": "char_location"}})
    + _delta(1, {"type": "text_delta", "text": "wörld"})
    + _start(2, {"type": "redacted_thinking", "data": "opaque"})
    + _start(3, {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}})
    + _delta(3, {"type": "input_json_delta", "partial_json": ""})
    + _delta(3, {"type": "input_json_delta", "partial_json": '{"word": '})
    + _delta(3, {"type": "input_json_delta", "partial_json": '"hi"}'})
    + _start(4, {"type": "tool_use", "id": "toolu_2", "name": "other", "input": {}})
    + _delta(4, {"type": "input_json_delta", "partial_json": "{}"})
    + _tail("tool_use")
)


def _generation(blocks: list[bytes]) -> AnthropicAttempt:
    return AnthropicAttempt(FedResponse(blocks), idle_timeout=1.0, max_line=MAX_LINE)


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(0, len(WHOLE)), max_size=10), crlf=st.booleans())
def test_a_stream_split_anywhere_reads_whole(cuts: list[int], crlf: bool) -> None:
    body = WHOLE.replace(b"\n", b"\r\n") if crlf else WHOLE
    generation = _generation(_split(body, cuts))
    pieces = list(generation)
    assert "".join(p for p in pieces if type(p) is str) == "Hello wörld"
    parts = ReplyParts()
    for piece in pieces:
        if type(piece) is not str:
            parts.add(piece)
    assert parts.reasoning == "Let me see." and parts.signature == "EqQBCgIYAhIM"
    assert [(c.call_id, c.name, c.arguments) for c in parts.tool_calls] == [
        ("toolu_1", "lookup", '{"word": "hi"}'),
        ("toolu_2", "other", "{}"),
    ]
    assert generation.finish_reason == "tool_calls"
    usage = generation.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (150, 9), "the cache's tokens are the prompt's too"
    assert (usage.cached_tokens, usage.cache_write_tokens) == (100, 30)


def test_pieces_of_a_block_whose_start_never_came_are_kept() -> None:
    """A server that skips content_block_start: its text and thinking still arrive."""
    thinking, text = {"type": "thinking_delta", "thinking": "hm"}, {"type": "text_delta", "text": "hi"}
    generation = _generation([HEAD + _delta(0, thinking) + _delta(1, text) + _tail()])
    assert list(generation) == [Delta(REASONING, "hm"), "hi"] and generation.finish_reason == "stop"


def test_a_signature_is_kept_as_stored_and_read_back() -> None:
    signed = Delta(REASONING, data="EqQBCgIYAhIM")
    assert decode(*signed.encode()) == signed
    assert decode(*Delta(REASONING, "text").encode()) == Delta(REASONING, "text")


def test_the_stop_sequence_that_ended_a_reply_is_kept() -> None:
    generation = _generation([HEAD + _start(0, {"type": "text", "text": "a"}) + _tail("stop_sequence", 1, "END")])
    assert list(generation) == ["a"] and (generation.finish_reason, generation.stop_sequence) == ("stop", "END")
    endless = _generation([HEAD + _start(0, {"type": "text", "text": "a"}) + _tail("stop_sequence", 1, "x" * 1025)])
    assert list(endless) == ["a"] and endless.stop_sequence is None, "a stop sequence longer than any is not kept"
    kept = Outcome("a", 1, Usage(1, 1), 1.0, 1.0, finish_reason="stop", stop_sequence="END").record()
    assert Outcome.from_record("a", json.loads(json.dumps(kept))).stop_sequence == "END"


@pytest.mark.parametrize(
    ("stop", "finish", "kept"),
    [
        ("end_turn", "stop", None),
        ("stop_sequence", "stop", None),
        ("max_tokens", "length", None),
        ("refusal", "content_filter", None),
        ("pause_turn", "stop", "pause_turn"),
    ],
)
def test_stop_reasons_are_openais_finish_reasons(stop: str, finish: str, kept: str | None) -> None:
    generation = _generation([HEAD + _start(0, {"type": "text", "text": "a"}) + _tail(stop)])
    assert list(generation) == ["a"]
    assert (generation.finish_reason, generation.upstream_finish_reason) == (finish, kept)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (HEAD + _start(0, {"type": "text", "text": "a"}), "upstream_interrupted"),  # no message_stop
        (HEAD + _event({"type": "message_stop"}), "upstream_interrupted"),  # no stop reason
        (HEAD + _event({"type": "error", "error": {"type": "overloaded_error"}}), "upstream_interrupted"),
        (HEAD + _event({"type": "error", "error": {"type": "api_error"}}), "upstream_interrupted"),
        (HEAD + _start(0, {"type": "tool_use", "id": 7, "name": "x"}) + _tail(), "upstream_bad_response"),
        (HEAD + b"data: " + b"x" * (MAX_LINE + 1) + b"\n", "upstream_bad_response"),
        (HEAD + b"data: {}\n\n" * 4 + _tail(), "upstream_bad_response"),  # more malformed events than skipped
        (
            HEAD + b"".join(_start(n, {"type": "redacted_thinking", "data": ""}) for n in range(4097)),
            "upstream_bad_response",
        ),
    ],
)
def test_broken_streams_are_classified(body: bytes, code: str) -> None:
    with pytest.raises(UpstreamError) as failed:
        list(_generation([body]))
    assert failed.value.error_code == code and failed.value.upstream_request_id == "req_1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_TYPES = st.sampled_from(["content_block_start", "content_block_delta", "message_delta", "error", "ping", "x"])
_DELTAS = st.sampled_from(["text_delta", "thinking_delta", "signature_delta", "input_json_delta", "citations_delta"])
_BLOCKS = st.sampled_from(["text", "thinking", "tool_use", "redacted_thinking", "server_tool_use"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(
        st.fixed_dictionaries(
            {
                "type": _TYPES,
                "index": st.integers(-1, 3) | json_values,
                "delta": st.fixed_dictionaries({"type": _DELTAS, "text": json_values, "partial_json": json_values}),
                "content_block": st.fixed_dictionaries(
                    {"type": _BLOCKS, "id": json_values, "name": json_values, "input": json_values}
                ),
            }
        ).map(lambda e: b"data: " + json.dumps(e).encode() + b"\n\n")
        | st.binary(max_size=40).map(lambda b: b"data: " + b + b"\n\n")
        | st.sampled_from([b"data: " + b"[" * 3000 + b"\n", b"x" * 3000, b"\r\n\r\n", b": c\n"]),
        max_size=8,
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
    ending=st.sampled_from([b"", _tail()]),
)
def test_any_stream_gives_pieces_or_a_classified_error(events: list[bytes], cuts: list[int], ending: bytes) -> None:
    generation = _generation(_split(HEAD + b"".join(events) + ending, cuts))
    try:
        pieces = list(generation)
        event("complete")
    except UpstreamError as error:
        event(error.error_code)
        assert error.error_code in ("upstream_bad_response", "upstream_interrupted", "upstream_unavailable")
        return
    for piece in pieces:
        assert (type(piece) is str and piece) or (isinstance(piece, Delta) and piece.kind in (REASONING, TOOL_CALL))
    assert isinstance(generation.finish_reason, str)


def _call(**fields: Any) -> ChatCall:
    return ChatCall(**{"model": "claude-x", "messages": [], "max_tokens": 2000, **fields})


def test_a_chat_call_is_translated_into_a_messages_request() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is "},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"q": 1}'}},
                {"id": "call_2", "type": "function", "function": {"name": "look", "arguments": "not json"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "one"},
        {"role": "tool", "tool_call_id": "call_2", "content": "two"},
        {"role": "developer", "content": "Mind the tools."},
        {"role": "user", "content": "and so?"},
    ]
    tool = {"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}
    options = {
        "tools": [tool],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "stop": "END",
        "seed": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
    }
    body = messages_body(_call(messages=messages, options=options, temperature=0.2), version="2023-06-01")
    assert body["system"] == "Be brief.\n\nMind the tools." and body["stream"] is True
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is "},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "look", "input": {"q": 1}},
                {"type": "tool_use", "id": "call_2", "name": "look", "input": {"arguments": "not json"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "one"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "two"},
                {"type": "text", "text": "and so?"},
            ],
        },
    ]
    assert body["tools"] == [{"name": "look", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 0.2 and "seed" not in body
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}


@pytest.mark.parametrize(
    "options",
    [
        {"logprobs": True},
        {"top_logprobs": 3},
        {"n": 2},
        {"logit_bias": {"1": 2}},
        {"response_format": {"type": "json_object"}},
    ],
)
def test_what_the_messages_api_cannot_honour_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError) as refused:
        messages_body(_call(messages=[{"role": "user", "content": "x"}], options=options))
    assert refused.value.error_code == "upstream_rejected" and "Messages API" in refused.value.detail
    assert messages_body(_call(messages=[{"role": "user", "content": "x"}], options={"n": 1, "logprobs": False}))


def test_the_clients_own_body_is_passed_through() -> None:
    """Only the model (a fallback's), the allowed max_tokens and streaming change; a thinking
    budget is kept under max_tokens, and dropped below Anthropic's least."""
    body = {
        "model": "asked",
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "thinking": {"type": "enabled", "budget_tokens": 31999},
    }
    native = {"api": "messages", "body": body, "beta": None}
    sent = messages_body(_call(native=native, messages=[{"role": "user", "content": "ignored"}]))
    assert sent == {
        **body,
        "model": "claude-x",
        "max_tokens": 2000,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 1999},
    }
    assert body["max_tokens"] == 32000, "the client's body is not changed"
    assert "thinking" not in messages_body(_call(native=native, max_tokens=1000))


def test_the_writes_with_the_long_lifetime_are_read_from_cache_creation() -> None:
    lifetimes = {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}
    head = _event({"type": "message_start", "message": {"id": "m", "usage": {**USAGE, "cache_creation": lifetimes}}})
    usage = _usage_of(head)
    assert usage is not None and (usage.cache_write_tokens, usage.cache_write_long_tokens) == (30, 20)
    said = {**lifetimes, "ephemeral_1h_input_tokens": 99}  # more than were written: bounded by them
    head = _event({"type": "message_start", "message": {"id": "m", "usage": {**USAGE, "cache_creation": said}}})
    usage = _usage_of(head)
    assert usage is not None and usage.cache_write_long_tokens == 30


def test_the_messages_id_is_kept_as_the_replys() -> None:
    generation = _generation([HEAD + _start(0, {"type": "text", "text": "a"}) + _tail()])
    list(generation)
    assert generation.response_id == "msg_1"


def _usage_of(head: bytes) -> Usage | None:
    """The usage of a whole reply after `head`."""
    generation = _generation([head + _start(0, {"type": "text", "text": "a"}) + _tail()])
    list(generation)
    return generation.usage


def test_a_streams_record_keeps_the_caches_part_and_reads_older_records() -> None:
    usage = Usage(150, 9, cached_tokens=100, cache_write_tokens=30, cache_write_long_tokens=20)
    kept = Outcome("", 3, usage, 12.0, 1.0, finish_reason="stop").record()
    assert Outcome.from_record("", json.loads(json.dumps(kept))).usage == usage
    older = {**kept, "usage": [150, 9, False, 4]}  # a record of the release before: no cache counts
    assert Outcome.from_record("", older).usage == Usage(150, 9, generated=4)
    no_long = {**kept, "usage": kept["usage"][:7]}  # before the long writes were counted
    assert Outcome.from_record("", no_long).usage == Usage(150, 9, cached_tokens=100, cache_write_tokens=30)
    assert usage.as_dict()["prompt_tokens_details"] == {"cached_tokens": 100, "cache_write_tokens": 30}
    assert "prompt_tokens_details" not in Usage(150, 9).as_dict()
