"""The Flask glue: the app's hooks (tracing, CORS, client keys, error rendering), the service's
own endpoints (health and readiness, metrics, a key's spend, the contract, the page), and the API families
(`app.apis`), registered here: one line each in FAMILIES.

Views stay thin: validate, hand over to the services, return; every failure is raised
as an ApiError and rendered by `errors` in the shape of the endpoint's family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request

from ..apis import chat_completions, conversations, messages, native, responses, shapes
from ..config import Settings
from . import admin, auth, cors, errors, health, metrics, openapi, page, request_log, spend, upgrades

WEBSOCKET_PATHS = "chatwait.websocket_paths"  # app.extensions: the paths of werkzeug's websocket rules
FAMILIES = (
    native.FAMILY,
    chat_completions.FAMILY,
    responses.FAMILY,
    conversations.FAMILY,
    messages.FAMILY,
)


class SyncFlask(Flask):
    """Flask for views and hooks that are all plain functions, as a gevent worker runs them."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """`func` itself: Flask's own check for a coroutine function runs on every hook and view
        of every request, and none here is one (`test_layout` checks)."""
        return func

    def make_default_options_response(self) -> Response:
        """Flask's answer to OPTIONS, its Allow without the methods only a WebSocket upgrade may
        use there (werkzeug counts those too): Allow is what a plain request may use."""
        response = super().make_default_options_response()
        paths = self.extensions.get(WEBSOCKET_PATHS)
        if paths is None:
            paths = self.extensions[WEBSOCKET_PATHS] = {r.rule for r in self.url_map.iter_rules() if r.websocket}
        if request.path in paths:
            for method in ("get", "head"):  # lower case: HeaderSet.remove compares its entries lowered
                response.allow.discard(method)
        return response


def register_formats() -> None:
    """Every family's error shape and stream wire (what the stores and the server shell need,
    with or without an app)."""
    for family in FAMILIES:
        family.register_formats()
    _own_shapes()


def _own_shapes() -> None:
    """The service's own paths that answer in its own shape (under /v1/, which OpenAI's takes)."""
    shapes.register((admin.PREFIX,), shapes.own_shape)


def init_app(app: Flask, settings: Settings) -> None:
    """Register the error handlers, the tracing and key hooks, the service's endpoints and every family."""
    errors.init_app(app)
    request_log.init_app(app)
    cors.init_app(app)  # a preflight is answered before the key check: it never carries one
    auth.init_app(app)  # after request_log: a refused request is logged with its correlation id
    upgrades.init_app(app)
    for family in FAMILIES:
        family.init_app(app, settings)
    _own_shapes()
    openapi.init_app(app, settings, FAMILIES)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(spend.bp)
    app.register_blueprint(admin.bp)
    page.init_app(app)
