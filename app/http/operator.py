"""OPERATOR_TOKEN: what only the operator reads. With it set, /metrics (key names, each key's spend,
the servers) asks for `Authorization: Bearer <token>` (Prometheus's `authorization` setting sends
it), and /ready tells a caller without it only its status and which checks fail (what probes read),
not the hosts and details. /health stays open."""

from __future__ import annotations

import hmac

from flask import request

from ..apis.request import services
from ..errors import ApiError


def is_operator() -> bool:
    """Whether this request may read the operator's details (always, without OPERATOR_TOKEN)."""
    token = services().settings.operations.operator_token
    if token is None:
        return True
    sent = request.headers.get("Authorization", "")
    scheme, _, value = sent.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def require_operator(what: str) -> None:
    """401 unless this request carries OPERATOR_TOKEN."""
    if not is_operator():
        detail = f"{what} is for the operator: send OPERATOR_TOKEN as `Authorization: Bearer <token>`."
        raise ApiError("invalid_api_key", detail)
