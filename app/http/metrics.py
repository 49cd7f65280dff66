"""GET /metrics: Prometheus' text format, every worker's values summed (METRICS_ENABLED)."""

from __future__ import annotations

from flask import Blueprint, Response

from ..apis.request import services
from ..errors import ApiError
from .operator import require_operator

bp = Blueprint("metrics", __name__)

PATH = "/metrics"


@bp.get(PATH)
def metrics() -> Response:
    """The current value of every metric (404 when METRICS_ENABLED=false; 401 without OPERATOR_TOKEN where set)."""
    catalogue = services().metrics
    if not catalogue.enabled:
        raise ApiError("not_found", "Metrics are switched off (METRICS_ENABLED=false).")
    require_operator("/metrics")
    body, content_type = catalogue.render()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
