"""Assembles the Flask app from its parts (see `app.create_app`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from . import chat, errors, health, page, tracing
from .config import load_settings
from .logs import configure_logging
from .providers import build_provider
from .runtime import require_gevent_patched
from .services import Services

log = logging.getLogger("chatwait")


def build_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The app for the environment plus `overrides`."""
    settings = load_settings(overrides)
    configure_logging(settings.log_level)
    if not settings.testing:
        require_gevent_patched()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    found = Services.build(settings, build_provider(settings))
    app.extensions["chatwait"] = found
    errors.init_app(app)
    tracing.init_app(app)
    app.register_blueprint(chat.bp)
    app.register_blueprint(health.bp)
    page.init_app(app)
    found.store.start_reaper()
    described = found.provider.describe()
    log.info("service_started", extra={"provider": described["provider"], "model": described["model"]})
    return app
