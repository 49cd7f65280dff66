"""The Responses wire, read back by the `openai` SDK's SSE decoder, event models and stream
accumulator: numbered events, output items opened as their deltas come (text, refusal,
reasoning, function calls), every chunk written again with the same bytes by a writer that
learned the stream from its stored form (another worker), a resume after any sequence number
landing exactly, and the response object built from a stream's contents at any point."""

from __future__ import annotations

import json

import pytest
from openai import omit
from openai._models import construct_type
from openai._streaming import SSEDecoder
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from app.apis.responses.replies import response_reply
from app.apis.responses.wire import LAYOUT_MARK, ResponsesWriter
from app.errors import ApiError
from app.generation.outcome import Outcome
from app.providers.call import Usage
from app.providers.deltas import LOGPROBS, REASONING, REFUSAL, TEXT_KIND, TOOL_CALL, Delta, ReplyParts
from app.streaming.wire import chunk_frame
from app.streaming.wire.sse import Position, one_id_per_event, skip_numbered

ECHO = {"instructions": "Be brief.", "metadata": {"k": "v"}, "temperature": 0.5, LAYOUT_MARK: 1}


def writer(echo: dict | None = None) -> ResponsesWriter:
    return ResponsesWriter("sid", "cid", "m-1", 1700000000.9, ECHO if echo is None else echo)


def events(*frames: bytes) -> list:
    """The events the SDK reads, up to the `[DONE]` it stops on (the last frame)."""
    decoded = list(SSEDecoder().iter_bytes(iter(frames)))
    if decoded and decoded[-1].data == "[DONE]":
        decoded.pop()
    assert all(sse.data != "[DONE]" for sse in decoded), "only at the very end"
    return [(sse.id, construct_type(type_=ResponseStreamEvent, value=sse.json())) for sse in decoded]


def outcome(text: str, finish: str | None = "stop", error: ApiError | None = None, parts=None) -> Outcome:
    usage = Usage(7, 3)
    return Outcome(text, 2, usage, 12.0, 1.0, finish_reason=None if error else finish, error=error, parts=parts)


def whole(final: Outcome, wire: ResponsesWriter | None = None) -> list[bytes]:
    wire = wire or writer()
    return [wire.priming(), wire.chunk(1, "He"), wire.chunk(2, "llo"), wire.terminal(2, 5, final)]


# Reasoning, text, a refusal, two tool calls (the second's first piece with its start), as a
# stream stores them: (kind, payload), and the deltas they are.
CHUNKS: list[str | Delta] = [
    Delta(REASONING, "Think"),
    Delta(REASONING, "ing."),
    "Calling",
    Delta(TOOL_CALL, "", 0, "call_a", "get_weather"),
    Delta(TOOL_CALL, '{"city":', 0),
    Delta(TOOL_CALL, '{"q"', 1, "call_b", "search"),
    Delta(TOOL_CALL, '"Paris"}', 0),
    " two.",
    Delta(TOOL_CALL, ':"x"}', 1),
    Delta(REFUSAL, "Not that."),
]


def typed_stream(wire: ResponsesWriter) -> tuple[list[bytes], Outcome]:
    parts, texts = ReplyParts(), []
    frames = [wire.priming()]
    for sequence, chunk in enumerate(CHUNKS, start=1):
        if isinstance(chunk, str):
            frames.append(wire.chunk(sequence, chunk))
            texts.append(chunk)
        else:
            frames.append(wire.delta(sequence, chunk))
            parts.add(chunk)
    final = outcome("".join(texts), "tool_calls", parts=parts)
    frames.append(wire.terminal(len(CHUNKS), 0, final))
    return frames, final


def test_every_event_is_numbered_by_its_sse_id_and_the_sdk_reads_each_one() -> None:
    frames = whole(outcome("Hello"))
    assert frames[-1].endswith(b'"sequence_number":9}\n\ndata: [DONE]\n\n'), "Open Responses' end, without an id"
    read = events(*frames)
    assert [int(sse_id) for sse_id, _ in read] == list(range(10))
    assert [event.sequence_number for _, event in read] == list(range(10))
    kinds = [event.type for _, event in read]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[5] == "response.output_text.delta" and kinds[-1] == "response.completed"
    final = read[-1][1].response
    assert final.output_text == "Hello" and final.usage.total_tokens == 10 and final.instructions == "Be brief."
    assert final.id == "resp_sid" and final.metadata == {"k": "v"} and final.temperature == 0.5


