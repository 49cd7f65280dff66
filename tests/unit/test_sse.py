"""SSE frames byte for byte, and Last-Event-ID parsing."""

from __future__ import annotations

import pytest

from app.errors import ApiError
from app.streaming.wire.sse import KEEPALIVE_FRAME, RETRY_LINE, SseEvent, encode_chunk, parse_last_event_id


def test_event_bytes() -> None:
    event = SseEvent(0, "stream", {"stream_id": "s1", "model": "m"})
    assert event.encode() == b'id: 0\nevent: stream\ndata: {"stream_id":"s1","model":"m"}\n\n'


def test_chunk_bytes_escape_json_and_keep_one_data_line() -> None:
    frame = encode_chunk(7, 'line1\nline2 "q" \\ é 🎉')
    assert frame == (
        b'id: 7\nevent: chunk\ndata: {"sequence":7,"content":"line1\\nline2 \\"q\\" \\\\ '
        + "é 🎉".encode()
        + b'","is_final":false}\n\n'
    )
    assert frame.count(b"\n") == 4


def test_chunk_bytes_equal_the_generic_encoder() -> None:
    content = "tab\t<script>\u2028"
    generic = SseEvent(3, "chunk", {"sequence": 3, "content": content, "is_final": False}).encode()
    assert encode_chunk(3, content) == generic


def test_unpaired_surrogate_from_upstream_cannot_break_the_frame() -> None:
    expected = 'id: 1\nevent: chunk\ndata: {"sequence":1,"content":"a?b","is_final":false}\n\n'
    assert encode_chunk(1, "a\ud800b").decode("utf-8") == expected


def test_retry_and_keepalive_are_lines_that_never_make_an_event_of_their_own() -> None:
    """Both join the next event's block: a block of their own is an event without data, which
    parsers that keep the last event id (the openai SDK's, httpx-sse's) hand on as empty data."""
    assert RETRY_LINE == b"retry: 2000\n"
    assert KEEPALIVE_FRAME == b": keepalive\n"


@pytest.mark.parametrize(
    "header,query,expected",
    [(None, None, None), ("5", None, 5), (None, "7", 7), ("3", "9", 3), (" 4 ", None, 4), ("", None, None)],
)
def test_last_event_id(header, query, expected) -> None:
    assert parse_last_event_id(header, query) == expected


@pytest.mark.parametrize("raw", ["-1", "1.5", "abc", "1e3", "١٢", "9" * 13])
def test_bad_last_event_id(raw) -> None:
    with pytest.raises(ApiError) as raised:
        parse_last_event_id(raw, None)
    assert raised.value.error_code == "invalid_last_event_id"
