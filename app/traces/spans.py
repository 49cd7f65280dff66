"""The spans: a request's (kind SERVER, under the client's `traceparent`), an upstream attempt's
(kind CLIENT, `chat {model}`, the GenAI conventions' attributes), events on the current span,
and the `traceparent` an upstream request carries. Each call is a no-op without a tracer."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from . import meters
from .setup import tracer

Parent = Any  # an OpenTelemetry Context holding the request's span (None: no traces)


def start_request(method: str, route: str, path: str, headers: Mapping[str, str]) -> tuple[Any, Any] | None:
    """The span of an HTTP request, made current in this greenlet, under the trace its client's
    `traceparent` names: (span, the token that `detach` takes); None without traces."""
    found = tracer()
    if found is None:
        return None
    from opentelemetry import context, propagate, trace

    attributes = {"http.request.method": method, "http.route": route, "url.path": path[:256]}
    span = found.start_span(
        f"{method} {route}", context=propagate.extract(headers), kind=trace.SpanKind.SERVER, attributes=attributes
    )
    return span, context.attach(trace.set_span_in_context(span))


def detach(token: Any) -> None:
    """The request's span is no longer this greenlet's current one (its request is served)."""
    from opentelemetry import context

    context.detach(token)


def end_request(span: Any, status: int, attributes: Mapping[str, Any]) -> None:
    """End a request's span: its status, and `attributes` (its correlation id, stream, key name)."""
    from opentelemetry import trace

    span.set_attribute("http.response.status_code", status)
    span.set_attributes({name: value for name, value in attributes.items() if value is not None})
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(trace.StatusCode.ERROR)
    span.end()


def parent_of(span: Any) -> Parent:
    """What a generation's attempts take as their parent: the context of `span`."""
    from opentelemetry import trace

    return trace.set_span_in_context(span)


def event(name: str, attributes: Mapping[str, Any]) -> None:
    """An event on this greenlet's current span (a resume on its request's)."""
    if tracer() is None:
        return
    from opentelemetry import trace

    trace.get_current_span().add_event(name, dict(attributes))


def inject(headers: dict[str, str]) -> None:
    """The current span's `traceparent` (and `tracestate`) into an upstream request's headers."""
    if tracer() is None:
        return
    from opentelemetry import propagate

    propagate.inject(headers)


def upstream(host: str, port: int | None, provider: str | None = None) -> None:
    """Name the server the current attempt's request goes to (and the API it speaks)."""
    if tracer() is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    span.set_attribute("server.address", host)
    if port is not None:
        span.set_attribute("server.port", port)
    if provider is not None:
        span.set_attribute("gen_ai.provider.name", provider)


class AttemptSpan:
    """One upstream attempt's span, a child of the request's: `chat {model}`, from its request to
    its last token (or its failure), with the GenAI conventions' request and usage attributes."""

    __slots__ = ("_model", "_provider", "_span", "_started")

    def __init__(self, parent: Parent, model: str, provider: str, attributes: Mapping[str, Any]) -> None:
        from opentelemetry import trace

        found = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model}
        found |= {name: value for name, value in attributes.items() if value is not None}
        self._span = tracer().start_span(f"chat {model}", context=parent, kind=trace.SpanKind.CLIENT, attributes=found)
        self._started, self._model, self._provider = time.monotonic(), model, provider

    @classmethod
    def begin(cls, parent: Parent, model: str, provider: str, attributes: Mapping[str, Any]) -> AttemptSpan | None:
        """The span of an attempt starting now (None without traces)."""
        return None if tracer() is None else cls(parent, model, provider, attributes)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """This span as the current one while the attempt's request is sent (its `traceparent`)."""
        from opentelemetry import trace

        with trace.use_span(self._span, end_on_exit=False):
            yield

    def event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        self._span.add_event(name, dict(attributes or {}))

    def first_chunk(self) -> None:
        """Its first chunk came: when (`gen_ai.response.time_to_first_chunk`, seconds, and an event)."""
        self._span.set_attribute("gen_ai.response.time_to_first_chunk", round(time.monotonic() - self._started, 6))
        self._span.add_event("chatwait.first_token")

    def end(self, usage: Mapping[str, Any], finish_reason: str | None, error_type: str | None) -> None:
        """End it at the attempt's last token: its tokens (`gen_ai.usage.*`, `gen_ai.response.*`)
        and how it ended (`error.type` for a failure); the operation's metrics (`meters`)."""
        from opentelemetry import trace

        span = self._span
        span.set_attributes({name: value for name, value in usage.items() if value is not None})
        tokens = (usage.get("gen_ai.usage.input_tokens"), usage.get("gen_ai.usage.output_tokens"))
        meters.operation(self._provider, self._model, time.monotonic() - self._started, tokens, error_type)
        if finish_reason is not None:
            span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            span.set_status(trace.StatusCode.ERROR)
        span.end()
