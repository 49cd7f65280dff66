"""The tracer of this worker (and its GenAI metrics, `meters`): made once its app is built
(after the fork), when an OTLP endpoint is set; its batch processor's queue is bounded and its
export runs beside the requests."""

from __future__ import annotations

import logging
from typing import Any

from ..config import Settings
from .meters import configure_meters, shutdown_meters

log = logging.getLogger("chatwait.traces")

MAX_QUEUE = 4096  # spans waiting for export; past it new ones are dropped, never waited for
MAX_BATCH = 512
SCHEDULE_MS = 1000
EXPORT_TIMEOUT_MS = 10_000

_state: dict[str, Any] = {"tracer": None, "provider": None}


def configure_tracing(settings: Settings) -> None:
    """Start exporting traces where the standard OTEL_EXPORTER_OTLP_* variables say (nothing
    when no endpoint is set)."""
    if not settings.traced or _state["provider"] is not None:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": settings.operations.otel_service_name})
    configure_meters(resource)
    provider = TracerProvider(resource=resource)
    processor = BatchSpanProcessor(
        OTLPSpanExporter(),
        max_queue_size=MAX_QUEUE,
        max_export_batch_size=MAX_BATCH,
        schedule_delay_millis=SCHEDULE_MS,
        export_timeout_millis=EXPORT_TIMEOUT_MS,
    )
    provider.add_span_processor(processor)
    _state["provider"], _state["tracer"] = provider, provider.get_tracer("chatwait")
    log.info("traces_exported", extra={"service_name": settings.operations.otel_service_name})


def enabled() -> bool:
    """Whether spans are made."""
    return _state["tracer"] is not None


def tracer() -> Any:
    """This worker's tracer (None: no traces)."""
    return _state["tracer"]


def shutdown_tracing() -> None:
    """Export what is queued (the worker stops), within the export timeout."""
    provider = _state["provider"]
    if provider is not None:
        provider.shutdown()
    shutdown_meters()