@pytest.mark.parametrize(
    ("ending", "status", "kind"),
    [
        (outcome("Hello", "length"), "incomplete", "response.incomplete"),
        (outcome("Hello", "cancelled"), "cancelled", "response.incomplete"),
        (outcome("He", error=ApiError("upstream_interrupted")), "failed", "response.failed"),
    ],
)
def test_how_a_response_ends_is_its_last_event(ending: Outcome, status: str, kind: str) -> None:
    last = events(*whole(ending))[-1][1]
    assert last.type == kind and last.response.status == status
    if status == "failed":
        assert last.response.error.code == "upstream_interrupted"
    if status == "incomplete":
        assert last.response.incomplete_details.reason == "max_output_tokens"


def test_a_reply_without_any_chunk_still_has_its_message() -> None:
    wire = writer()
    read = events(wire.priming(), wire.terminal(0, 0, outcome("")))
    assert [int(sse_id) for sse_id, _ in read] == list(range(8))
    assert read[2][1].type == "response.output_item.added" and read[-1][1].response.output[0].type == "message"
    assert wire.position(6, 1, True) == Position(0, 6) and wire.position(7, 1, True) is None


@pytest.mark.parametrize(
    ("seen", "finished", "expected"),
    [
        (None, False, Position(None)),
        (0, False, Position(None, 0)),  # inside the opening events: all of them again, minus 0
        (1, False, Position(0)),
        (3, False, Position(0, 3)),  # inside chunk 1's events (the item and part opened, then the delta)
        (4, False, Position(1)),
        (5, False, Position(2)),
        (7, True, Position(2, 7)),  # inside the closing events of a stream whose last event is 3
        (8, True, Position(2, 8)),
        (9, True, None),
    ],
)
def test_a_sequence_number_maps_to_a_resume_position(seen, finished, expected) -> None:
    wire = writer()
    whole(outcome("Hello"), wire)
    assert wire.position(seen, 3, finished) == expected


def test_skipping_numbered_events_keeps_the_rest_of_the_frame() -> None:
    frames = b"".join(whole(outcome("Hello")))
    kept = skip_numbered(frames, 6)
    assert [int(sse_id) for sse_id, _ in events(kept)] == [7, 8, 9]
    assert skip_numbered(b": keepalive\nid: 3\ndata: {}\n\n", 2).startswith(b": keepalive")


def test_the_other_wires_have_one_id_per_event() -> None:
    assert one_id_per_event(4, 9, False) == Position(4) and one_id_per_event(9, 9, True) is None


def test_the_object_as_it_stands_is_built_from_the_streams_text_and_outcome() -> None:
    wire = writer()
    assert wire.output("", None, None) == []
    started = response_reply(wire.head, None, "cid", [])
    assert started["status"] == "in_progress" and started["output"] == [] and started["usage"] is None
    frames = whole(outcome("Hello"), wire)
    live = response_reply(wire.head, None, "cid", wire.output("Hel", None, None))
    assert live["output"][0]["content"][0]["text"] == "Hel" and live["output"][0]["status"] == "in_progress"
    ended = response_reply(wire.head, outcome("Hello"), "cid", wire.output("Hello", None, outcome("Hello")))
    assert ended["status"] == "completed" and ended["usage"]["output_tokens"] == 3
    assert json.loads(json.dumps(ended)) == ended
    assert events(frames[-1])[-1][1].response.model_dump(exclude_unset=True) == ended, (
        "the object is the one the last event carried"
    )


def test_an_interruption_tells_the_sequence_number_to_resume_after() -> None:
    wire = writer()
    whole(outcome("Hello"), wire)
    frame = wire.interrupted(2, ApiError("store_unavailable"))
    error, done = frame.split(b"\n\n", 1)
    assert done == b"data: [DONE]\n\n", "this response's stream ends as every Open Responses stream does"
    data = json.loads(error.split(b"data: ", 1)[1])
    assert b"id:" not in frame and data["type"] == "error" and data["resume_after"] == 5


