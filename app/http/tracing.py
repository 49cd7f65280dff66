"""Per-request correlation id: taken from a valid X-Correlation-Id or generated, bound to the
request's log lines and echoed in the response; the request_received/completed lines (never for
/metrics; for the probes only with LOG_REQUESTS; a streamed response's once its body ends); and
the request counter of /metrics."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from flask import Flask, Response, g, request

from ..logs import accept_correlation_id, bind, correlation_id_var, stream_id_var
from .metrics import PATH as METRICS_PATH
from .services import current_services

log = logging.getLogger("chatwait.http")

PROBES = frozenset(("/health", "/ready"))


def _logged() -> bool:
    """Whether this request gets request_received/request_completed lines."""
    if request.path == METRICS_PATH:
        return False
    return request.path not in PROBES or current_services().settings.log_requests


def _before() -> None:
    sent = request.headers.get("X-Correlation-Id")
    g.correlation_id = accept_correlation_id(sent)
    g.client_correlation_id = g.correlation_id == sent  # the client named this request itself
    g.started = time.monotonic()
    g.log_tokens = (correlation_id_var.set(g.correlation_id), stream_id_var.set(None))
    g.logged = _logged()
    if g.logged:
        log.info("request_received", extra={"method": request.method, "path": request.path, "pid": os.getpid()})


def traced_body(body: Iterator[bytes], stream_id: str) -> Iterator[bytes]:
    """A streamed response's body with this request's ids on its log lines, and its
    request_completed line once the body has ended (however it ended)."""
    return _traced(body, stream_id, g.correlation_id, g.get("started", time.monotonic()), g.get("logged", True))


def _traced(
    body: Iterator[bytes], stream_id: str, correlation_id: str, started: float, logged: bool
) -> Iterator[bytes]:
    with bind(correlation_id, stream_id):
        try:
            yield from body
        finally:
            if logged:
                duration = round((time.monotonic() - started) * 1000, 1)
                log.info("request_completed", extra={"status": 200, "duration_ms": duration, "streamed": True})


def _after(response: Response) -> Response:
    response.headers.setdefault("X-Correlation-Id", g.get("correlation_id", ""))
    response.headers.setdefault("X-Request-Id", response.headers["X-Correlation-Id"])  # where OpenAI's SDKs look
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    current_services().metrics.request(route, request.method, response.status_code)
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
    """Trace the rest of this request with a stream: under the correlation id the client sent
    with this request, else the one the stream was started with (a resume or stop continues
    the same turn)."""
    if not g.get("client_correlation_id"):
        g.correlation_id = correlation_id
    correlation_id_var.set(g.correlation_id)
    stream_id_var.set(stream_id)
