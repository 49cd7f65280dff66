"""The HTTP API: blueprints (chat, health, page), request intake, tracing, the served contract.

Views stay thin: validate, hand over to the streaming layer, return; every failure is raised
as an ApiError and rendered by `errors`.
"""

from __future__ import annotations

from flask import Flask

from . import chat, errors, health, page, tracing


def init_app(app: Flask) -> None:
    """Register the error handlers, the tracing hooks and every blueprint."""
    errors.init_app(app)
    tracing.init_app(app)
    app.register_blueprint(chat.bp)
    app.register_blueprint(health.bp)
    page.init_app(app)
