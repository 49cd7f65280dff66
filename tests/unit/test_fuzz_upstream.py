"""Fuzz: what an upstream can send, through ChatWait's own wire code (the transport's response head
and chunked decoding, then the SSE reader). Valid input split anywhere decodes exactly; mutated
input yields text or fails with the provider's error classes, never anything else, and never
holds more than the limits allow. Bounded: a few hundred examples, no deadline."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.providers.base import UpstreamError
from app.providers.deltas import LOGPROBS, Delta
from app.providers.http1.body import ResponseBody
from app.providers.http1.connection import ConnectionClosed
from app.providers.http1.framing import CHUNKED, framing, read_head
from app.providers.openai.stream import OpenAIAttempt

PIECE = 4096  # the largest chunk the valid bodies hold
MAX_LINE = 2048
REQUEST = httpx.Request("POST", "http://upstream.test/v1/chat/completions")


class FedConnection:
    """Stands for a socket connection: each fill() delivers the next piece, then the peer closes."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)
        self.buffer = b""
        self.held = 0  # the most bytes ever buffered at once

    def fill(self) -> None:
        if not self.pieces:
            raise ConnectionClosed()
        self.buffer += self.pieces.pop(0)
        self.held = max(self.held, len(self.buffer))


class Pool:
    def give_back(self, connection: Any, reusable: bool) -> None:
        pass


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _chunked(pieces: list[bytes]) -> bytes:
    return b"".join(b"%x;x=1\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\nTrailer: t\r\n\r\n"


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for at, value in edits:
        if out:
            out[at % len(out)] = value
    return bytes(out)


def _decode(connection: FedConnection) -> bytes:
    body = ResponseBody(Pool(), connection, REQUEST, CHUNKED, True)
    return b"".join(body)


@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(st.binary(max_size=PIECE), max_size=6), cuts=st.lists(st.integers(0, 30_000), max_size=10))
def test_a_valid_chunked_body_split_anywhere_decodes_exactly(pieces: list[bytes], cuts: list[int]) -> None:
    assert _decode(FedConnection(_split(_chunked(pieces), cuts))) == b"".join(pieces)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.binary(max_size=200), max_size=6),
    edits=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 5000), max_size=8),
    junk=st.sampled_from([b"", b"fffffffffff\r\n", b"e8d4a51000\r\n" + b"x" * 9000, b"1" * 100_000]),
)
def test_a_broken_chunked_body_yields_bytes_or_a_protocol_error(pieces, edits, cuts, junk) -> None:
    raw = _mutate(_chunked(pieces), edits) + junk
    connection = FedConnection(_split(raw, cuts))
    try:
        decoded = _decode(connection)
        event("decoded")
    except httpx.RemoteProtocolError:
        event("protocol error")
        decoded = b""
    assert len(decoded) <= len(raw)
    assert connection.held <= len(raw) and connection.held <= 2 * (PIECE + 70_000), "bounded buffering"


def test_a_chunk_larger_than_a_read_is_delivered_as_its_bytes_arrive() -> None:
    """A chunk's size is not bounded and it is not buffered whole: each read's data goes out."""
    reads = [b"%x\r\n" % 100_000 + b"a" * 1000] + [b"a" * 1000] * 98 + [b"a" * 1000 + b"\r\n0\r\n\r\n"]
    connection = FedConnection(reads)
    delivered = list(ResponseBody(Pool(), connection, REQUEST, CHUNKED, True))
    assert b"".join(delivered) == b"a" * 100_000 and len(delivered) == len(reads)
    assert connection.held <= 1010, "never more than one read held"


