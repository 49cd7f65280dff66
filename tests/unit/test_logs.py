"""Redaction on the final formatted line, JSON shape, correlation ids."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import time

import gevent
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.logs import (
    REDACTED,
    ContextFilter,
    DeferredStreamHandler,
    RedactingJsonFormatter,
    accept_correlation_id,
    bind,
    redact,
    redaction,
)
from app.logs import handler as log_handler

SECRETS = [
    "sk-proj-abcdefghijklmnop0123456789",
    "sk-...abcd",
    "sk-proj-****wxyz",
    "Bearer abc.def-ghi_jkl",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "jane.doe+tag@example.co.uk",
    "+1 415 555 2671",
    "+33 6 12 34 56 78",
    "(555) 123 4567",
    "555-123-4567",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "5500005555555559",
    'api_key="topsecretvalue"',
    "password: hunter2hunter2",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_redact(secret: str) -> None:
    redacted = redact(f"before {secret} after")
    assert redacted.startswith("before ") and redacted.endswith(" after")
    assert "[REDACTED]" in redacted
    assert secret not in redacted


@pytest.mark.parametrize(
    "harmless",
    [
        '"timestamp": "2026-11-21T18:53:43.123Z"',
        '"correlation_id": "9f1c2d3e4a5b6c7d8e9f001122334455"',
        '"duration_ms": 1234.5, "ttft_ms": 12.0',
        '"prompt_tokens": 1234567, "total": 1234567890123',
        '"upstream_request_id": "req_12"',
    ],
)
def test_harmless_fields_survive(harmless: str) -> None:
    assert redact(harmless) == harmless


_PIECES = ["(555) 123 4567", "555-123-4567", "4111 1111 1111 1111", "5500005555555559", "+1 415 555 2671"]
_PIECES += ["a", "Z", "_", ".", "(", ")", " ", "\t", "-", "+", "12", "9", "0 0", "٣", "²", "f1234567", '"']


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join))
def test_digit_groups_are_redacted_as_one_scan_of_the_whole_line_would(text: str) -> None:
    """The run-by-run search finds exactly what one pass of the pattern over the line finds."""
    assert redaction._redact_digit_groups(text) == redaction._DIGIT_GROUPS.sub(redaction._judge_digits, text)


def _capture(level: int = logging.INFO, secrets: tuple[str, ...] = ()) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingJsonFormatter(secrets=secrets))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"test.{id(stream)}")
    logger.handlers = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger, stream


def test_lines_are_json_with_the_fields_and_ids() -> None:
    logger, stream = _capture()
    with bind("cid-1", "sid-1"):
        logger.info("stream_completed", extra={"duration_ms": 5.5, "finish_reason": "stop"})
    logger.info("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "stream_completed" and first["level"] == "INFO"
    assert first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert (first["correlation_id"], first["stream_id"]) == ("cid-1", "sid-1")
    assert first["duration_ms"] == 5.5
    assert "correlation_id" not in second


def test_configured_keys_are_redacted_whatever_they_look_like() -> None:
    """Client keys and an Azure-style upstream key are plain text to the patterns: they are
    redacted as the configured literals, also where JSON escaped them."""
    keys = ("chatwait-client-key-000111", "0123456789abcdef0123456789abcdef", 'weird"key\\with/escapes')
    logger, stream = _capture(secrets=keys)
    logger.info("request_received", extra={"path": f"/v1/models/{keys[0]}", "note": keys[1], "raw": keys[2]})
    try:
        raise ValueError(f"bad header: {keys[0]}")
    except ValueError:
        logger.exception("error_occurred")
    text = stream.getvalue()
    assert all(key not in text for key in keys) and "weird" not in text
    assert json.loads(text.splitlines()[0])["path"] == "/v1/models/[REDACTED]"
    _capture(secrets=())[0].info("no keys configured: nothing else changes")


def test_a_key_too_short_to_be_secret_is_not_redacted_as_a_literal() -> None:
    """OPENAI_API_KEY=x must not turn every "x" of every line into the marker."""
    logger, stream = _capture(secrets=("x", "abcdefgh"))
    logger.info("request_received", extra={"path": "/v1/x/abcdefgh"})
    assert json.loads(stream.getvalue())["path"] == f"/v1/x/{REDACTED}"


def test_tracebacks_and_extra_fields_are_redacted_too() -> None:
    logger, stream = _capture()
    try:
        raise RuntimeError("upstream said: Incorrect API key provided: sk-proj-LEAKED0123456789")
    except RuntimeError:
        logger.exception("error_occurred", extra={"header": "Bearer leaked-token-123"})
    line = stream.getvalue()
    assert json.loads(line)["event"] == "error_occurred"
    assert "LEAKED0123456789" not in line and "leaked-token-123" not in line
    assert "RuntimeError" in line


def test_third_party_loggers_go_through_the_same_redaction() -> None:
    from app.logs import configure_logging

    configure_logging("INFO")
    handler = logging.getLogger().handlers[0]
    stream = io.StringIO()
    handler.setStream(stream)
    try:
        logging.getLogger("gunicorn.error").error("bad auth header Bearer sk-thirdparty-0123456789")
    finally:
        handler.setStream(__import__("sys").stdout)
    line = stream.getvalue()
    assert json.loads(line)["logger"] == "gunicorn.error"
    assert "sk-thirdparty" not in line


@pytest.fixture
def deferred(monkeypatch):
    """A DeferredStreamHandler as in a gevent worker (this test process is not patched)."""
    monkeypatch.setattr(log_handler, "_patched_loop", lambda: (gevent.get_hub().loop, log_handler._os_thread_id()))
    stream = io.StringIO()
    handler = DeferredStreamHandler(stream)
    handler.setFormatter(RedactingJsonFormatter())
    logger = logging.getLogger("test.deferred")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, handler, stream
    logger.removeHandler(handler)
    logger.propagate = True


def _events(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["event"] for line in stream.getvalue().splitlines()]


def test_deferred_lines_are_written_in_order_once_the_loop_runs(deferred) -> None:
    logger, handler, stream = deferred
    logger.warning("first")
    try:
        raise RuntimeError("with sk-proj-LEAKED0123456789")
    except RuntimeError:
        logger.exception("second")
    assert stream.getvalue() == ""  # not on the caller's path
    gevent.sleep(handler.FLUSH_SECONDS * 5)
    assert _events(stream) == ["first", "second"]
    assert "RuntimeError" in stream.getvalue() and "LEAKED" not in stream.getvalue()


def test_deferred_lines_wait_for_reads_due_in_the_same_loop_turn(deferred) -> None:
    """Formatting queued lines never delays a token: a socket read (an upstream token) that
    is due in the same loop turn as the flush runs first."""
    logger, handler, stream = deferred
    seen_by_reader: list[str] = []
    reader, writer = socket.socketpair()
    with reader, writer:
        watcher = gevent.get_hub().loop.io(reader.fileno(), 1)
        watcher.start(lambda: (seen_by_reader.append(stream.getvalue()), watcher.stop()))
        logger.warning("line")
        writer.send(b"token")
        time.sleep(handler.FLUSH_SECONDS * 3)  # the read and the flush both come due meanwhile
        gevent.sleep(handler.FLUSH_SECONDS * 3)
    assert seen_by_reader == [""]
    assert _events(stream) == ["line"]


def test_deferred_lines_are_written_at_flush_and_when_the_backlog_is_full(deferred) -> None:
    logger, handler, stream = deferred
    logger.warning("pending")
    handler.flush()  # as logging.shutdown does at exit
    assert _events(stream) == ["pending"]
    for number in range(handler.MAX_BACKLOG):
        logger.warning(f"line{number}")
    assert len(_events(stream)) == 1 + handler.MAX_BACKLOG


def test_correlation_ids() -> None:
    assert accept_correlation_id("abc-123_x.y:z") == "abc-123_x.y:z"
    for bad in (None, "", "has space", "x" * 65, "semi;colon", "émoji"):
        generated = accept_correlation_id(bad)
        assert generated != bad and len(generated) == 32


def test_gunicorn_access_lines_are_built_only_when_they_would_be_written(monkeypatch, tmp_path) -> None:
    from gunicorn.config import Config

    from app.server.logger import GunicornLogger

    config = Config()
    config.set("accesslog", str(tmp_path / "access.log"))
    logger = GunicornLogger(config)
    built: list[bool] = []
    monkeypatch.setattr(logger, "atoms", lambda *args: built.append(True) or {})
    logger.access_log.setLevel(logging.WARNING)  # as logging_config() sets it
    logger.access(None, None, {}, None)
    assert built == []
    logger.access_log.setLevel(logging.INFO)
    logger.access(None, None, {}, None)
    assert built == [True]


def test_a_streamed_response_closed_before_its_first_frame_still_has_its_completion_line(app, caplog) -> None:
    from app.apis.request import event_response

    for iterated in (False, True):
        caplog.clear()
        with app.test_request_context("/v1/chat/streaming", method="POST"), caplog.at_level("INFO"):
            app.preprocess_request()  # the tracing hook: ids, start time
            answer = event_response(iter([b"data: x\n\n"]), "sid", {})
            if iterated:
                assert list(answer.response) == [b"data: x\n\n"]
            answer.close()
        completed = [r for r in caplog.records if r.msg == "request_completed"]
        assert len(completed) == 1 and completed[0].streamed is True, (iterated, completed)


UNCAUGHT = """
from gevent import monkey
monkey.patch_all()
import threading, gevent
from app.logs import configure_logging
configure_logging("INFO", ["sk-uncaught-secret-0123456789"])

def crash(message):
    raise ValueError(message)

gevent.spawn(crash, "greenlet sk-uncaught-secret-0123456789").join()
thread = threading.Thread(target=crash, args=("thread",))
thread.start()
thread.join()
crash("main")
"""


def test_uncaught_errors_are_json_lines_not_raw_tracebacks_on_stderr() -> None:
    """A greenlet's, a thread's and the process's last uncaught error are each one redacted
    ERROR line on stdout with its traceback; gevent and the interpreter print nothing raw."""
    done = subprocess.run([sys.executable, "-c", UNCAUGHT], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr == ""
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["event"], r["level"], r["error_type"], r["context"]) for r in records] == [
        ("greenlet_failed", "ERROR", "ValueError", "Greenlet"),
        ("thread_failed", "ERROR", "ValueError", "thread"),
        ("uncaught_error", "ERROR", "ValueError", "main"),
    ]
    assert all("Traceback" in r["exc_info"] and "in crash" in r["exc_info"] for r in records)
    assert "sk-uncaught-secret" not in done.stdout
