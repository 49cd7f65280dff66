"""WebSocket upgrades: taken only by a route with a WebSocket mode (werkzeug's `websocket`
rules, such as the Responses API's); to any other path that exists an upgrade request is
refused with 426 upgrade_required, not answered as a plain request (or a 405)."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import NotFound

from ..errors import ApiError
from ..hub.websocket import asks_for_websocket


def _refuse_upgrade() -> None:
    environ = request.environ
    if "HTTP_UPGRADE" not in environ or not asks_for_websocket(environ):
        return
    rule = request.url_rule
    if (rule is None or not rule.websocket) and not isinstance(request.routing_exception, NotFound):
        raise ApiError("upgrade_required", f"{request.path[:200]} has no WebSocket mode.")


def init_app(app: Flask) -> None:
    """Install the hook (after the key check: an upgrade without a key is a 401 anywhere)."""
    app.before_request(_refuse_upgrade)
