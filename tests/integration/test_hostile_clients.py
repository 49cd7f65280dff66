"""Hostile and broken clients over raw sockets against a real gunicorn: request smuggling, HEAD,
slow heads and bodies, header floods, a client that never reads. Each answer is the catalogue's
JSON; nothing hangs; /health answers throughout; the worker's memory stays bounded."""

from __future__ import annotations

import json
import socket
import time
import uuid

import httpx
import pytest

from ..conformance import conform
from ..rawhttp import HealthProbe, connect, read_until_close, responses
from ..sse import content_of, expected_reply, parse

pytestmark = pytest.mark.integration

HIDDEN = b"GET /health?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n"
WAIT = b"POST /v1/chat/wait HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def edgy(fake):
    """A server with short deadlines, so that slow clients are cut within the test's time."""
    from harness.processes import ChatWaitServer

    from ..conftest import server_env

    running = ChatWaitServer(
        server_env(
            fake.base_url, REQUEST_READ_TIMEOUT_SECONDS="1", CLIENT_WRITE_TIMEOUT_SECONDS="1.5", MAX_TOKENS="200000"
        )
    )
    yield running
    running.stop()


def _exchange(port: int, raw: bytes) -> list:
    with connect(port) as sock:
        sock.sendall(raw)
        return responses(read_until_close(sock))


def _refused(answers: list, status: int, code: str) -> None:
    """Exactly one answer: the catalogue's JSON, and the connection closed after it."""
    assert [a.status for a in answers] == [status], answers
    body = answers[0].json()
    assert body["error_code"] == code and body["message"] and body["detail"] and body["action"]
    assert answers[0].headers["connection"] == "close"
    assert answers[0].headers["x-correlation-id"] == body["correlation_id"]


BODY = b'{"message": "hi @tokens=2"}'
SMUGGLING = {
    "cl_and_te": WAIT + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
    "te_and_cl": WAIT + b"Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n" + HIDDEN,
    "space_before_colon": WAIT + b"Content-Length : %d\r\n\r\n" % len(BODY) + BODY + HIDDEN,
    "two_lengths": WAIT + b"Content-Length: %d\r\nContent-Length: 3\r\n\r\n" % len(BODY) + BODY + HIDDEN,
    "two_equal_lengths": WAIT + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(BODY), len(BODY)) + BODY,
    "length_with_sign": WAIT + b"Content-Length: +%d\r\n\r\n" % len(BODY) + BODY + HIDDEN,
    "te_not_chunked_last": WAIT + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + HIDDEN,
    "te_twice": WAIT + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
    "te_http10": b"POST /v1/chat/wait HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
    "te_obfuscated": WAIT + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + HIDDEN,
    "folded_header": WAIT + b"Content-Length: %d\r\n X-Fold: y\r\n\r\n" % len(BODY) + BODY + HIDDEN,
    "bare_lf": b"POST /v1/chat/wait HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}" + HIDDEN,
    "nul_in_header": WAIT + b"X-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}" + HIDDEN,
}


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_ambiguous_framing_is_refused_and_the_hidden_request_never_answered(edgy, name) -> None:
    answers = _exchange(edgy.port, SMUGGLING[name])
    expected = 501 if name == "te_obfuscated" else 400
    _refused(answers, expected, "unsupported_transfer_encoding" if expected == 501 else "bad_http_request")


