"""Liveness, readiness and the contract file."""

from __future__ import annotations

import datetime

from flask import Blueprint, Response

from .services import services

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> dict[str, str]:
    """Liveness: the worker answers; with its clock (ISO 8601, UTC) for a monitor to compare."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"status": "healthy", "timestamp": now}


@bp.get("/ready")
def ready() -> tuple[dict[str, object], int]:
    """Readiness: the upstream answering (or the embedded model loaded) and the stream store
    answering; 503 naming the failing checks. Also which provider, model and store, the streams
    this worker holds, the live streams the store counts (the cluster's, with Redis), and
    whether the API asks for client keys."""
    found = services()
    checks, live, ok = found.readiness.report()
    return {
        "status": "ready" if ok else "not_ready",
        "checks": checks,
        "failing": [name for name, check in checks.items() if not check["ok"]],
        **found.provider.describe(),
        "streams": len(found.store),
        "live_streams": live,
        "store": found.settings.stream_store,
        "store_detail": checks["store"]["detail"],
        "client_keys": found.client_keys.enabled,
    }, 200 if ok else 503


@bp.get("/openapi.yaml")
def contract() -> Response:
    """The OpenAPI contract this service implements."""
    return Response(services().contract, mimetype="application/yaml")
