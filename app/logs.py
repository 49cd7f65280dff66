"""One logging setup: JSON lines on stdout, correlation ids, and redaction of secrets and PII.

Redaction runs on the final formatted line of every handler, so tracebacks, `extra` fields
and third-party loggers (gunicorn, httpx, openai) are covered, not only our own messages.
The correlation and stream ids live in context variables: gevent gives each greenlet its
own context, so a request greenlet and its producer greenlet each bind them (see `bind`).
"""

from __future__ import annotations

import collections
import contextvars
import datetime
import logging
import logging.config
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
from gevent import monkey
from gunicorn import glogging
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from .ids import random_id

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
stream_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("stream_id", default=None)

_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

REDACTED = "[REDACTED]"

# Each pattern runs only when a cheap substring test says it could match: redaction is on
# every log line, so it must cost microseconds, not a dozen regex scans.
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*")
# OpenAI-style keys, including masked fragments such as sk-...abcd or sk-proj-****wxyz.
_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-.*]{3,}")
_JWT = re.compile(r"(?i)\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# Values of key-like fields: api_key=..., "password": "...", authorization: ...
_KEY_WORDS = (
    "api_key",
    "api-key",
    "apikey",
    "authorization",
    "password",
    "passwd",
    "secret",
    "access_token",
    "access-token",
)
_KEY_VALUE = re.compile(
    r"(?i)\b(?:api[_-]?key|apikey|authorization|password|passwd|secret|access[_-]?token)"
    r"(?:[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# International phone numbers: +33 6 12 34 56 78, +1 (415) 555-2671.
_INTL_PHONE = re.compile(r"(?<![\w.])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,6}(?![\w.])")
# Runs of grouped digits; each is then judged: a card number (13-19 digits passing Luhn) or a
# national phone number (555-123-4567, (555) 123 4567) is redacted, anything else is kept.
_DIGIT_GROUPS = re.compile(r"(?<![\w.(])\(?\d[\d \t().-]{5,26}\d(?![\w.])")
_DIGIT_RUN = re.compile(r"\d[\d \t().-]{5,26}\d")  # what every _DIGIT_GROUPS match contains; a faster scan
_NATIONAL_PHONE = re.compile(r"(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,5}")
_NOT_DIGIT = re.compile(r"\D")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _judge_digits(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = _NOT_DIGIT.sub("", candidate)
    if 13 <= len(digits) <= 19 and _luhn_valid(digits):
        return REDACTED
    if _NATIONAL_PHONE.fullmatch(candidate):
        return REDACTED
    return candidate


def redact(text: str) -> str:
    """Replace secrets and personal data in `text` with a marker."""
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub(REDACTED, text)
    if "sk-" in text:
        text = _OPENAI_KEY.sub(REDACTED, text)
    if "eyj" in lowered:
        text = _JWT.sub(REDACTED, text)
    if any(word in lowered for word in _KEY_WORDS):
        text = _KEY_VALUE.sub(REDACTED, text)
    if "@" in text:
        text = _EMAIL.sub(REDACTED, text)
    if "+" in text:
        text = _INTL_PHONE.sub(REDACTED, text)
    if _DIGIT_RUN.search(text):
        text = _DIGIT_GROUPS.sub(_judge_digits, text)
    return text


class ContextFilter(logging.Filter):
    """Stamp every record with the correlation and stream ids bound in the current greenlet."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = correlation_id_var.get()
        if not hasattr(record, "stream_id"):
            record.stream_id = stream_id_var.get()
        return True


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger formatter: UTC ISO-8601 timestamp, level, event; redacts the final line.

    The timestamp comes first. It is written by this formatter from the record's time, so it
    is joined after redaction, which otherwise scans every line's date digits for phone and
    card numbers. A record without exception or stack information (nearly every line) is
    serialized here directly: the same fields in the same order as the base class gives,
    without its generic field machinery.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "message": "event", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        """The base class's fields, without empty ids."""
        super().add_fields(log_data, record, message_dict)
        _drop_empty_ids(log_data)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            body = super().format(record)
        else:
            fields = {"level": record.levelname, "logger": record.name, "event": record.getMessage()}
            for key, value in record.__dict__.items():
                if key not in _RESERVED and key[:1] != "_":
                    fields[key] = value
            _drop_empty_ids(fields)
            body = self.serialize_log_record(self.process_log_record(fields))
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        return '{"timestamp": "%s", %s' % (stamp.isoformat(timespec="milliseconds")[:-6] + "Z", redact(body)[1:])


_RESERVED = frozenset(RESERVED_ATTRS)


def _drop_empty_ids(fields: dict[str, Any]) -> None:
    for key in ("correlation_id", "stream_id"):
        if fields.get(key) is None:
            fields.pop(key, None)


class DeferredStreamHandler(logging.StreamHandler):
    """A StreamHandler that, in a gevent-patched process, writes after the caller's work.

    Formatting a line (JSON, then redaction) costs tens of microseconds; four lines per
    request written inline would sit between a request and its first token. Here `emit`
    queues the record (its ids were stamped by the filter already) and a timer formats and
    writes everything queued FLUSH_SECONDS later, in one write, while the request waits on
    its upstream or after its first chunk has gone out. The timer has the loop's lowest
    priority: a read or write that is due in the same loop turn (an upstream token, a
    frame for a client) goes first. Order is kept and nothing is dropped; `flush` (also at
    logging shutdown) writes what is queued. A queue of MAX_BACKLOG records is written at
    once. Unpatched (the gunicorn master, unit tests), or called from another OS thread
    (llama.cpp's threadpool), it writes inline like its base class.
    """

    FLUSH_SECONDS = 0.002
    MAX_BACKLOG = 256

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: collections.deque[logging.LogRecord] = collections.deque()
        loop, self._thread_id = _patched_loop()
        self._timer = None if loop is None else loop.timer(self.FLUSH_SECONDS)
        if self._timer is not None:
            self._timer.priority = LOWEST_PRIORITY

    def handle(self, record: logging.LogRecord) -> bool:
        """Queue the record without the handler's lock where only greenlets of the loop's own
        thread can call: queueing never yields, so no other caller can interleave. The lock
        (gevent's, in pure Python) cost about 20 µs of a line's 70 on a request's path."""
        if not self._defers():
            return super().handle(record)
        accepted = self.filter(record)
        if accepted:
            self._queue(record)
        return bool(accepted)

    def emit(self, record: logging.LogRecord) -> None:
        if not self._defers():
            super().emit(record)
            return
        self._queue(record)

    def _defers(self) -> bool:
        """Whether this call queues: the process is patched and the caller is the loop's thread."""
        return self._timer is not None and _os_thread_id() == self._thread_id

    def _queue(self, record: logging.LogRecord) -> None:
        self._pending.append(record)
        if len(self._pending) == 1:
            self._timer.start(self.flush)
        elif len(self._pending) >= self.MAX_BACKLOG:
            self.flush()

    def flush(self) -> None:
        """Write every queued record, then flush the stream."""
        if self._timer is not None:
            self._timer.stop()
        pending = self._pending
        if pending:
            terminator = self.terminator
            lines = []
            while pending:
                record = pending.popleft()
                try:
                    lines.append(self.format(record) + terminator)
                except Exception:  # noqa: BLE001 - the logging module's own policy: report, go on
                    self.handleError(record)
            self.stream.write("".join(lines))
        super().flush()


# libev's EV_MINPRI: in each loop turn, due watchers run from the highest priority to this one.
LOWEST_PRIORITY = -2


def _patched_loop() -> tuple[Any, int]:
    """The gevent loop (None unless gevent patched threading) and this OS thread's id."""
    loop = gevent.get_hub().loop if monkey.is_module_patched("threading") else None
    return loop, _os_thread_id()


# The OS thread's id, even where gevent made threading.get_ident a greenlet id.
_os_thread_id = monkey.get_original("_thread", "get_ident")


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """The one dictConfig of the process, shared by the app and gunicorn (`logconfig_dict`)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"json": {"()": RedactingJsonFormatter}},
        "handlers": {
            "stdout": {
                "()": DeferredStreamHandler,
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["context"],
            }
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            # Their DEBUG lines carry request headers (the API key); keep them at INFO at most.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            "openai": {"level": "WARNING"},
        },
    }


class GunicornLogger(glogging.Logger):
    """gunicorn's logger, building an access line only when `gunicorn.access` would write it.

    With a `logconfig_dict`, gunicorn formats every request's access fields (a dozen atoms,
    a date) before its logger drops them: ours keeps `gunicorn.access` at WARNING, since the
    app logs each request itself (request_received/request_completed).
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


def configure_logging(level: str) -> None:
    """Install the JSON logging setup for the whole process.

    Records skip the thread and process fields: none is written, and under gevent asking
    for the current thread makes a dummy Thread object for every new greenlet (tens of
    microseconds on the first line of each request and each producer). They skip the
    caller's file, line and function too (`_srcfile`, the logging HOWTO's optimisation):
    none is written, and finding them walks the stack on every call.
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.config.dictConfig(logging_config(level))


def new_correlation_id() -> str:
    """A fresh correlation id (32 hex digits)."""
    return random_id()


def accept_correlation_id(candidate: str | None) -> str:
    """The client's X-Correlation-Id if it is well formed, otherwise a new one."""
    if candidate and _CORRELATION_ID.fullmatch(candidate):
        return candidate
    return new_correlation_id()


@contextmanager
def bind(correlation_id: str | None, stream_id: str | None = None) -> Iterator[None]:
    """Bind the ids to every log line of the current greenlet for the duration of the block."""
    tokens = (correlation_id_var.set(correlation_id), stream_id_var.set(stream_id))
    try:
        yield
    finally:
        stream_id_var.reset(tokens[1])
        correlation_id_var.reset(tokens[0])


def log_greenlet_failure(greenlet: Any) -> None:
    """`link_exception` callback for every spawned greenlet: a crash is logged, never silent."""
    exc = greenlet.exception
    logging.getLogger("chatwait").error(
        "greenlet_failed",
        exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
        extra={"error_type": type(exc).__name__},
    )