@pytest.mark.parametrize(
    "body",
    [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n", b"0x2\r\n{}\r\n0\r\n\r\n", b"2;a=\x01\r\n{}\r\n0\r\n\r\n"],
)
def test_a_malformed_chunked_body_gets_one_400_and_the_connection_closes(edgy, body) -> None:
    answers = _exchange(edgy.port, WAIT + b"Transfer-Encoding: chunked\r\n\r\n" + body + HIDDEN)
    _refused(answers, 400, "bad_http_request")


def test_a_malformed_body_nobody_reads_gets_no_second_answer(edgy) -> None:
    """The route refuses the method before reading; the bad body is found when it is drained."""
    raw = b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + HIDDEN
    answers = _exchange(edgy.port, raw)
    assert [a.status for a in answers] == [405]
    assert answers[0].json()["error_code"] == "method_not_allowed"


def test_a_chunked_body_is_read(edgy) -> None:
    raw = WAIT + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    answers = _exchange(edgy.port, raw)
    assert [a.status for a in answers] == [200]
    assert answers[0].json()["content"] == expected_reply(2)


def test_expect_100_continue(edgy) -> None:
    with connect(edgy.port) as sock:
        sock.sendall(WAIT + b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(BODY))
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(BODY)
        assert responses(read_until_close(sock))[0].status == 200


def test_head_answers_the_head_only_and_does_not_follow_the_stream(edgy, http) -> None:
    with httpx.Client(base_url=edgy.url, timeout=30) as client:
        message = f"{uuid.uuid4().hex} @tokens=500 @delay_ms=20"  # 10 s of reply
        with client.stream("POST", "/v1/chat/streaming", json={"message": message}) as live:
            stream_id = live.headers["x-stream-id"]
            with connect(edgy.port) as sock:
                sock.sendall(b"HEAD /v1/chat/streaming/%s HTTP/1.1\r\nHost: x\r\n\r\n" % stream_id.encode())
                sock.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answers = responses(read_until_close(sock), head_only=True)
            client.delete(f"/v1/chat/streaming/{stream_id}")
    assert [a.status for a in answers] == [200, 200], "no body after a head: the next answer follows at once"
    assert answers[0].headers["content-type"].startswith("text/event-stream")
    assert answers[0].headers["x-stream-id"] == stream_id
    assert "content-length" not in answers[0].headers and "transfer-encoding" not in answers[0].headers


def _dribble(port: int, start: bytes, byte: bytes) -> list:
    """Send `start`, then one byte every 0.3 s (each recv is quick, the request never completes)."""
    with connect(port) as sock:
        sock.sendall(start)
        for _ in range(8):
            try:
                sock.sendall(byte)
            except OSError:
                break
            time.sleep(0.3)
        return responses(read_until_close(sock))


@pytest.mark.parametrize(
    "start,byte,detail",
    [
        (b"POST /v1/chat/wait HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a", "request head"),
        (WAIT + b"Content-Length: 200\r\n\r\n{", b" ", "request body"),
    ],
    ids=["head", "body"],
)
def test_a_slow_request_is_cut_with_408(edgy, start, byte, detail) -> None:
    with HealthProbe(edgy.url, f"slow {detail}"):
        answers = _dribble(edgy.port, start, byte)
    _refused(answers, 408, "request_timeout")
    assert detail in answers[0].json()["detail"] and "REQUEST_READ_TIMEOUT_SECONDS" in answers[0].json()["detail"]


def test_a_connection_that_sends_nothing_is_closed_without_a_word(edgy) -> None:
    with connect(edgy.port) as sock:
        assert read_until_close(sock) == b""


def _headers(count: int, value: bytes = b"v") -> bytes:
    return b"".join(b"X-%d: %s\r\n" % (i, value) for i in range(count))


@pytest.mark.parametrize(
    "raw,status,code",
    [
        (b"GET /health HTTP/1.1\r\n" + _headers(51) + b"\r\n", 431, "headers_too_large"),
        (b"GET /health HTTP/1.1\r\n" + _headers(500) + b"\r\n", 431, "headers_too_large"),
        (b"GET /health HTTP/1.1\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
        (b"GET /health HTTP/1.1\r\n" + _headers(49, b"v" * 8000), 431, "headers_too_large"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414, "request_line_too_long"),
        (b"NOT-HTTP\r\n\r\n", 400, "bad_http_request"),
        (b"GET /health HTTP/3.0\r\n\r\n", 400, "bad_http_request"),
    ],
    ids=["51_headers", "500_headers", "long_header", "400_KB_head", "long_line", "garbage", "bad_version"],
)
def test_protocol_errors_are_json_and_logged_without_traceback(edgy, raw, status, code) -> None:
    _refused(_exchange(edgy.port, raw), status, code)
    records = edgy.log_records()
    assert any(r["event"] == "request_rejected" and r.get("error_code") == code for r in records)
    assert not any("Traceback" in json.dumps(r) for r in records)


@pytest.mark.parametrize(
    "raw,status,code",
    [
        (b"GET /v1/responses/" + b"r" * 5000 + b" HTTP/1.1\r\n\r\n", 414, "request_line_too_long"),
        (b"POST /v1/chat/completions HTTP/1.1\r\n" + _headers(51) + b"\r\n", 431, "headers_too_large"),
        (b"GET /v1/models HTTP/1.1\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n", 431, "headers_too_large"),
    ],
    ids=["long_responses_path", "51_headers_on_completions", "long_header_on_models"],
)
def test_protocol_errors_on_openai_paths_take_openais_shape(edgy, raw, status, code) -> None:
    answers = _exchange(edgy.port, raw)
    assert [a.status for a in answers] == [status], answers
    body = answers[0].json()
    conform("OpenAIError", body)
    assert body["error"]["code"] == code and body["error"]["type"] == "invalid_request_error"
    assert answers[0].headers["x-correlation-id"] == body["error"]["correlation_id"]
    assert answers[0].headers["connection"] == "close"


def test_two_thousand_slow_heads_do_not_stop_the_worker(edgy) -> None:
    """Each holds a connection for at most REQUEST_READ_TIMEOUT_SECONDS; /health answers meanwhile."""
    socks = []
    try:
        with HealthProbe(edgy.url, "2000 slow heads"):
            for _ in range(2000):
                sock = connect(edgy.port)
                sock.sendall(b"GET /health HTTP/1.1\r\nX-Slow: ")
                socks.append(sock)
            time.sleep(2.5)  # past the deadline
        answered = 0
        for sock in socks:
            data = read_until_close(sock)
            answered += data.startswith(b"HTTP/1.1 408")
        assert answered == len(socks), "every slow head was answered 408 and closed"
    finally:
        for sock in socks:
            sock.close()


def test_unfinished_header_blocks_cost_bounded_memory(edgy) -> None:
    """30 heads of 60 KB that never end (just within REQUEST_MAX_HEAD_BYTES, 64 KB): bounded
    memory, freed at the deadline, and the loop stays free for /health."""
    socks = []
    try:
        with HealthProbe(edgy.url, "30 unfinished heads of 60 KB", master_pid=edgy.proc.pid) as probe:
            for _ in range(30):
                sock = connect(edgy.port)
                sock.sendall(b"GET /health HTTP/1.1\r\n")
                socks.append(sock)
            block = _headers(7, b"v" * 8000) + b"X-Last: v"
            for sock in socks:
                sock.sendall(block)
            for sock in socks:
                assert read_until_close(sock).startswith(b"HTTP/1.1 408")
    finally:
        for sock in socks:
            sock.close()
    growth = probe.peak_rss_kb - probe.idle_rss_kb
    assert growth < 50_000, f"RSS grew {growth} KB"


def test_a_client_that_stops_reading_is_disconnected_and_its_stream_stays_resumable(edgy) -> None:
    message = f"{uuid.uuid4().hex} @tokens=1500 @tokbytes=4000"  # 6 MB: more than the socket buffers hold
    body = json.dumps({"message": message, "max_tokens": 200000}).encode()
    with connect(edgy.port, rcvbuf=4096) as sock:
        sock.sendall(b"POST /v1/chat/streaming HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        sock.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        head = sock.recv(4096)
        stream_id = head.split(b"X-Stream-Id: ")[1].split(b"\r\n")[0].decode()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _logged(edgy, "client_timeout"):
            time.sleep(0.2)  # never reading
    assert _logged(edgy, "client_timeout"), "the worker cut the client that does not read"
    with httpx.Client(base_url=edgy.url, timeout=30) as client:
        events, _ = parse(client.get(f"/v1/chat/streaming/{stream_id}").content)
    assert events[-1].event == "done" and content_of(events) == "x" * 4000 * 1500


def test_a_client_that_pauses_gets_every_byte_once(edgy) -> None:
    """A client that stops reading for a while (less than CLIENT_WRITE_TIMEOUT_SECONDS): its
    socket fills up, the producer's write of a token finds it full, the follower writes what it
    left before anything else (app.streaming.direct), and the backlog follows through the server."""
    tokens, size = 14, 900_000  # 12.6 MB, a token every 100 ms: more than the socket buffers hold
    message = f"{uuid.uuid4().hex} @tokens={tokens} @tokbytes={size} @delay_ms=100"
    body = json.dumps({"message": message, "max_tokens": 200000}).encode()
    raw = bytearray()
    with connect(edgy.port, rcvbuf=4096) as sock:
        sock.sendall(b"POST /v1/chat/streaming HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        sock.sendall(b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        raw += sock.recv(4096)
        time.sleep(1.0)
        raw += read_until_close(sock)
    [answer] = responses(bytes(raw))
    events, _ = parse(answer.body)
    assert events[-1].event == "done"
    chunks = [event for event in events if event.event == "chunk"]
    assert [event.data["sequence"] for event in chunks] == list(range(1, tokens + 1)), "each once, in order"
    assert content_of(events) == "x" * size * tokens


def _logged(server, event: str) -> bool:
    return any(r.get("event") == event for r in server.log_records())


def test_a_reset_mid_request_is_not_an_error(edgy) -> None:
    with connect(edgy.port) as sock:
        sock.sendall(WAIT + b"Content-Length: 100\r\n\r\n{")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    time.sleep(0.3)
    assert httpx.get(f"{edgy.url}/health", timeout=5).status_code == 200
    assert not any(r["level"] == "ERROR" for r in edgy.log_records())


def _keeps_alive_after(port: int, first: bytes) -> list:
    """Send `first` on a kept-alive connection, read its whole answer, then send a second request
    on the same connection: both are answered."""
    with connect(port, timeout=30) as sock:
        sock.sendall(first)
        data = b""
        while not _complete(data):
            block = sock.recv(65536)
            assert block, f"closed after the first answer: {data[-300:]!r}"
            data += block
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return responses(data + read_until_close(sock))


def _complete(data: bytes) -> list:
    """The responses in `data` once the first one is whole (an SSE body ends with its chunked end)."""
    if b"\r\n\r\n" not in data:
        return []
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    if b"transfer-encoding: chunked" in head and not data.endswith(b"\r\n0\r\n\r\n"):
        return []
    try:
        return responses(data)
    except (AssertionError, ValueError):
        return []


@pytest.mark.parametrize("path", ["/v1/chat/streaming", "/v1/chat/wait"])
def test_a_connection_stays_usable_after_a_response_longer_than_the_read_deadline(edgy, path) -> None:
    """REQUEST_READ_TIMEOUT_SECONDS (1 s here) bounds reading a request, not the life of the
    connection: an answer that takes 2 s is followed by another request on the same connection."""
    body = json.dumps({"message": f"{uuid.uuid4().hex} @tokens=20 @delay_ms=100"}).encode()
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % path.encode()
    answers = _keeps_alive_after(edgy.port, head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert [a.status for a in answers] == [200, 200]
    assert answers[0].headers.get("connection", "keep-alive").lower() != "close"


def test_chunk_size_lines_ending_in_a_bare_lf_are_refused_at_once(edgy) -> None:
    """A chunked body whose size lines end in LF alone is malformed (RFC 9112): 400 at once, not
    a wait for a CRLF until the body's deadline."""
    with connect(edgy.port) as sock:
        sock.sendall(WAIT + b"Transfer-Encoding: chunked\r\n\r\n%x\n%s\n0\n\n" % (len(BODY), BODY))
        answers = responses(read_until_close(sock))
    _refused(answers, 400, "bad_http_request")  # not 408: the body's deadline did not have to pass
    assert "chunk" in answers[0].json()["detail"].lower()
