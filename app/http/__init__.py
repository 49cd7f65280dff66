"""The HTTP API: views per API family (`native`, `openai` chat completions, `responses`; `streams`
for what they do with a stream), models, health, metrics, the page; request `intake`, client keys, CORS, tracing, the
served contract (`openapi`).

Views stay thin: validate, hand over to the services, return; every failure is raised
as an ApiError and rendered by `errors` in the shape of the endpoint's family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from . import auth, cors, errors, health, metrics, models, page, responses, tracing
from . import native as chat
from . import openai as completions


class SyncFlask(Flask):
    """Flask for views and hooks that are all plain functions, as a gevent worker runs them."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """`func` itself: Flask's own check for a coroutine function runs on every hook and view
        of every request, and none here is one (`test_layout` checks)."""
        return func


def init_app(app: Flask) -> None:
    """Register the error handlers, the tracing and key hooks, and every blueprint."""
    errors.init_app(app)
    tracing.init_app(app)
    cors.init_app(app)  # a preflight is answered before the key check: it never carries one
    auth.init_app(app)  # after tracing: a refused request is logged with its correlation id
    app.register_blueprint(chat.bp)
    app.register_blueprint(completions.bp)
    app.register_blueprint(responses.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(health.bp)
    page.init_app(app)
