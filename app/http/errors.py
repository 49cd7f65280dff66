"""Flask's side of the error catalogue: every exception a view raises becomes its JSON body, in
the shape of the endpoint's family (`app.apis.shapes`): the catalogue's own, or OpenAI's
`{"error": {...}}` on the OpenAI-compatible endpoints (and any other /v1/ path)."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, json, request
from werkzeug.exceptions import HTTPException

from ..apis.shapes import error_body, error_status
from ..errors import ApiError
from .routes import Routes

log = logging.getLogger("chatwait.errors")

ROUTES = "chatwait.routes"  # app.extensions: the app's routes, for the 404's nearest one

_HTTP_STATUS_CODES = {
    400: "invalid_json",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

_HTTP_DETAILS = {
    "not_found": "No route matches this path.",
    "method_not_allowed": "The path exists but not for this method.",
    "payload_too_large": "The body exceeds MAX_BODY_BYTES.",
    "unsupported_media_type": "The Content-Type header is not application/json.",
}


def error_response(error: ApiError) -> Response:
    """Render an ApiError as a JSON response with the request's correlation id."""
    correlation_id = g.get("correlation_id")
    body = error_body(error, correlation_id, request.path)
    response = Response(json.dumps(body), status=error_status(error, request.path), mimetype="application/json")
    if correlation_id:
        response.headers["X-Correlation-Id"] = correlation_id
    retry_after = error.retry_after_header
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="chatwait"'
    return response


def _handle_api_error(error: ApiError) -> Response:
    log.info(
        "request_rejected" if error.status < 500 else "error_occurred",
        extra={
            "error_code": error.error_code,
            "status": error.status,
            "error_message": error.kind.message,
            "detail": error.detail,
            "action": error.operator_action,
        },
    )
    return error_response(error)


# A plain GET of a path whose GET is a WebSocket's: a proxy dropped the upgrade's headers.
_LOST_UPGRADE = (
    "{path} takes GET only as a WebSocket upgrade, and this GET came without Upgrade: websocket and "
    "Connection: Upgrade. A WebSocket client sends both: a proxy in between dropped them (nginx: "
    'proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade").'
)


def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = _HTTP_STATUS_CODES.get(status, "internal_error" if status >= 500 else "invalid_json")
    detail = _HTTP_DETAILS.get(code)
    if status == 405 and request.method == "GET" and _upgrades_here():
        detail = _LOST_UPGRADE.format(path=request.path[:200])
    response = _handle_api_error(ApiError(code, detail, action=_nearest_route() if status == 404 else None))
    if status == 405:
        response.headers.update({name: value for name, value in exc.get_headers() if name.lower() == "allow"})
    return response


def _upgrades_here() -> bool:
    """Whether this request's path takes a WebSocket upgrade (the Responses API's does)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        adapter.match(request.path, "GET", websocket=True)
    except HTTPException:
        return False
    return True


def _nearest_route() -> str | None:
    """For a 404: the route the client may have meant, as the action to take (None: none is near)."""
    app = current_app._get_current_object()
    routes = app.extensions.get(ROUTES)
    if routes is None:
        routes = app.extensions[ROUTES] = Routes(app.url_map.iter_rules())
    nearest = routes.nearest(request.path)
    if nearest is None:
        return None
    return f"Did you mean {nearest}? The routes are listed in /openapi.yaml."


def _handle_unexpected(exc: Exception) -> Response:
    log.exception("error_occurred", extra={"error_code": "internal_error", "error_type": type(exc).__name__})
    return error_response(ApiError("internal_error"))


def init_app(app: Flask) -> None:
    """Route every exception through the catalogue."""
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
