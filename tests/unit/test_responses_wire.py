"""The Responses wire, read back by the `openai` SDK's SSE decoder and event models: numbered
events, the resume positions inside the opening and closing events, and the response object
rebuilt from a stream's contents at any point."""

from __future__ import annotations

import json

import pytest
from openai._models import construct_type
from openai._streaming import SSEDecoder
from openai.types.responses import ResponseStreamEvent

from app.apis.responses.objects import Head
from app.apis.responses.wire import ResponsesWriter, resume_position
from app.errors import ApiError
from app.generation.outcome import Outcome
from app.providers.base import Usage
from app.streaming.wire.sse import Position, one_id_per_event, skip_numbered

ECHO = {"instructions": "Be brief.", "metadata": {"k": "v"}, "temperature": 0.5}
WRITER = ResponsesWriter("sid", "cid", "m-1", 1700000000.9, ECHO)


def events(*frames: bytes) -> list:
    decoded = SSEDecoder().iter_bytes(iter(frames))
    return [(sse.id, construct_type(type_=ResponseStreamEvent, value=sse.json())) for sse in decoded]


def outcome(text: str, finish: str | None = "stop", error: ApiError | None = None) -> Outcome:
    usage = Usage(7, 3)
    return Outcome(text, 2, usage, 12.0, 1.0, finish_reason=None if error else finish, error=error)


def whole(final: Outcome) -> list[bytes]:
    return [WRITER.priming(), WRITER.chunk(1, "He"), WRITER.chunk(2, "llo"), WRITER.terminal(2, 5, final)]


def test_every_event_is_numbered_by_its_sse_id_and_the_sdk_reads_each_one() -> None:
    read = events(*whole(outcome("Hello")))
    assert [int(sse_id) for sse_id, _ in read] == list(range(10))
    assert [event.sequence_number for _, event in read] == list(range(10))
    kinds = [event.type for _, event in read]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[4:6] == ["response.output_text.delta"] * 2 and kinds[-1] == "response.completed"
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
    last = events(WRITER.terminal(2, 5, ending))[-1][1]
    assert last.type == kind and last.response.status == status
    if status == "failed":
        assert last.response.error.code == "upstream_interrupted"
    if status == "incomplete":
        assert last.response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(
    ("seen", "finished", "expected"),
    [
        (None, False, Position(None)),
        (1, False, Position(None, 1)),  # inside the opening events: all of them again, minus 0 and 1
        (3, False, Position(0)),
        (5, False, Position(2)),
        (7, True, Position(2, 7)),  # inside the closing events of a stream whose last event is 3
        (8, True, Position(2, 8)),
        (9, True, None),
    ],
)
def test_a_sequence_number_maps_to_a_resume_position(seen, finished, expected) -> None:
    assert resume_position(seen, 3, finished) == expected


def test_skipping_numbered_events_keeps_the_rest_of_the_frame() -> None:
    frames = b"".join(whole(outcome("Hello")))
    kept = skip_numbered(frames, 6)
    assert [int(sse_id) for sse_id, _ in events(kept)] == [7, 8, 9]
    assert skip_numbered(b": keepalive\nid: 3\ndata: {}\n\n", 2).startswith(b": keepalive")


def test_the_other_wires_have_one_id_per_event() -> None:
    assert one_id_per_event(4, 9, False) == Position(4) and one_id_per_event(9, 9, True) is None


def test_the_object_as_it_stands_is_built_from_the_streams_text_and_outcome() -> None:
    head = Head.of("sid", 1700000000.9, "m-1", ECHO)
    started = head.as_it_stands("", None, "cid")
    assert started["status"] == "in_progress" and started["output"] == [] and started["usage"] is None
    live = head.as_it_stands("Hel", None, "cid")
    assert live["output"][0]["content"][0]["text"] == "Hel" and live["output"][0]["status"] == "in_progress"
    ended = head.as_it_stands("Hello", outcome("Hello"), "cid")
    assert ended["status"] == "completed" and ended["usage"]["output_tokens"] == 3
    assert json.loads(json.dumps(ended)) == ended
    last = json.loads(WRITER.terminal(2, 5, outcome("Hello")).rstrip(b"\n").rsplit(b"\ndata: ", 1)[1])
    assert last["response"] == ended, "the object is the one the last event carried"


def test_an_interruption_tells_the_sequence_number_to_resume_after() -> None:
    frame = WRITER.interrupted(5, ApiError("store_unavailable"))
    data = json.loads(frame.split(b"data: ", 1)[1])
    assert b"id:" not in frame and data["type"] == "error" and data["resume_after"] == 8
