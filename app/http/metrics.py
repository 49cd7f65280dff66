"""GET /metrics: Prometheus' text format, every worker's values summed (METRICS_ENABLED)."""

from __future__ import annotations

from flask import Blueprint, Response

from ..apis.request import services
from ..errors import ApiError

bp = Blueprint("metrics", __name__)

PATH = "/metrics"


@bp.get(PATH)
def metrics() -> Response:
    """The current value of every metric (404 when METRICS_ENABLED=false)."""
    catalogue = services().metrics
    if not catalogue.enabled:
        raise ApiError("not_found", "Metrics are switched off (METRICS_ENABLED=false).")
    body, content_type = catalogue.render()
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
