"""Liveness and readiness."""

from __future__ import annotations

import datetime

from flask import Blueprint

from ..apis.request import services
from ..apis.schema import serialise
from ..config import priced_models
from .operator import is_operator
from .schemas import HealthSchema, ReadySchema

bp = Blueprint("health", __name__)


@bp.get("/health")
@bp.get("/api/hello")  # Claude Code's preconnect (a HEAD) to its base URL
def health() -> dict[str, str]:
    """Liveness: the worker answers; with its clock (ISO 8601, UTC) for a monitor to compare."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return serialise(HealthSchema, {"status": "healthy", "timestamp": now})


@bp.get("/ready")
def ready() -> tuple[dict[str, object], int]:
    """Readiness: the upstream answering (or the embedded model loaded) and the stream store
    answering; 503 naming the failing checks. Also which provider, model and store, the streams
    this worker holds, the live streams the store counts (the cluster's, with Redis), and
    whether the API asks for client keys; with OPERATOR_TOKEN set and not sent, the status and
    the failing checks alone."""
    found = services()
    checks, live, ok = found.readiness.report()
    failing = [name for name, check in checks.items() if not check["ok"]]
    status = {"status": "ready" if ok else "not_ready", "failing": failing}
    if not is_operator():  # OPERATOR_TOKEN set and not sent: the status alone
        return serialise(ReadySchema, status), 200 if ok else 503
    reply = {
        **status,
        "checks": checks,
        **found.provider.describe(),
        "streams": len(found.store),
        "live_streams": live,
        "store": found.settings.streams.stream_store,
        "store_detail": checks["store"]["detail"],
        "client_keys": found.client_keys.enabled,
        "notes": found.readiness.notes(),
        "prices": priced_models(found.settings),
    }
    return serialise(ReadySchema, reply), 200 if ok else 503
