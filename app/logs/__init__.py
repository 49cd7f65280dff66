"""Logging: JSON lines on stdout, correlation and stream ids on every line, secrets redacted.

Redaction runs on the final formatted line of every handler, so tracebacks, `extra` fields
and third-party loggers (gunicorn, httpx, openai) are covered, not only our own messages.
"""

from .context import (
    ContextFilter,
    accept_correlation_id,
    bind,
    correlation_id_var,
    new_correlation_id,
    stream_correlation_id_var,
    stream_id_var,
)
from .formatter import RedactingJsonFormatter
from .handler import DeferredStreamHandler
from .redaction import REDACTED, redact
from .setup import configure_logging, logging_config
from .uncaught import route_uncaught_errors

__all__ = [
    "REDACTED",
    "ContextFilter",
    "DeferredStreamHandler",
    "RedactingJsonFormatter",
    "accept_correlation_id",
    "bind",
    "configure_logging",
    "correlation_id_var",
    "logging_config",
    "new_correlation_id",
    "redact",
    "route_uncaught_errors",
    "stream_correlation_id_var",
    "stream_id_var",
]
