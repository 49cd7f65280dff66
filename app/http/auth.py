"""Optional client keys (CHATWAIT_API_KEYS): with keys set, every API endpoint asks for one.

A request to the API (`/v1/...`, and the short `/chat/...` paths) must then carry
`Authorization: Bearer <key>` (or `x-api-key: <key>`, as Anthropic's clients send it) with one of
the keys, or it is refused with 401 invalid_api_key.
The page, its files, /health, /ready and /openapi.yaml stay open. A stream remembers the
digest of the key that started it (never the key itself, in memory or in Redis), and only that
key resumes or stops it; to any other it does not exist. Without keys everything stays open.
"""

from __future__ import annotations

from flask import Flask, Response, g, request
from werkzeug.datastructures import Headers

from .. import limits
from ..apis.request import LOWERED_HEADER, NOT_ADMITTED, services, verdict
from .admin import PREFIX  # asks for an admin key instead

PROTECTED_PREFIXES = ("/v1/", "/chat/")


def _check() -> None:
    state = g._get_current_object()
    state.client = ""
    keys = services().client_keys
    if not keys.enabled:
        return
    req = request._get_current_object()
    # OPTIONS is exempt: a browser's CORS preflight never carries credentials.
    if req.method != "OPTIONS" and req.path.startswith(PROTECTED_PREFIXES) and not req.path.startswith(PREFIX):
        authorization = req.headers.get("Authorization")
        if authorization is None and "x-api-key" in req.headers:  # how Anthropic's clients send their key
            authorization = "Bearer " + req.headers["x-api-key"]
        state.client, state.client_key = keys.identify(authorization)


def _limit_headers(response: Response) -> Response:
    """The x-ratelimit-* headers on every answer to a key with limits: where its limits stand
    after this request (its admission's verdict, or a look at the counters)."""
    state = g._get_current_object()
    key = state.get("client_key")
    if key is not None and key.limited:
        found = verdict()
        if found is NOT_ADMITTED:
            found = services().limits.look(key)
        _replace(response.headers, limits.headers(found))
        if "lowered" in state:
            response.headers[LOWERED_HEADER] = str(state.lowered)
    return response


def _replace(headers: Headers, found: dict[str, str]) -> None:
    """Set each of `found`, replacing a header of the same name in any case, as `update` does,
    but reading the present names once (`update` scans every header again for each name)."""
    present = {name.lower() for name, _ in headers}
    for name, value in found.items():
        if name.lower() in present:
            headers.set(name, value)
        else:
            headers.add(name, value)


def init_app(app: Flask) -> None:
    """Check the key of every API request, after the request is traced; tell it its limits."""
    app.before_request(_check)
    app.after_request(_limit_headers)
