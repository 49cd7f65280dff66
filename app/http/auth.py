"""Optional client keys (CHATWAIT_API_KEYS): with keys set, every API endpoint asks for one.

A request to the API (`/v1/...`, and the short `/chat/...` paths) must then carry
`Authorization: Bearer <key>` with one of the keys, or it is refused with 401 invalid_api_key.
The page, its files, /health, /ready and /openapi.yaml stay open. A stream remembers the
digest of the key that started it (never the key itself, in memory or in Redis), and only that
key resumes or stops it; to any other it does not exist. Without keys everything stays open.
"""

from __future__ import annotations

import hmac

from flask import Flask, g, request

from .services import current_services

PROTECTED_PREFIXES = ("/v1/", "/chat/")


def client() -> str:
    """The digest of this request's key ("" when the API is open)."""
    return g._get_current_object().get("client", "")


def owns(started_by: str) -> bool:
    """Whether this request's key is the one that started a stream (always, when the API is open)."""
    return hmac.compare_digest(started_by, client())


def _check() -> None:
    state = g._get_current_object()
    state.client = ""
    keys = current_services().client_keys
    if not keys.enabled:
        return
    req = request._get_current_object()
    # OPTIONS is exempt: a browser's CORS preflight never carries credentials.
    if req.method != "OPTIONS" and req.path.startswith(PROTECTED_PREFIXES):
        state.client = keys.identify(req.headers.get("Authorization"))


def init_app(app: Flask) -> None:
    """Check the key of every API request, after the request is traced."""
    app.before_request(_check)
