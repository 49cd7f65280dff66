"""Traces and attempts in this process: without a tracer every call is a no-op; with one (an
in-memory exporter) an attempt's span carries the GenAI conventions' attributes and ends with
its tokens, and the ledger's attempts keep their server, tokens, outcome and cost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app import traces
from app.config import load_settings
from app.config.prices import Price
from app.generation.attempts import MAX_ATTEMPTS, Attempts
from app.traces import setup

SETTINGS = load_settings(environ={"OPENAI_API_KEY": "sk-test"})


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """A tracer whose spans are kept here (as configure_tracing would make one, without OTLP)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    setup._state.update(provider=provider, tracer=provider.get_tracer("test"))
    yield exporter
    setup._state.update(provider=None, tracer=None)


def test_without_a_tracer_nothing_is_made() -> None:
    assert not traces.enabled() and traces.start_request("GET", "/x", "/x", {}) is None
    headers: dict[str, str] = {}
    traces.inject(headers)
    traces.event("chatwait.resume", {})
    traces.upstream("example.com", 443)
    assert headers == {} and traces.AttemptSpan.begin(None, "m", "openai", {}) is None
    attempts = Attempts(None, "openai", {})
    attempts.begin("m")
    with attempts.current():
        pass
    attempts.end("completed", None, 3, input=5)
    kept = [(e.model, e.outcome, e.input_tokens, e.output_tokens) for e in attempts.entries]
    assert kept == [("m", "completed", 5, 3)]


def test_a_request_and_its_attempts_make_a_parent_and_children(exported) -> None:
    client = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    started = traces.start_request("POST", "/v1/chat/completions", "/v1/chat/completions", client)
    assert started is not None
    span, token = started
    asked = {"gen_ai.request.max_tokens": 9, "gen_ai.request.temperature": None}
    attempts = Attempts(traces.parent_of(span), "openai", asked)
    attempts.begin("gpt")
    with attempts.current():
        headers: dict[str, str] = {}
        traces.inject(headers)
        traces.upstream("10.0.0.5", 8000, "anthropic")
    attempts.end("cut", "a", 4, error_code="upstream_interrupted")
    attempts.resending(20)
    attempts.begin("gpt", "interrupted")
    attempts.first_token()
    attempts.end("completed", "b", 6, input=21, cached=10, finish_reason="stop")
    traces.detach(token)
    traces.end_request(span, 200, {"chatwait.stream_id": "s", "chatwait.client_name": None})
    request, (cut, continued) = exported.get_finished_spans()[-1], exported.get_finished_spans()[:2]
    assert request.parent.span_id == 0x00F067AA0BA902B7
    assert request.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert cut.parent.span_id == request.context.span_id == continued.parent.span_id
    assert headers["traceparent"] == f"00-{request.context.trace_id:032x}-{cut.context.span_id:016x}-01"
    assert dict(cut.attributes) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "gpt",
        "gen_ai.request.max_tokens": 9, "server.address": "10.0.0.5", "server.port": 8000,
        "gen_ai.usage.output_tokens": 4, "gen_ai.response.model": "gpt", "chatwait.upstream_server": "a",
        "error.type": "upstream_interrupted",
    }  # fmt: skip
    assert continued.attributes["gen_ai.usage.input_tokens"] == 21
    assert continued.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert "error.type" not in continued.attributes
    assert [e.name for e in continued.events] == ["chatwait.rescue", "chatwait.first_token"]
    assert request.attributes["http.response.status_code"] == 200
    assert "chatwait.client_name" not in request.attributes, "None is left out"


def test_the_ledger_keeps_each_attempt_with_its_cost() -> None:
    settings = load_settings(environ={"OPENAI_API_KEY": "sk-test"})
    object.__setattr__(settings, "price_of", lambda model: Price(1.0, 10.0, 0.5) if model == "priced" else None)
    attempts = Attempts(None, "openai", {})
    attempts.begin("priced")
    attempts.end("failed", "a", error_code="upstream_unavailable")
    attempts.begin("priced")
    attempts.end("cut", "b", 5)
    attempts.resending(300)
    attempts.begin("free")
    attempts.close(1000)  # a deadline: the attempt still open stops
    found = [entry.as_dict(settings) for entry in attempts.entries]
    assert found == [
        {"model": "priced", "server": "a", "outcome": "failed", "input_tokens": 0, "output_tokens": 0,
         "error_code": "upstream_unavailable", "cost_usd": 0.0},
        {"model": "priced", "server": "b", "outcome": "cut", "input_tokens": 1000, "output_tokens": 5,
         "cost_usd": 0.00105},
        {"model": "free", "server": None, "outcome": "stopped", "input_tokens": 300, "output_tokens": 0},
    ]  # fmt: skip
    assert sum(attempt["output_tokens"] for attempt in found) == 5


def test_attempts_are_bounded_the_first_and_the_latest_kept() -> None:
    attempts = Attempts(None, "openai", {})
    for number in range(MAX_ATTEMPTS + 10):
        attempts.begin(f"m{number}")
        attempts.end("failed", None)
    names = [entry.model for entry in attempts.entries]
    assert len(names) == MAX_ATTEMPTS and names[0] == "m0" and names[-1] == f"m{MAX_ATTEMPTS + 9}"
