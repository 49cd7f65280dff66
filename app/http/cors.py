"""Cross-origin calls from browser apps (CORS_ORIGINS): preflights, and the headers that let a
page on a listed origin read ChatWait's answers.

Empty (the default): no CORS header is ever sent, so only the service's own page may call it
from a browser. A preflight (OPTIONS with Access-Control-Request-Method) is answered here,
before routing and client keys, for every path: 204 for a listed origin, 403 origin_not_allowed
otherwise. The answers are not cached per origin by proxies (Vary: Origin).
"""

from __future__ import annotations

import re

from flask import Flask, Response, request

from ..apis.request import services
from ..errors import ApiError

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
EXPOSED_HEADERS = (
    "X-Stream-Id, X-Correlation-Id, X-Request-Id, Retry-After, X-ChatWait-Unknown-Fields, X-ChatWait-Cost-USD, "
    "X-ChatWait-Cache, X-ChatWait-Cache-Entry, X-ChatWait-Max-Tokens-Lowered, X-ChatWait-Adapted"
)
PREFLIGHT_MAX_AGE_SECONDS = "600"
MAX_REQUESTED_HEADERS_CHARS = 2000
# What Access-Control-Request-Headers may hold: header names (RFC 9110 tokens), comma-separated.
_HEADER_LIST = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")


def _allowed(origin: str | None) -> bool:
    listed = services().settings.access.cors_origins
    return bool(origin) and bool(listed) and (listed == ("*",) or origin.lower() in listed)


def _preflight() -> Response | None:
    """Answer a CORS preflight; leave every other request to the app."""
    req = request._get_current_object()
    if req.method != "OPTIONS" or "Access-Control-Request-Method" not in req.headers:
        return None
    origin = request.headers.get("Origin")
    if not _allowed(origin):
        raise ApiError("origin_not_allowed", f"The origin {origin!r} is not in CORS_ORIGINS."[:300])
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    requested = request.headers.get("Access-Control-Request-Headers", "").strip()
    if requested and len(requested) <= MAX_REQUESTED_HEADERS_CHARS and _HEADER_LIST.fullmatch(requested):
        response.headers["Access-Control-Allow-Headers"] = requested  # any header: none carries a cookie
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE_SECONDS
    return response


def _headers(response: Response) -> Response:
    """Let a listed origin read this answer (errors included) and the stream headers."""
    if services().settings.access.cors_origins:
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if _allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    return response


def init_app(app: Flask) -> None:
    """Install the hooks (the preflight one before the client-key check)."""
    app.before_request(_preflight)
    app.after_request(_headers)
