"""Liveness, readiness and the contract file."""

from __future__ import annotations

import datetime

from flask import Blueprint, Response

from ..contract.native import HealthSchema, ReadySchema
from ..contract.serve import serialise
from .services import current_services

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> dict[str, str]:
    """Liveness: the worker answers; with its clock (ISO 8601, UTC) for a monitor to compare."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return serialise(HealthSchema, {"status": "healthy", "timestamp": now})


@bp.get("/ready")
def ready() -> tuple[dict[str, object], int]:
    """Readiness: the upstream answering (or the embedded model loaded) and the stream store
    answering; 503 naming the failing checks. Also which provider, model and store, the streams
    this worker holds, the live streams the store counts (the cluster's, with Redis), and
    whether the API asks for client keys."""
    services = current_services()
    checks, live, ok = services.readiness.report()
    reply = {
        "status": "ready" if ok else "not_ready",
        "checks": checks,
        "failing": [name for name, check in checks.items() if not check["ok"]],
        **services.provider.describe(),
        "streams": len(services.store),
        "live_streams": live,
        "store": services.settings.stream_store,
        "store_detail": checks["store"]["detail"],
        "client_keys": services.client_keys.enabled,
    }
    return serialise(ReadySchema, reply), 200 if ok else 503


@bp.get("/openapi.yaml")
def contract() -> Response:
    """The OpenAPI contract this service implements."""
    return Response(current_services().contract, mimetype="application/yaml")