@settings(max_examples=200, deadline=None)
@given(head=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_any_response_head_parses_or_is_refused(head: bytes, cuts: list[int]) -> None:
    connection = FedConnection(_split(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n", cuts))
    try:
        status, _, headers = read_head(connection)
        framing("POST", status, headers)
    except (ValueError, ConnectionClosed, httpx.RemoteProtocolError):
        return


class FedResponse:
    """Stands for the upstream's httpx response: its headers and its body's blocks."""

    def __init__(self, blocks: list[bytes]) -> None:
        self.headers = httpx.Headers({"x-request-id": "r"})
        self.stream = iter(blocks)

    def close(self) -> None:
        pass


def _generation(blocks: list[bytes]) -> OpenAIAttempt:
    return OpenAIAttempt(FedResponse(blocks), idle_timeout=1.0, max_line=MAX_LINE)


def _sse_chunk(content: Any = None, finish: Any = None, usage: Any = None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        chunk["usage"] = usage
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(max_size=30), max_size=8), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_a_valid_stream_split_anywhere_gives_its_text_exactly(texts: list[str], cuts: list[int]) -> None:
    body = b": ping\n\n" + b"".join(_sse_chunk(t) for t in texts) + _sse_chunk(finish="stop") + b"data: [DONE]\n\n"
    generation = _generation(_split(body.replace(b"\n\n", b"\r\n\r\n", 1), cuts))
    assert "".join(generation) == "".join(texts) and generation.finish_reason == "stop"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(
        st.builds(
            _sse_chunk,
            st.text(max_size=10) | st.none() | json_values,
            st.none() | st.just("stop") | json_values,
            st.none() | st.fixed_dictionaries({"prompt_tokens": json_values, "completion_tokens": st.integers()}),
        )
        | st.binary(max_size=60).map(lambda b: b"data: " + b + b"\n\n")
        | st.binary(max_size=20)
        | st.sampled_from([b"data: [DONE]\n\n", b"data: " + b"[" * 5000 + b"\n", b"x" * 5000, b"\r\n\r\n"]),
        max_size=8,
    ),
    cuts=st.lists(st.integers(0, 20_000), max_size=8),
    ending=st.sampled_from([b"", _sse_chunk(finish="stop") + b"data: [DONE]\n\n"]),
)
def test_any_stream_gives_text_or_a_classified_error(chunks: list[bytes], cuts: list[int], ending: bytes) -> None:
    generation = _generation(_split(b"".join(chunks) + ending, cuts))
    try:
        pieces = list(generation)
        event("complete")
    except UpstreamError as error:
        event(error.error_code)
        assert error.error_code in ("upstream_bad_response", "upstream_interrupted")
        return
    assert all(isinstance(piece, str) and piece for piece in pieces)
    assert isinstance(generation.finish_reason, str)


def _logprobs_chunk(content: str, entries: Any) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": content}, "logprobs": {"content": entries}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


@pytest.mark.parametrize(
    "entries",
    [
        "not a list",
        [{"logprob": -1.0}],  # no token
        [{"token": "a", "logprob": -1.0}] * 257,  # more entries than a chunk holds
        [{"token": "a", "logprob": -1.0, "top_logprobs": [{"token": "b", "logprob": -2.0}] * 21}],
    ],
)
def test_log_probabilities_out_of_shape_or_bounds_are_a_bad_response(entries: Any) -> None:
    body = _logprobs_chunk("a", entries) + _sse_chunk(finish="stop") + b"data: [DONE]\n\n"
    with pytest.raises(UpstreamError) as refused:
        list(_generation([body]))
    assert refused.value.error_code == "upstream_bad_response"


def test_log_probabilities_come_with_their_text() -> None:
    entries = [{"token": "a", "logprob": -1.0, "top_logprobs": []}]
    body = _logprobs_chunk("a", entries) + _sse_chunk("b") + _sse_chunk(finish="stop") + b"data: [DONE]\n\n"
    pieces = list(_generation([body]))
    assert pieces == [Delta(LOGPROBS, "a", data=entries), "b"]


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(min_size=1, max_size=30), max_size=8), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_the_text_before_an_upstream_error_is_handed_on_however_the_body_is_split(
    texts: list[str], cuts: list[int]
) -> None:
    """Pieces come a read at a time; those read before the error event come before the error."""
    body = b"".join(_sse_chunk(t) for t in texts) + b'data: {"error": {"message": "overloaded"}}\n\n'
    got: list[Any] = []
    with pytest.raises(UpstreamError) as failed:
        for batch in _generation(_split(body, cuts)).reads():
            assert batch, "no empty batch"
            got += batch
    assert got == texts and failed.value.error_code == "upstream_interrupted"


def test_the_events_of_one_read_come_as_one_batch() -> None:
    first = _sse_chunk("a") + _sse_chunk("b") + _sse_chunk("c")
    rest = _sse_chunk("d") + _sse_chunk(finish="stop") + b"data: [DONE]\n\n"
    assert list(_generation([first, rest]).reads()) == [["a", "b", "c"], ["d"]]
