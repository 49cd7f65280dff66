"""The worker's own answers: gunicorn's refusals as catalogue errors, the JSON response bytes,
request bodies under a deadline, and the order of a graceful stop."""

from __future__ import annotations

import io
import json
import time

import gevent
import pytest
from gunicorn.http import errors as parse_errors

from app.errors import ApiError, RequestBodyError, RequestReadTimeout
from app.server import shutdown
from app.server.head_limit import HeadLimitSocket
from app.server.protocol import error_response, refusal, request_path
from app.server.request_body import DeadlineBody


@pytest.mark.parametrize(
    "exc,code,status",
    [
        (parse_errors.InvalidHeader("CONTENT-LENGTH"), "bad_http_request", 400),
        (parse_errors.InvalidHeader("TRANSFER-ENCODING"), "bad_http_request", 400),
        (parse_errors.InvalidHeader("X-ODD"), "bad_http_request", 400),
        (parse_errors.InvalidHeaderName("a b"), "bad_http_request", 400),
        (parse_errors.ObsoleteFolding("X"), "bad_http_request", 400),
        (parse_errors.InvalidRequestLine("x"), "bad_http_request", 400),
        (parse_errors.InvalidRequestMethod("x"), "bad_http_request", 400),
        (parse_errors.InvalidHTTPVersion("x"), "bad_http_request", 400),
        (parse_errors.InvalidChunkSize(b"zz"), "bad_http_request", 400),
        (parse_errors.ChunkMissingTerminator(b"xx"), "bad_http_request", 400),
        (parse_errors.InvalidChunkExtension("x"), "bad_http_request", 400),
        (parse_errors.LimitRequestLine(9000, 4094), "request_line_too_long", 414),
        (parse_errors.LimitRequestHeaders("x"), "headers_too_large", 431),
        (parse_errors.UnsupportedTransferCoding("gzip"), "unsupported_transfer_encoding", 501),
        (parse_errors.ExpectationFailed("x"), "expectation_failed", 417),
        (parse_errors.InvalidResponseHeader("x"), "internal_error", 500),
        (RuntimeError("a bug"), "internal_error", 500),
    ],
)
def test_every_refusal_is_a_catalogue_error_in_our_own_words(exc, code, status) -> None:
    error = refusal(exc)
    assert (error.error_code, error.status) == (code, status)
    assert "a b" not in (error.detail or "") and "zz" not in (error.detail or ""), "client bytes are not echoed"


def test_the_response_is_complete_json_that_closes_the_connection() -> None:
    raw = error_response(ApiError("request_timeout", "slow"), "cid")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Connection: close" in head and b"Content-Type: application/json" in head
    assert b"Content-Length: %d" % len(body) in head and b"X-Correlation-Id: cid" in head
    assert json.loads(body)["error_code"] == "request_timeout"
    assert error_response(ApiError("request_timeout", "slow"), "cid", body=False) == head + b"\r\n\r\n"
    assert b"Retry-After: 2" in error_response(ApiError("server_busy"), "cid")


class SlowBody:
    """Stands for gunicorn's Body: reads take `delay` seconds, or raise `error`."""

    def __init__(self, delay: float = 0.0, error: BaseException | None = None) -> None:
        self.delay, self.error = delay, error
        self.failed = False

    def read(self, size=None) -> bytes:
        gevent.sleep(self.delay)
        if self.error is not None:
            self.failed = True
            raise self.error
        return b"x"

    readline = read


def test_a_body_read_past_its_deadline_fails_and_asks_to_close() -> None:
    closes: list[bool] = []
    body = DeadlineBody(SlowBody(delay=5), 0.05, lambda: closes.append(True))
    with pytest.raises(RequestReadTimeout) as raised:
        body.read(10)
    assert raised.value.error.error_code == "request_timeout" and isinstance(raised.value, TimeoutError)
    assert closes == [True]
    with pytest.raises(RequestReadTimeout):
        body.readline()  # the deadline has passed: at once


@pytest.mark.parametrize(
    "error,code",
    [
        (parse_errors.InvalidChunkSize(b"zz"), "bad_http_request"),
        (parse_errors.NoMoreData(b""), "bad_http_request"),
        (ConnectionResetError(), "bad_http_request"),
        (TimeoutError(), "request_timeout"),
    ],
)
def test_a_body_that_breaks_is_a_catalogue_error(error, code) -> None:
    closes: list[bool] = []
    body = DeadlineBody(SlowBody(error=error), 5, lambda: closes.append(True))
    with pytest.raises(RequestBodyError) as raised:
        body.read()
    assert raised.value.error.error_code == code and closes == [True] and body.failed


