"""ChatWait: a wait and resumable streaming chat API in front of a large language model.

Layers, each importing only those after it: `api` (HTTP views) → `streaming` (a stream's
lifecycle) → `providers` (where text comes from) → `metrics` (Prometheus) → `server` and `logs`
(gevent, sockets, gunicorn; logging) → the base pieces beside this file (`config`, `errors`,
`schemas`, `ids`).

Importing this package stays light (no Flask, no HTTP client, no ssl): gunicorn.conf.py
reads `app.config` and `app.logs` in the master process, before gevent patches the worker.
`create_app` imports the rest when it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("chatwait")


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings (env plus `overrides`, same names), logging, services, routes.

    Raises ConfigError on a bad setting, and RuntimeError when gevent has not patched the
    standard library first (unless TESTING, where the Flask test client drives it).
    """
    from flask import Flask

    from . import api
    from .api.services import Services
    from .config import load_settings
    from .logs import configure_logging
    from .server.shutdown import LIFECYCLE
    from .server.startup import require_gevent_patched

    settings = load_settings(overrides)
    configure_logging(settings.log_level, settings.secrets)
    if not settings.testing:
        require_gevent_patched()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    services = Services.build(settings)
    app.extensions["chatwait"] = services
    app.extensions[LIFECYCLE] = services  # what the worker tells when it stops
    api.init_app(app)
    services.start()
    described = services.provider.describe()
    log.info("service_started", extra={"provider": described["provider"], "model": described["model"]})
    return app


def close_app(app: Flask) -> None:
    """Shut the app's services down: live streams are stopped, upstream connections closed."""
    services = getattr(app, "extensions", {}).get("chatwait")
    if services is not None:
        services.close()
