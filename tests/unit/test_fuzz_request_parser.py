"""Fuzz: requests built from real and hostile pieces, mutated and split anywhere, through the
parser the worker uses (gunicorn's) and the body reader it wraps. Every input either parses,
within the limits and with one unambiguous framing, or fails with an error the worker answers
from the catalogue; nothing else may escape. Bounded: a few hundred examples, no deadline."""

from __future__ import annotations

import itertools

from gunicorn.config import Config
from gunicorn.http.errors import NoMoreData, ParseException
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.errors import RequestBodyError
from app.server.parser import StrictRequestParser
from app.server.protocol import refusal
from app.server.request_body import DeadlineBody

FIELDS = 50
FIELD_SIZE = 8190

CONFIG = Config()
CONFIG.set("limit_request_fields", FIELDS)
CONFIG.set("limit_request_field_size", FIELD_SIZE)
CONFIG.set("limit_request_line", 4094)


def mostly(good: list[bytes], bad: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """One of `good` 39 times in 40, else something from `bad`."""
    return st.integers(0, 39).flatmap(lambda n: bad if n == 39 else st.sampled_from(good))


# Coherent fields mostly, the framing ones that smuggling plays on often, and hostile ones.
FIELDS_SEEN = [
    b"Host: x",
    b"Content-Type: application/json",
    b"Connection: keep-alive",
    b"Connection: close",
    b"X-A: b",
    b"Content-Length: 0",
    b"Content-Length: 5",
    b"Content-Length: 12",
    b"Transfer-Encoding: chunked",
    b"Expect: 100-continue",
]
HOSTILE_FIELDS = [
    b"Content-Length: +5",
    b"Content-Length: 5, 5",
    b"Content-Length : 5",
    b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: chunked, identity",
    b"Transfer-Encoding: xchunked",
    b" X-Folded: y",
    b"X-A:\tb\t",
]
CRLF = [b"\r\n"]

header = st.tuples(
    mostly(FIELDS_SEEN, st.sampled_from(HOSTILE_FIELDS) | st.binary(max_size=20)),
    mostly(CRLF, st.sampled_from([b"\n", b"\r", b"\r\n "])),
)
chunk = st.binary(max_size=40).map(lambda data: b"%x\r\n%s\r\n" % (len(data), data))
body = st.lists(chunk, max_size=4).map(lambda chunks: b"".join(chunks) + b"0\r\n\r\n") | st.binary(max_size=60)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(mostly([b"GET", b"POST", b"HEAD", b"DELETE"], st.binary(max_size=8)))
    target = draw(mostly([b"/health", b"/v1/chat/wait", b"/v1/chat/streaming/x"], st.binary(max_size=10)))
    version = draw(mostly([b"HTTP/1.1", b"HTTP/1.0"], st.binary(max_size=9)))
    raw = method + b" " + target + b" " + version + draw(mostly(CRLF, st.just(b"\n")))
    raw += b"".join(b"".join(parts) for parts in draw(st.lists(header, max_size=8)))
    raw += draw(mostly(CRLF, st.just(b"\n"))) + draw(body)
    if draw(st.booleans()):
        raw = _mutate(draw, raw)
    return raw * draw(st.integers(1, 2))


def _mutate(draw: st.DrawFn, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.sampled_from([b"\r\n", b"\n", b"\x00", b" ", b":", b"0\r\n\r\n"]))
        else:
            del data[at]
    return bytes(data)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _serve(pieces: list[bytes]) -> tuple[list[tuple[str, bytes]], BaseException | None]:
    """What the worker's loop does with a connection's bytes: the requests served and their
    bodies, in order, and the exception that ended the connection (None: four were served)."""
    parser = StrictRequestParser(CONFIG, iter(pieces), ("127.0.0.1", 1))
    served: list[tuple[str, bytes]] = []
    try:
        for _ in range(4):
            request = next(parser)
            names = [name for name, _ in request.headers]
            assert not ("CONTENT-LENGTH" in names and "TRANSFER-ENCODING" in names), "ambiguous framing accepted"
            assert names.count("CONTENT-LENGTH") <= 1 and len(names) <= FIELDS
            assert all(len(name) + len(value) <= FIELD_SIZE + 2 for name, value in request.headers)
            request.body = DeadlineBody(request.body, 5.0, request.force_close)
            data = b""
            while block := request.body.read(1024):
                data += block
            served.append((request.method, data))
    except (StopIteration, NoMoreData, RequestBodyError, ParseException) as ended:
        return served, ended
    return served, None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=requests(), cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_any_request_parses_or_is_refused_from_the_catalogue(raw: bytes, cuts: list[int]) -> None:
    served, ended = _serve(_split(raw, cuts))
    event(f"served {min(len(served), 2)}+" if len(served) >= 2 else f"served {len(served)}")
    if isinstance(ended, RequestBodyError):
        assert ended.error.status in (400, 408)
    elif isinstance(ended, ParseException):
        assert refusal(ended).error_code != "internal_error", f"{type(ended).__name__} has no catalogue answer"
        event(f"then refused: {refusal(ended).error_code}")
    assert len(raw) >= sum(len(data) for _, data in served)


@settings(max_examples=100, deadline=None)
@given(pieces=st.lists(st.binary(min_size=0, max_size=30), max_size=5), cuts=st.lists(st.integers(0, 500), max_size=8))
def test_a_valid_chunked_body_split_anywhere_reads_back_exactly(pieces: list[bytes], cuts: list[int]) -> None:
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"
    raw = b"POST /v1/chat/wait HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + encoded
    assert _serve_one(_split(raw, cuts)) == b"".join(pieces)


def _serve_one(pieces: list[bytes]) -> bytes:
    request = next(StrictRequestParser(CONFIG, iter(pieces), ("127.0.0.1", 1)))
    body = DeadlineBody(request.body, 5.0, request.force_close)
    return body.read()
