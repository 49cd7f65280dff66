"""Which request and stream a log line belongs to: ids in context variables, stamped on each record.

gevent gives each greenlet its own context, so a request greenlet and its producer greenlet
each bind the ids (`bind`) and every line they log carries them.
"""

from __future__ import annotations

import contextvars
import logging
import re

from ..ids import random_id

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
stream_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("stream_id", default=None)
# the correlation id a stream was started with, on the lines of a later request about it (a resume, a stop)
stream_correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stream_correlation_id", default=None
)

_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class ContextFilter(logging.Filter):
    """Stamp every record with the correlation and stream ids bound in the current greenlet."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__  # a lookup, not hasattr: a missing attribute raises inside hasattr
        if "correlation_id" not in fields:
            fields["correlation_id"] = correlation_id_var.get()
        if "stream_id" not in fields:
            fields["stream_id"] = stream_id_var.get()
        started_by = stream_correlation_id_var.get()
        if started_by is not None and "stream_correlation_id" not in fields:
            fields["stream_correlation_id"] = started_by
        return True


def new_correlation_id() -> str:
    """A fresh correlation id (32 hex digits)."""
    return random_id()


def accept_correlation_id(candidate: str | None) -> str:
    """The client's X-Correlation-Id if it is well formed, otherwise a new one."""
    if candidate and _CORRELATION_ID.fullmatch(candidate):
        return candidate
    return new_correlation_id()


class bind:  # noqa: N801 - used as a function: `with bind(...)`
    """Bind the ids to every log line of the current greenlet for the duration of the block
    (a class rather than a generator: it is entered twice per request)."""

    __slots__ = ("_ids", "_tokens")

    def __init__(self, correlation_id: str | None, stream_id: str | None = None, started_by: str | None = None) -> None:
        self._ids = (correlation_id, stream_id, started_by)  # started_by: the stream's own correlation id

    def __enter__(self) -> None:
        correlation_id, stream_id, started_by = self._ids
        self._tokens = (
            correlation_id_var.set(correlation_id),
            stream_id_var.set(stream_id),
            stream_correlation_id_var.set(started_by),
        )

    def __exit__(self, *exc: object) -> None:
        stream_correlation_id_var.reset(self._tokens[2])
        stream_id_var.reset(self._tokens[1])
        correlation_id_var.reset(self._tokens[0])
