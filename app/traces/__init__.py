"""OpenTelemetry traces as its GenAI semantic conventions have them: a span per HTTP request, one
child per upstream attempt (ended at the attempt's last token), the stream's moments as span
events, `traceparent` taken from the client and passed to the upstream. Exported over OTLP/HTTP
when OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) is set, in batches from a bounded queue
that drops rather than waits; otherwise nothing is made and every call returns at once. No
message content is ever put in a span."""

from .setup import configure_tracing, enabled, shutdown_tracing
from .spans import AttemptSpan, Parent, detach, end_request, event, inject, parent_of, start_request, upstream

__all__ = [
    "AttemptSpan",
    "Parent",
    "configure_tracing",
    "detach",
    "enabled",
    "end_request",
    "event",
    "inject",
    "parent_of",
    "shutdown_tracing",
    "start_request",
    "upstream",
]
