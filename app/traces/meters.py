"""The GenAI conventions' client metrics of this worker, exported over OTLP/HTTP beside its traces
(same endpoint, same switch): `gen_ai.client.operation.duration` and `gen_ai.client.token.usage`
for each upstream attempt (a chat operation of ChatWait as the model server's client), and
`chatwait.gen_ai.client.cost` (USD) for each priced attempt. Their attributes are bounded sets:
the operation, the provider, the model asked, the token type, the error type. Without an
endpoint nothing is made and every call returns at once."""

from __future__ import annotations

import os
from typing import Any

EXPORT_MS = 10_000  # how often the worker's sums are exported (unless OTEL_METRIC_EXPORT_INTERVAL says)
EXPORT_TIMEOUT_MS = 10_000
# The buckets the GenAI conventions advise for each histogram.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)

DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"
COST = "chatwait.gen_ai.client.cost"

_state: dict[str, Any] = {"provider": None, "duration": None, "tokens": None, "cost": None}


def configure_meters(resource: Any, reader: Any = None) -> None:
    """Make this worker's instruments, exported every EXPORT_MS where OTEL_EXPORTER_OTLP_* says
    (`reader`: another reader instead, a test's)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    if reader is None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        interval = None if os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") else EXPORT_MS  # the standard variable wins
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(), interval, EXPORT_TIMEOUT_MS)
    views = [
        View(instrument_name=DURATION, aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS)),
        View(instrument_name=TOKEN_USAGE, aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS)),
    ]
    provider = MeterProvider(resource=resource, metric_readers=[reader], views=views)
    meter = provider.get_meter("chatwait")
    _state.update(
        provider=provider,
        duration=meter.create_histogram(DURATION, unit="s", description="GenAI operation duration."),
        tokens=meter.create_histogram(TOKEN_USAGE, unit="{token}", description="Input and output tokens used."),
        cost=meter.create_counter(COST, unit="USD", description="What upstream attempts cost (the prices table)."),
    )


def operation(
    provider: str, model: str, seconds: float, tokens: tuple[int | None, int | None], error_type: str | None
) -> None:
    """One upstream attempt ended after `seconds`, having read and written `tokens` (input,
    output; None: unknown), failed as `error_type` (None: it answered)."""
    duration = _state["duration"]
    if duration is None:
        return
    attributes = _labels(provider, model)
    if error_type is not None:
        attributes["error.type"] = error_type
    duration.record(seconds, attributes)
    for kind, count in zip(("input", "output"), tokens, strict=True):
        if count is not None:
            _state["tokens"].record(count, {**attributes, "gen_ai.token.type": kind})


def cost(provider: str, model: str, usd: float) -> None:
    """An upstream attempt on `model` cost `usd`."""
    counter = _state["cost"]
    if counter is not None and usd > 0:
        counter.add(usd, _labels(provider, model))


def _labels(provider: str, model: str) -> dict[str, str]:
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model}


def shutdown_meters() -> None:
    """Export what is summed (the worker stops), within the export timeout."""
    provider = _state["provider"]
    if provider is not None:
        provider.shutdown()
    _state.update(provider=None, duration=None, tokens=None, cost=None)