def test_typed_deltas_open_output_items_the_sdk_accumulates() -> None:
    frames, final = typed_stream(writer())
    read = events(*frames)
    numbers = [int(sse_id) for sse_id, _ in read]
    assert numbers == list(range(len(numbers))) == [event.sequence_number for _, event in read]
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for _, event in read:
        state.handle_event(event)
    done = read[-1][1].response
    assert [item.type for item in done.output] == ["reasoning", "message", "function_call", "function_call"]
    assert done.output[0].content[0].text == "Thinking."
    assert done.output_text == "Calling two." and done.output[1].content[1].refusal == "Not that."
    calls = [(item.call_id, item.name, json.loads(item.arguments)) for item in done.output[2:]]
    assert calls == [("call_a", "get_weather", {"city": "Paris"}), ("call_b", "search", {"q": "x"})]
    snapshot = state._completed_response
    assert snapshot is not None and [item.type for item in snapshot.output] == [item.type for item in done.output]
    adds = [event.item.id for _, event in read if event.type == "response.output_item.added"]
    dones = [event.item.id for _, event in read if event.type == "response.output_item.done"]
    assert adds == dones == [item.id for item in done.output] and len(set(adds)) == 4
    arguments = {}
    for _, event in read:
        if event.type == "response.function_call_arguments.delta":
            arguments[event.item_id] = arguments.get(event.item_id, "") + event.delta
    assert arguments == {item.id: item.arguments for item in done.output[2:]}
    assert final.parts is not None and final.parts.reasoning == "Thinking."


def _stored(chunk: str | Delta) -> tuple[bytes, bytes]:
    return (TEXT_KIND, chunk.encode()) if isinstance(chunk, str) else chunk.encode()


def test_a_writer_that_learned_the_stored_stream_writes_every_chunk_again_the_same() -> None:
    frames, _ = typed_stream(writer())
    for start in range(1, len(CHUNKS) + 1):
        other = writer({**ECHO})
        for event_id, chunk in enumerate(CHUNKS[: start - 1], start=1):
            other.learn(event_id, *_stored(chunk))
        again = [
            chunk_frame(other, event_id, *_stored(chunk))
            for event_id, chunk in enumerate(CHUNKS[start - 1 :], start=start)
        ]
        assert again == frames[start : len(CHUNKS) + 1], f"from chunk {start}"
    # and out of order, once learned (an old chunk written again on the producer's side)
    assert chunk_frame(other, 4, *_stored(CHUNKS[3])) == frames[4]


def test_a_resume_after_any_sequence_number_gets_exactly_the_events_after_it() -> None:
    wire = writer()
    frames, _ = typed_stream(wire)
    last_event_id = len(CHUNKS) + 1
    total = len(events(*frames))
    for seen in range(total):
        position = wire.position(seen, last_event_id, True)
        if seen == total - 1:
            assert position is None
            continue
        assert position is not None
        rest = b"".join(frames[0 if position.after is None else position.after + 1 :])
        if position.skip_through is not None:
            rest = skip_numbered(rest, position.skip_through)
        assert [int(sse_id) for sse_id, _ in events(rest)] == list(range(seen + 1, total)), f"after {seen}"
        if seen < total - len(events(frames[-1])):
            live = wire.position(seen, last_event_id - 1, False)
            assert live == position or live.after <= last_event_id - 1


def test_a_stream_of_an_earlier_release_is_written_in_its_own_layout() -> None:
    """Its priming event (kept in Redis) opened the message: chunk i is number i + 3."""
    legacy = writer({k: v for k, v in ECHO.items() if k != LAYOUT_MARK})
    frames = whole(outcome("Hello"), legacy)
    read = events(*frames)
    assert [int(sse_id) for sse_id, _ in read] == list(range(10))
    assert [event.type for _, event in read][2:6] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
    ]
    assert LAYOUT_MARK not in legacy.echo and writer().echo[LAYOUT_MARK] == 1
    assert legacy.position(3, 3, False) == Position(0) and legacy.position(4, 3, False) == Position(1)


def test_text_with_log_probabilities_is_text_on_this_wire() -> None:
    """An upstream may send log probabilities unasked: the Responses API carries their text alone."""
    wire, plain = writer(), writer()
    with_logprobs = Delta(LOGPROBS, "Hi", data=[{"token": "Hi", "logprob": -0.1}])
    assert wire.delta(1, with_logprobs) == plain.chunk(1, "Hi")
    other = writer()
    other.learn(1, *with_logprobs.encode())
    assert other.chunk(2, " there") == plain.chunk(2, " there")


def test_every_chunk_writes_as_many_events_as_the_layout_numbered() -> None:
    """Even deltas the tool-call mender never lets through (an empty piece, a call started
    twice) keep the numbers contiguous."""
    wire = writer()
    frames = [wire.priming(), wire.delta(1, Delta(TOOL_CALL, "", 0, "c", "f")), wire.delta(2, Delta(TOOL_CALL, "", 0))]
    frames += [wire.delta(3, Delta(TOOL_CALL, "", 0, "c", "f")), wire.delta(4, Delta(TOOL_CALL, "{}", 7))]
    frames.append(wire.terminal(4, 0, outcome("", "tool_calls")))
    assert [int(sse_id) for sse_id, _ in events(*frames)] == list(range(len(events(*frames))))
