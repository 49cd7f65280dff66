"""ChatWait: a wait and resumable streaming chat API in front of a large language model.

Packages, each importing only those after it: `http` (the Flask glue: hooks, the service's own
endpoints, the families registered) → `apis` (one package per API family, and what they share)
→ `service` (framework-free: admission, key limits, starting or waiting a generation) →
`limits` (client keys' limits) → `streaming` (resumable streams, their wire registry, the
`redis` store) → `generation` (a generation in any mode) → `providers` (where text comes from)
→ `metrics` (Prometheus) and `traces` (OpenTelemetry) → `connect` (Redis connections) → `hub` and `logs` (gevent
primitives; logging) → the base pieces beside this file (`config`, `errors`, `ids`). `server`
is the gunicorn shell on top: only gunicorn.conf.py, wsgi.py and `create_app` reach it.

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

    from .config import Settings

log = logging.getLogger("chatwait")


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The app as a server runs it: refuses to run unless gevent has patched the standard
    library first, then `build_app` with the settings the gunicorn master validated (or the
    environment's, with `overrides` on top, same names).

    Raises ConfigError on a bad setting, and RuntimeError when gevent has not patched first.
    """
    from .config import load_settings
    from .server.master import running_settings
    from .server.startup import require_gevent_patched

    require_gevent_patched()
    app = build_app(running_settings() if overrides is None else load_settings(overrides))
    app.extensions["chatwait"].readiness.announce()  # a server's start-up says what it found upstream
    return app


def build_app(settings: Settings) -> Flask:
    """Build the app for `settings`: logging, services, routes, background work started.

    It does not check gevent's patching: tests drive it with Flask's test client.
    """
    from . import http
    from .config import priced_models
    from .logs import configure_logging
    from .server.shutdown import LIFECYCLE
    from .service.services import Services
    from .traces import configure_tracing

    configure_logging(settings.operations.log_level, settings.secrets)
    configure_tracing(settings)
    _warn_of_short_keys(settings)
    _warn_of_unpriced_budgets(settings)
    app = http.SyncFlask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.requests.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    services = Services.build(settings)
    app.extensions["chatwait"] = services
    app.extensions[LIFECYCLE] = services  # what the worker tells when it stops
    http.init_app(app, settings)
    services.start()
    described = services.provider.describe()
    started = {"provider": described["provider"], "model": described["model"], "prices": priced_models(settings)}
    log.info("service_started", extra=started)
    return app


def _warn_of_short_keys(settings: Settings) -> None:
    """A key shorter than MIN_LITERAL_CHARS is not redacted from the logs as it is: say so."""
    from .logs.redaction import MIN_LITERAL_CHARS

    for server in settings.upstream.upstreams:
        key = server.api_key
        if key and len(key) < MIN_LITERAL_CHARS:
            extra = {"setting": "OPENAI_API_KEY", "upstream_server": server.name, "min_chars": MIN_LITERAL_CHARS}
            log.warning("short_key_not_redacted", extra={**extra, "chars": len(key)})


def _warn_of_unpriced_budgets(settings: Settings) -> None:
    """A key's budget (or its end users') over models UPSTREAMS_FILE gives no price counts nothing
    spent on them: say which, once, at start-up."""
    from .config import unpriced_budgets, unpriced_note

    for name, models in unpriced_budgets(settings):
        detail = unpriced_note(name, models)
        log.warning("budget_without_price", extra={"key_name": name, "models": models[:20], "detail": detail})


def close_app(app: Flask) -> None:
    """Shut the app's services down: live streams are stopped, upstream connections closed."""
    services = getattr(app, "extensions", {}).get("chatwait")
    if services is not None:
        services.close()
