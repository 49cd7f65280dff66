"""Request headers parsed without the email package: the same message as gevent's pywsgi builds."""

from __future__ import annotations

import io
from http import client

import pytest
from gevent import pywsgi
from hypothesis import given, settings
from hypothesis import strategies as st

from app.server.requestheaders import parse_headers

ENDINGS = st.sampled_from(["\r\n", "\n", "\r"])
NAME_CHARS = st.sampled_from(list("Content-TypeXxy_09:@ \t\x7f\xe9F"))
VALUE_PIECES = st.sampled_from([*"abc /=;,:\t \xe9\x85\x1c\r\n", "From "])
VALUES = st.lists(VALUE_PIECES, max_size=8).map("".join)
LINES = st.one_of(
    st.tuples(st.text(NAME_CHARS, max_size=8), st.just(":"), VALUES).map("".join),
    VALUES.map(lambda value: " " + value),  # a continuation
    VALUES.map(lambda value: "From " + value),
    VALUES,  # anything
)


def _both(block: bytes) -> tuple[object, object, bytes, bytes]:
    """gevent's message and ours for the same bytes, and what each left unread."""
    theirs_file, ours_file = io.BytesIO(block), io.BytesIO(block)
    theirs, ours = pywsgi.headers_factory(theirs_file), parse_headers(ours_file)
    return theirs, ours, theirs_file.read(), ours_file.read()


def _same(block: bytes) -> None:
    theirs, ours, theirs_rest, ours_rest = _both(block)
    assert type(ours) is type(theirs)
    assert list(ours.raw_items()) == list(theirs.raw_items())
    assert ours.status == theirs.status
    assert list(ours.headers) == list(theirs.headers)
    for name in ("content-type", "Content-Length", "connection", "transfer-encoding"):
        assert ours.get(name) == theirs.get(name)
    assert ours.typeheader == theirs.typeheader
    assert ours_rest == theirs_rest


def test_a_usual_request_head() -> None:
    block = (
        b"Host: 127.0.0.1:8000\r\nContent-Type: application/json\r\nContent-Length: 63\r\n"
        b"X-Correlation-Id: abc\r\nAccept: */*\r\n\r\n{\"message\": \"hi\"}"
    )
    _same(block)
    ours = parse_headers(io.BytesIO(block))
    assert list(ours.raw_items())[:3] == [
        ("Host", "127.0.0.1:8000"),
        ("Content-Type", "application/json"),
        ("Content-Length", "63"),
    ]


@pytest.mark.parametrize(
    "block",
    [
        b"X-Folded: first\r\n  second\r\n\tthird\r\nHost: h\r\n\r\n",  # continuations
        b" leading continuation\r\nHost: h\r\n\r\n",
        b"From somebody\r\nHost: h\r\nFrom middle\r\n more\r\nX: y\r\n\r\n",  # envelope lines
        b"Host: h\r\nNot a header line\r\nX-After: ignored\r\n\r\n",  # the block ends there
        b"Bad Name: x\r\nHost: h\r\n\r\n",
        b": no name\r\n cont\r\nHost: h\r\n\r\n",
        b":a:b\r\nHost: h\r\n\r\n",
        b"Host:h\rX-Cr: only\nX-Lf: only\r\n\r\n",  # CR and LF alone end lines too
        b"X-Spaces:   \t  padded \t \r\nX-Empty:\r\n\r\n",
        b"X-Latin: \xe9t\xe9\x85\r\n\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"Host: h\r\n",  # the connection closed before the blank line
        b"",
        b"\r\n",
    ],
)
def test_odd_header_blocks_parse_as_gevent_parses_them(block: bytes) -> None:
    _same(block)


def test_a_line_over_the_limit_is_refused_as_gevent_refuses_it() -> None:
    block = b"X-Long: " + b"a" * 70000 + b"\r\n\r\n"
    theirs, ours, _, _ = _both(block)
    assert ours.status == theirs.status == "Line too long"
    assert list(ours.raw_items()) == list(theirs.raw_items()) == []


def test_too_many_headers_raise_as_in_gevent() -> None:
    block = b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n"
    with pytest.raises(client.HTTPException, match="more than 100 headers"):
        pywsgi.headers_factory(io.BytesIO(block))
    with pytest.raises(client.HTTPException, match="more than 100 headers"):
        parse_headers(io.BytesIO(block))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(LINES, ENDINGS), max_size=8), st.sampled_from(["\r\n", "\n", ""]))
def test_any_header_block_parses_as_gevent_parses_it(lines: list[tuple[str, str]], end: str) -> None:
    block = "".join(line + ending for line, ending in lines) + end
    _same(block.encode("iso-8859-1") + b"body")
