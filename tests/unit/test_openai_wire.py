"""The OpenAI wire format, read back by the `openai` SDK's own SSE decoder and chunk model: what
the SDK sees is what OpenAI would send, ids included, and an error chunk raises as it should."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai._streaming import SSEDecoder
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from app.apis.chat_completions.replies import completion as completion_object
from app.apis.chat_completions.wire import OpenAIWriter
from app.errors import ApiError
from app.generation.outcome import Outcome
from app.providers.call import Usage
from app.streaming.stream import Stream
from app.streaming.wire import Wire
from app.streaming.wire.sse import KEEPALIVE_FRAME, RETRY_LINE

from ..conformance import conform
from ..sse import parse

WIRE = OpenAIWriter("sid", "cid", "m-1", 1700000000.9, include_usage=True)


def decoded(*frames: bytes) -> list:
    return list(SSEDecoder().iter_bytes(iter(frames)))


def chunks_of(*frames: bytes) -> list[ChatCompletionChunk]:
    """What the SDK's Stream yields for these frames (up to [DONE])."""
    response = httpx.Response(200, content=b"".join(frames), request=httpx.Request("GET", "http://x"))
    client = openai.OpenAI(api_key="x", base_url="http://x")
    return list(openai.Stream(cast_to=ChatCompletionChunk, response=response, client=client))


def done(reason: str | None = "stop", usage: Usage | None = None) -> Outcome:
    return Outcome("Hé", 2, usage or Usage(3, 2), 5.0, 1.0, finish_reason=reason)


def test_priming_and_chunks_are_what_the_sdk_parses() -> None:
    frames = (
        RETRY_LINE + WIRE.priming(),
        WIRE.queued(2),  # the place in line is a comment: OpenAI's clients have no such event
        KEEPALIVE_FRAME,
        WIRE.queued(1),
        WIRE.chunk(1, 'Hé "q"\n'),
        KEEPALIVE_FRAME,
        WIRE.chunk(2, "🎉"),
    )
    events = decoded(*frames)
    assert [event.id for event in events] == ["0", "1", "2"] and events[0].retry == 2000
    first, one, two = (ChatCompletionChunk.model_validate_json(event.data) for event in events)
    assert first.id == "chatcmpl-sid" and first.created == 1700000000 and first.model == "m-1"
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert one.choices[0].delta.content == 'Hé "q"\n' and one.choices[0].finish_reason is None
    assert two.choices[0].delta.content == "🎉" and two.object == "chat.completion.chunk"


def test_the_ending_is_the_finish_chunk_the_usage_chunk_and_done_under_one_id() -> None:
    terminal = WIRE.terminal(2, 2, done(usage=Usage(3, 2, estimated=True)))
    assert [event.id for event in decoded(terminal)] == ["3", "3", "3"]
    finish, usage = chunks_of(terminal)
    assert finish.choices[0].finish_reason == "stop" and finish.choices[0].delta.content is None
    assert usage.choices == [] and usage.usage.total_tokens == 5
    assert usage.model_extra["usage_source"] == "estimated"
    without = OpenAIWriter("sid", "cid", "m", 0, include_usage=False).terminal(0, 0, done())
    assert len(decoded(without)) == 2 and without.endswith(b"id: 1\ndata: [DONE]\n\n")


@pytest.mark.parametrize("reason,expected", [("stop", "stop"), ("length", "length"), ("cancelled", "stop")])
def test_finish_reasons_are_openais(reason, expected) -> None:
    assert chunks_of(WIRE.terminal(0, 0, done(reason)))[0].choices[0].finish_reason == expected
    assert completion_object("x", 0, "m", done(reason))["choices"][0]["finish_reason"] == expected


def test_a_failure_is_an_error_chunk_the_sdk_raises() -> None:
    error = ApiError("upstream_interrupted", "cut")
    outcome = Outcome("a", 1, Usage(1, 1), 1.0, 1.0, error=error)
    terminal = WIRE.terminal(1, 1, outcome)
    with pytest.raises(openai.APIError) as raised:
        chunks_of(WIRE.chunk(1, "a"), terminal)
    assert raised.value.body["code"] == "upstream_interrupted" and raised.value.body["correlation_id"] == "cid"
    assert decoded(terminal)[-1].data == "[DONE]"


def test_a_whole_completion_is_a_chat_completion() -> None:
    body = completion_object("abc", 1700000000.5, "m", done())
    parsed = ChatCompletion.model_validate(body)
    assert parsed.id == "chatcmpl-abc" and parsed.choices[0].message.content == "Hé"
    assert parsed.usage.prompt_tokens == 3 and body["usage_source"] == "upstream"


def test_an_unpaired_surrogate_or_an_odd_model_name_cannot_break_a_frame() -> None:
    wire = OpenAIWriter("s", "c", 'm"\n\ud800', 0, include_usage=False)
    chunk = ChatCompletionChunk.model_validate_json(decoded(wire.priming(), wire.chunk(1, "a\ud800b"))[1].data)
    assert chunk.choices[0].delta.content == "a?b" and chunk.model == 'm"\n?'


def test_a_stream_keeps_its_format_for_replays_from_further_back() -> None:
    stream = Stream("sid", "cid", "m", 0.0, wire=Wire("openai"))
    stream.append(stream.writer.priming())
    for index in range(80):  # past the encoded window: older chunks are encoded again from the text
        stream.append_chunk(f"t{index}")
    replay = b"".join(stream.frames(0, stream.written))
    texts = [chunk.choices[0].delta.content for chunk in chunks_of(replay)]
    assert texts == ["", *(f"t{index}" for index in range(80))]


def test_an_interruption_ends_the_response_not_the_stream_in_both_formats() -> None:
    """No id (EventSource and clients keep their last one): the SDK raises it, the native event
    is the contract's InterruptedEvent, and a resume after `resume_after` continues."""
    error = ApiError("store_unavailable", "Redis did not serve this reply for 12 s.", action="Resume after event 1.")
    frame = WIRE.interrupted(1, error)
    assert b"id:" not in frame and decoded(frame)[-1].data == "[DONE]"
    with pytest.raises(openai.APIError) as raised:
        chunks_of(WIRE.chunk(1, "a"), frame)
    assert raised.value.body["code"] == "store_unavailable" and raised.value.body["resume_after"] == 1
    native = Wire().writer("sid", "cid", "m-1", 0).interrupted(1, error)
    events, _ = parse(native)
    assert [(e.id, e.event) for e in events] == [(None, "error")]
    conform("InterruptedEvent", events[0].data)
