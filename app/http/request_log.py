"""Per-request correlation id: taken from a valid X-Correlation-Id or generated, bound to the
request's log lines and echoed in the response; the request_received/completed lines (never for
/metrics; for the probes only with LOG_REQUESTS; a streamed response's once its body ends; with
the client key's name); the names of the request's fields ChatWait does not know, and what a
whole answer's generation cost, on the response; the request counter of /metrics; and, with
traces on, the request's span (`app.traces`), ended with its response (a stream's body)."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Request, Response, g, request

from ..apis.request import (
    ADAPTED_HEADER,
    CACHE_ENTRY_HEADER,
    CACHE_HEADER,
    COST_HEADER,
    completion,
    cost_header,
    end_span,
    services,
)
from ..apis.unknown import HEADER as UNKNOWN_HEADER
from ..apis.unknown import header_value
from ..hub.websocket import TURN
from ..ids import current_pid
from ..logs import accept_correlation_id, correlation_id_var, stream_correlation_id_var, stream_id_var
from ..traces import detach, start_request
from ..traces import enabled as traces_enabled
from .metrics import PATH as METRICS_PATH
from .routes import route_label

log = logging.getLogger("chatwait.http")

PROBES = frozenset(("/health", "/ready"))


def _logged(path: str) -> bool:
    """Whether a request for `path` gets request_received/request_completed lines."""
    if path == METRICS_PATH:
        return False
    return path not in PROBES or services().settings.operations.log_requests


def _before() -> None:
    req, state = request._get_current_object(), g._get_current_object()  # the objects, looked up once
    sent = req.headers.get("X-Correlation-Id")
    state.correlation_id = correlation_id = accept_correlation_id(sent)
    state.started = time.monotonic()
    state.log_tokens = (
        correlation_id_var.set(correlation_id),
        stream_id_var.set(None),
        stream_correlation_id_var.set(None),
    )
    state.logged = _logged(req.path)
    state.span = started = _span(req) if traces_enabled() else None
    if started is not None:
        state.log_tokens += (started[1],)
    if state.logged:
        fields = {"method": req.method, "path": req.path, "pid": current_pid()}
        if TURN in req.environ:
            fields["websocket"] = True  # a turn a WebSocket message made, not an HTTP request
        log.info("request_received", extra=fields)


def _after(response: Response) -> Response:
    req, state = request._get_current_object(), g._get_current_object()
    headers = response.headers
    # One pass over the names: werkzeug's get and setdefault build an exception for a missing one.
    present = {name.lower(): value for name, value in headers}
    correlation_id = present.get("x-correlation-id")
    if correlation_id is None:
        correlation_id = state.get("correlation_id", "")
        headers.add("X-Correlation-Id", correlation_id)
    if "x-request-id" not in present:  # where OpenAI's SDKs look
        headers.add("X-Request-Id", correlation_id)
    named = state.get("unknown_fields")
    if named:
        headers.add(UNKNOWN_HEADER, header_value(named))
    changed = state.get("adapted")
    if changed:
        headers.add(ADAPTED_HEADER, "; ".join(changed))
    cost = state.get("cost_usd")
    if cost is not None:
        headers.add(COST_HEADER, cost_header(cost))
    cached = state.get("cache")
    if cached is not None:
        headers.add(CACHE_HEADER, cached[0])
        if cached[1] is not None:
            headers.add(CACHE_ENTRY_HEADER, cached[1])
    rule = req.url_rule
    services().metrics.request(
        route_label(rule.rule) if rule is not None else "unmatched", req.method, response.status_code
    )
    if state.get("logged", True) and not response.is_streamed:
        log.info("request_completed", extra=completion(state, response.status_code))
    if not response.is_streamed:
        end_span(state, response.status_code)
    return response


def _span(req: Request) -> tuple[Any, Any] | None:
    """The request's span (None without traces, and for /metrics and the probes)."""
    if req.path == METRICS_PATH or req.path in PROBES:
        return None
    rule = req.url_rule
    return start_request(req.method, route_label(rule.rule) if rule is not None else "unmatched", req.path, req.headers)


def _teardown(_: BaseException | None) -> None:
    """Unbind the ids: the greenlet may serve another request of the connection next."""
    tokens = g._get_current_object().pop("log_tokens", None)
    if tokens is not None:
        if len(tokens) > 3:
            detach(tokens[3])  # the request's span is no longer this greenlet's current one
        correlation_id_var.reset(tokens[0])
        stream_id_var.reset(tokens[1])
        stream_correlation_id_var.reset(tokens[2])


def init_app(app: Flask) -> None:
    """Install the hooks."""
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)
