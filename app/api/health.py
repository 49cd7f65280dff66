"""Liveness, readiness and the contract file."""

from __future__ import annotations

from flask import Blueprint, Response

from .services import services

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> dict[str, str]:
    """Liveness: the worker answers."""
    return {"status": "ok"}


@bp.get("/ready")
def ready() -> dict[str, object]:
    """Readiness: configuration loaded and the provider built; says which provider and model."""
    found = services()
    return {"status": "ready", **found.provider.describe(), "streams": len(found.store)}


@bp.get("/openapi.yaml")
def contract() -> Response:
    """The OpenAPI contract this service implements."""
    return Response(services().contract, mimetype="application/yaml")