def test_past_its_deadline_a_body_still_reads_what_needs_no_wait() -> None:
    """The deadline bounds waiting for the client, not the request's life: once answered (long
    after its head), what is left of a body already in hand drains without failing."""
    body = DeadlineBody(io.BytesIO(b"rest"), 0.01, lambda: None)
    time.sleep(0.05)
    assert body.read() == b"rest" and body.read() == b"" and not body.failed


def test_a_body_in_time_reads_through() -> None:
    body = DeadlineBody(io.BytesIO(b"a\nb\n"), 5, lambda: None)
    assert list(body) == [b"a\n", b"b\n"]


class FakePool:
    def __init__(self, busy: int) -> None:
        self.size, self.busy = 100, busy

    def free_count(self) -> int:
        return self.size - self.busy


class FakeServer:
    def __init__(self, busy: int) -> None:
        self.pool = FakePool(busy)
        self.calls: list[str] = []

    def close(self) -> None:
        self.calls.append("close")

    def stop(self, timeout: float) -> None:
        self.calls.append("stop")


class FakeLifecycle:
    def __init__(self, running: int, server: FakeServer, finishes_after: float | None, durable: bool = False) -> None:
        self.running, self.server, self.calls = running, server, []
        self.finishes_after = finishes_after
        self.durable = durable
        self.unwritten = False  # frames its clients were shown that the store does not hold yet

    def stop_accepting(self) -> None:
        self.calls.append("stop_accepting")
        if self.finishes_after is not None:
            gevent.spawn_later(self.finishes_after, self._finish)

    def _finish(self) -> None:
        self.running = 0

    def generating(self) -> int:
        return self.running

    def end_generations(self) -> None:
        self.calls.append("end_generations")
        self._finish()
        self.server.pool.busy = 0  # the followers wrote their terminal events and left

    def flushed(self) -> bool:
        self.calls.append("settled")
        return not self.unwritten


def test_generations_that_finish_in_the_grace_are_not_ended() -> None:
    server = FakeServer(busy=3)
    lifecycle = FakeLifecycle(3, server, finishes_after=0.2)
    shutdown.drain([server], lifecycle, graceful_seconds=2.0, heartbeat=lambda: None)
    assert "end_generations" not in lifecycle.calls and server.calls[0] == "close" and server.calls[-1] == "stop"


def test_generations_still_running_at_the_deadline_are_ended_before_the_stop() -> None:
    server = FakeServer(busy=3)
    lifecycle = FakeLifecycle(3, server, finishes_after=None)
    beats: list[bool] = []
    # The generations get until 2 s (the deadline less a margin): a beat falls due at 1 s whatever the machine's load.
    shutdown.drain([server], lifecycle, graceful_seconds=4.0, heartbeat=lambda: beats.append(True))
    assert lifecycle.calls[:2] == ["stop_accepting", "end_generations"]
    assert server.calls == ["close", "stop"] and beats, "the master heard from the worker meanwhile"


@pytest.mark.parametrize("written_after", [0.3, None])
def test_a_worker_stays_until_the_store_holds_what_its_clients_were_shown(written_after) -> None:
    """Redis paused across a deploy: the generations ended and their clients left, but Redis
    has yet to take their last frames. The worker stays until it has (or until the deadline):
    gone before, it would leave Redis to end those streams otherwise than their clients saw."""
    server = FakeServer(busy=0)
    lifecycle = FakeLifecycle(0, server, finishes_after=None, durable=True)
    lifecycle.unwritten = True
    if written_after is not None:
        gevent.spawn_later(written_after, setattr, lifecycle, "unwritten", False)
    started = time.monotonic()
    shutdown.drain([server], lifecycle, graceful_seconds=2.0, heartbeat=lambda: None)
    stayed = time.monotonic() - started
    assert server.calls[-1] == "stop" and lifecycle.calls[-1] == "settled"
    if written_after is None:
        assert stayed >= 1.0 and lifecycle.unwritten, "stayed until the deadline (graceful less the stop)"
    else:
        assert stayed >= written_after and not lifecycle.unwritten, "stayed until the store had it"


