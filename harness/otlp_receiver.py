"""An OTLP/HTTP receiver for tests: POST /v1/traces with a protobuf ExportTraceServiceRequest and
/v1/metrics with an ExportMetricsServiceRequest (as the OpenTelemetry exporters send them, gzip or
not), decoded with the specification's own protobuf definitions (opentelemetry-proto); the spans
and the metrics' data points are kept as plain dicts, on 127.0.0.1 and a free port, in a thread
of the test process."""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MAX_BODY_BYTES = 16 * 1_048_576
KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _span(span: Any, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": KINDS.get(span.kind, str(span.kind)),
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "attributes": {item.key: _value(item.value) for item in span.attributes},
        "events": [{"name": e.name, "attributes": {i.key: _value(i.value) for i in e.attributes}} for e in span.events],
        "status": span.status.code,
        "resource": resource,
    }


class OtlpReceiver:
    """The receiver: `endpoint` for OTEL_EXPORTER_OTLP_ENDPOINT, `spans` as received."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.points: list[dict[str, Any]] = []  # every data point of every export, as received
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                if self.path not in ("/v1/traces", "/v1/metrics") or not 0 < length <= MAX_BODY_BYTES:
                    self.send_response(404 if self.path not in ("/v1/traces", "/v1/metrics") else 413)
                    self.end_headers()
                    return
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/metrics":
                    receiver._measured(ExportMetricsServiceRequest.FromString(body))
                    answer = ExportMetricsServiceResponse().SerializeToString()
                else:
                    receiver._received(ExportTraceServiceRequest.FromString(body))
                    answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _received(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {item.key: _value(item.value) for item in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                found += [_span(span, resource) for span in scope_spans.spans]
        with self._lock:
            self.spans += found

    def _measured(self, request: ExportMetricsServiceRequest) -> None:
        found = []
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        attributes = {item.key: _value(item.value) for item in point.attributes}
                        value = point.sum if kind == "histogram" else point.as_double or point.as_int
                        found.append({"name": metric.name, "unit": metric.unit, "attributes": attributes,
                                      "value": value, "count": getattr(point, "count", None)})  # fmt: skip
        with self._lock:
            self.points += found

    def wait_for_points(self, check: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The metrics' data points received once `check(points)` holds (AssertionError after `timeout`)."""
        return self._polled(lambda: self.points, check, timeout, "metrics")

    def wait_for(self, check: Any, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The spans once `check(spans)` holds (AssertionError after `timeout`)."""
        return self._polled(lambda: self.spans, check, timeout, "spans")

    def _polled(self, kept: Any, check: Any, timeout: float, what: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = list(kept())
            if check(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"the {what} never came: {sorted({entry['name'] for entry in found})}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
