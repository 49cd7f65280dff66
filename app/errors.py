"""The one error catalogue and the handlers that turn every failure into its JSON body.

Each entry says what happened (`message`), what to do (`action`), whether the same request
may succeed later (`retryable`) and the HTTP status. A raised ApiError adds `detail` (why).
Nothing else ever reaches a client: no HTML error page, no stack trace, no upstream text.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from flask import Flask, Response, g, json
from werkzeug.exceptions import HTTPException

log = logging.getLogger("chatwait.errors")


@dataclasses.dataclass(frozen=True)
class ErrorKind:
    """A catalogue entry: the fixed part of an error body."""

    status: int
    message: str
    action: str
    retryable: bool


CATALOGUE: dict[str, ErrorKind] = {
    "invalid_json": ErrorKind(
        400,
        "The request body is not valid JSON.",
        'Send a UTF-8 JSON object such as {"message": "Hello"} with Content-Type: application/json.',
        False,
    ),
    "validation_error": ErrorKind(
        400,
        "The request body has invalid or unknown fields.",
        "Fix the fields named in `fields` and send the request again.",
        False,
    ),
    "input_too_long": ErrorKind(
        400,
        "The conversation is longer than the model input limit.",
        "Drop the oldest history messages or shorten the message, then send the request again.",
        False,
    ),
    "invalid_last_event_id": ErrorKind(
        400,
        "The last event id is not valid for this stream.",
        "Send the `id` of the last event you received (a whole number), or none to replay from the start.",
        False,
    ),
    "not_found": ErrorKind(404, "There is no such endpoint.", "Check the path against /openapi.yaml.", False),
    "stream_not_found": ErrorKind(
        404,
        "No stream with this id exists: it is unknown or has expired.",
        "Streams stay resumable for a limited time after they end; send the message again with "
        "POST /v1/chat/streaming.",
        False,
    ),
    "method_not_allowed": ErrorKind(
        405,
        "This endpoint does not accept that HTTP method.",
        "Use one of the methods listed in the Allow header.",
        False,
    ),
    "payload_too_large": ErrorKind(
        413,
        "The request body is larger than this server accepts.",
        "Shorten the message or the history and send the request again.",
        False,
    ),
    "unsupported_media_type": ErrorKind(
        415,
        "The request body must be JSON.",
        "Send the body with the header Content-Type: application/json.",
        False,
    ),
    "server_busy": ErrorKind(
        503,
        "The server is handling as many streams as it can.",
        "Retry after a few seconds.",
        True,
    ),
    "upstream_rate_limited": ErrorKind(
        429,
        "The model provider is rate limiting this service.",
        "Retry after the delay given in Retry-After, or send fewer requests.",
        True,
    ),
    "upstream_auth_failed": ErrorKind(
        502,
        "The model provider rejected this service's credentials.",
        "Retrying will not help: the operator must check OPENAI_API_KEY and OPENAI_BASE_URL.",
        False,
    ),
    "upstream_rejected": ErrorKind(
        502,
        "The model provider refused the request.",
        "Check the model name and parameters; retrying the same request will not help.",
        False,
    ),
    "upstream_unavailable": ErrorKind(
        503,
        "The model provider is temporarily unavailable.",
        "Retry in a few seconds.",
        True,
    ),
    "upstream_timeout": ErrorKind(
        504,
        "The model provider did not answer in time.",
        "Retry; if it keeps happening, ask for a shorter reply (max_tokens) or try later.",
        True,
    ),
    "upstream_interrupted": ErrorKind(
        502,
        "The model provider's reply was cut off before it finished.",
        "Keep the partial reply if useful and retry the request.",
        True,
    ),
    "upstream_bad_response": ErrorKind(
        502,
        "The model provider sent a reply this service could not read.",
        "Retry; if it keeps happening, the operator should check OPENAI_BASE_URL points at an "
        "OpenAI-compatible server.",
        True,
    ),
    "internal_error": ErrorKind(
        500,
        "Something went wrong inside ChatWait.",
        "Retry; if it keeps happening, report the correlation_id to the operator.",
        True,
    ),
}

_HTTP_STATUS_CODES = {
    400: "invalid_json",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An error from the catalogue, raised anywhere and rendered as its JSON body."""

    def __init__(
        self,
        error_code: str,
        detail: str | None = None,
        *,
        action: str | None = None,
        fields: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(error_code)
        self.kind = CATALOGUE[error_code]
        self.error_code = error_code
        self.detail = detail
        self.action = action or self.kind.action
        self.fields = fields
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        """The HTTP status of this error."""
        return self.kind.status

    def body(self, correlation_id: str | None) -> dict[str, Any]:
        """The JSON error object shared by HTTP error responses and SSE `error` events."""
        body: dict[str, Any] = {
            "error_code": self.error_code,
            "message": self.kind.message,
            "detail": self.detail or self.kind.message,
            "action": self.action,
            "retryable": self.kind.retryable,
            "correlation_id": correlation_id,
        }
        if self.fields:
            body["fields"] = self.fields
        if self.retry_after is not None:
            body["retry_after_seconds"] = round(self.retry_after, 3)
        return body


def error_response(error: ApiError) -> Response:
    """Render an ApiError as a JSON response with the request's correlation id."""
    correlation_id = g.get("correlation_id")
    response = Response(json.dumps(error.body(correlation_id)), status=error.status, mimetype="application/json")
    if correlation_id:
        response.headers["X-Correlation-Id"] = correlation_id
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return response


def _handle_api_error(error: ApiError) -> Response:
    log.info(
        "request_rejected" if error.status < 500 else "error_occurred",
        extra={"error_code": error.error_code, "status": error.status, "action": error.action},
    )
    return error_response(error)


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = _HTTP_STATUS_CODES.get(status, "internal_error" if status >= 500 else "invalid_json")
    response = _handle_api_error(ApiError(code, _HTTP_DETAILS.get(code)))
    if status == 405:
        response.headers.update({name: value for name, value in exc.get_headers() if name.lower() == "allow"})
    return response


_HTTP_DETAILS = {
    "not_found": "No route matches this path.",
    "method_not_allowed": "The path exists but not for this method.",
    "payload_too_large": "The body exceeds MAX_BODY_BYTES.",
    "unsupported_media_type": "The Content-Type header is not application/json.",
}


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("error_occurred", extra={"error_code": "internal_error", "error_type": type(exc).__name__})
    return error_response(ApiError("internal_error"))


def init_app(app: Flask) -> None:
    """Route every exception through the catalogue."""
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