@pytest.mark.parametrize(("durable", "ended"), [(False, True), (True, False)])
def test_generations_nobody_follows_get_the_grace_only_when_streams_outlive_the_worker(
    durable: bool, ended: bool
) -> None:
    """Memory store: with no connection left, nobody can ever read a generation, so it ends at
    once. Redis store: its stream stays resumable elsewhere, so it gets the grace to finish."""
    server = FakeServer(busy=0)
    lifecycle = FakeLifecycle(3, server, finishes_after=0.3, durable=durable)
    shutdown.drain([server], lifecycle, graceful_seconds=3.0, heartbeat=lambda: None)
    assert ("end_generations" in lifecycle.calls) is ended


class Chunks:
    """Stands for a socket: each recv returns the next block."""

    def __init__(self, *blocks: bytes) -> None:
        self.blocks = list(blocks)

    def recv(self, size: int) -> bytes:
        return self.blocks.pop(0)

    def gettimeout(self) -> float:
        return 3.0


def test_a_head_over_its_budget_is_refused_and_bodies_are_not_counted() -> None:
    reader = HeadLimitSocket(Chunks(*[b"x" * 8192] * 20), limit=16384)
    reader.reading_head()
    for _ in range(3):  # the budget, and one recv that may carry what follows the head
        reader.recv(8192)
    with pytest.raises(parse_errors.LimitRequestHeaders):
        reader.recv(8192)
    assert refusal(parse_errors.LimitRequestHeaders("x")).status == 431
    reader.done()
    for _ in range(10):  # a body: no budget
        reader.recv(8192)
    assert reader.gettimeout() == 3.0


@pytest.mark.parametrize(
    "start,path",
    [
        (b"GET /v1/responses/" + b"r" * 46, "/v1/responses/" + "r" * 46),
        (b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\n", "/v1/chat/completions"),
        (b"GET /v1/chat/wait HTTP/1.1\n", "/v1/chat/wait"),
        (b"NOT-HTTP\r\n\r\n", ""),
        (b"GET", ""),
        (b"GET http://host/v1/models HTTP/1.1\r\n", ""),
        (b"\xff\xfe /\xff\x00 x", "/\xff\x00"),
        (b"", ""),
    ],
    ids=["cut_long_path", "query", "bare_lf", "garbage", "method_only", "absolute_form", "binary", "empty"],
)
def test_a_refusal_finds_its_path_in_the_start_of_the_head(start, path) -> None:
    assert request_path(start) == path


def test_the_head_keeps_only_its_first_bytes_and_a_refusal_takes_their_shape() -> None:
    reader = HeadLimitSocket(Chunks(b"GET /v1/", b"responses/" + b"r" * 5000), limit=16384)
    reader.reading_head(b"")
    reader.recv(8192)
    reader.recv(8192)
    assert len(reader.start) == 64 and request_path(reader.start).startswith("/v1/responses/r")
    reader.reading_head(b"POST /v1/chat/wait HTTP/1.1\r\n")  # a pipelined head, already read
    assert request_path(reader.start) == "/v1/chat/wait"
    error = ApiError("request_line_too_long")
    openai = json.loads(error_response(error, "cid", path="/v1/responses/x").split(b"\r\n\r\n", 1)[1])
    native = json.loads(error_response(error, "cid", path="/v1/chat/wait").split(b"\r\n\r\n", 1)[1])
    assert openai["error"]["code"] == "request_line_too_long" and native["error_code"] == "request_line_too_long"


def test_a_worker_reads_each_of_gunicorns_settings_once() -> None:
    """The settled view answers what gunicorn's Config answers (settings and properties alike),
    and asks the Config once per name."""
    from gunicorn.config import Config

    from app.server.worker import SettledConfig

    config = Config()
    config.set("keepalive", 7)
    asked: list[str] = []

    class Counting:
        def __getattr__(self, name: str):
            asked.append(name)
            return getattr(config, name)

    settled = SettledConfig(Counting())
    for _ in range(3):
        assert settled.keepalive == 7 and settled.is_ssl == config.is_ssl
        assert settled.limit_request_fields == config.limit_request_fields
    assert asked == ["keepalive", "is_ssl", "limit_request_fields"]
