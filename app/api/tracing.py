"""Per-request correlation id: taken from a valid X-Correlation-Id or generated, bound to the
request's log lines and echoed in the response; the request_received/completed lines (never for
/metrics; for the probes only with LOG_REQUESTS); and the request counter of /metrics."""

from __future__ import annotations

import logging
import os
import time

from flask import Flask, Response, g, request

from ..logs import accept_correlation_id, correlation_id_var, stream_id_var
from .metrics import PATH as METRICS_PATH
from .services import services

log = logging.getLogger("chatwait.http")

PROBES = frozenset(("/health", "/ready"))


def _logged() -> bool:
    """Whether this request gets request_received/request_completed lines."""
    if request.path == METRICS_PATH:
        return False
    return request.path not in PROBES or services().settings.log_requests


def _before() -> None:
    g.correlation_id = accept_correlation_id(request.headers.get("X-Correlation-Id"))
    g.started = time.monotonic()
    g.log_tokens = (correlation_id_var.set(g.correlation_id), stream_id_var.set(None))
    g.logged = _logged()
    if g.logged:
        log.info("request_received", extra={"method": request.method, "path": request.path, "pid": os.getpid()})


def _after(response: Response) -> Response:
    response.headers.setdefault("X-Correlation-Id", g.get("correlation_id", ""))
    response.headers.setdefault("X-Request-Id", response.headers["X-Correlation-Id"])  # where OpenAI's SDKs look
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    services().metrics.request(route, request.method, response.status_code)
    if g.get("logged", True) and not response.is_streamed:
        duration = round((time.monotonic() - g.get("started", time.monotonic())) * 1000, 1)
        log.info("request_completed", extra={"status": response.status_code, "duration_ms": duration})
    return response


def _teardown(_: BaseException | None) -> None:
    """Unbind the ids: the greenlet may serve another request of the connection next."""
    tokens = g.pop("log_tokens", None)
    if tokens is not None:
        correlation_id_var.reset(tokens[0])
        stream_id_var.reset(tokens[1])


def init_app(app: Flask) -> None:
    """Install the hooks."""
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)


def trace_stream(stream_id: str, correlation_id: str) -> None:
    """Trace the rest of this request with a stream and the correlation id it was started with."""
    g.correlation_id = correlation_id
    correlation_id_var.set(correlation_id)
    stream_id_var.set(stream_id)
