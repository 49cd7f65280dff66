"""Traces and attempts in this process: without a tracer every call is a no-op; with one (an
in-memory exporter) an attempt's span carries the GenAI conventions' attributes and ends with
its tokens, and the ledger's attempts keep their server, tokens, outcome and cost."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_CONVERSATION_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_FREQUENCY_PENALTY,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_PRESENCE_PENALTY,
    GEN_AI_REQUEST_SEED,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_REQUEST_TOP_P,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import (
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_TOKEN_USAGE,
)

from app import traces
from app.config import load_settings
from app.config.prices import Price
from app.generation.attempts import MAX_ATTEMPTS, Attempts, requested
from app.providers.call import ChatCall
from app.traces import meters, setup

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


def test_an_attempts_span_carries_the_genai_conventions_names_as_the_package_defines_them(exported) -> None:
    """Every gen_ai attribute an attempt's span has is one the opentelemetry-semantic-conventions
    package defines: the request's sampling parameters, stop sequences, streaming and the
    conversation; the reply's id, cache reads and writes, reasoning tokens, time to first chunk."""
    options = {"top_p": 0.9, "frequency_penalty": 0.5, "presence_penalty": 0.25, "seed": 7, "stop": "END"}
    call = ChatCall("gpt", [], 64, temperature=0.2, options=options, conversation_id="conv_1")
    attempts = Attempts(None, "openai", requested(call))
    attempts.begin("gpt")
    attempts.first_token()
    attempts.end("completed", "a", 6, input=100, cached=40, written=30, reasoning=2, response_id="chatcmpl-1",
                 finish_reason="stop")  # fmt: skip
    (span,) = exported.get_finished_spans()
    found = dict(span.attributes)
    assert found | {"gen_ai.response.time_to_first_chunk": 0} == {
        GEN_AI_OPERATION_NAME: "chat", GEN_AI_PROVIDER_NAME: "openai", GEN_AI_REQUEST_MODEL: "gpt",
        GEN_AI_REQUEST_MAX_TOKENS: 64, GEN_AI_REQUEST_STREAM: True, GEN_AI_REQUEST_TEMPERATURE: 0.2,
        GEN_AI_REQUEST_TOP_P: 0.9, GEN_AI_REQUEST_FREQUENCY_PENALTY: 0.5, GEN_AI_REQUEST_PRESENCE_PENALTY: 0.25,
        GEN_AI_REQUEST_SEED: 7, GEN_AI_REQUEST_STOP_SEQUENCES: ("END",), GEN_AI_CONVERSATION_ID: "conv_1",
        GEN_AI_USAGE_INPUT_TOKENS: 100, GEN_AI_USAGE_OUTPUT_TOKENS: 6, GEN_AI_RESPONSE_MODEL: "gpt",
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 40, GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 30,
        GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 2, GEN_AI_RESPONSE_ID: "chatcmpl-1",
        GEN_AI_RESPONSE_FINISH_REASONS: ("stop",), GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0,
        "chatwait.upstream_server": "a",
    }  # fmt: skip
    assert 0 <= found[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] < 60
    defined = {value for name, value in vars(gen_ai_attributes).items() if name.startswith("GEN_AI_")}
    assert {name for name in found if name.startswith("gen_ai.")} <= defined


def test_each_attempt_is_counted_in_the_genai_client_metrics(exported) -> None:
    """With traces on, each upstream attempt records its duration and tokens, and each priced
    attempt its cost, under the GenAI conventions' metric names and bounded attributes."""
    reader = InMemoryMetricReader()
    meters.configure_meters(Resource.create({}), reader)
    try:
        settings = types.SimpleNamespace(price_of=lambda model: Price(1.0, 10.0))
        attempts = Attempts(None, "openai", {})
        attempts.begin("gpt")
        attempts.end("failed", "a", error_code="upstream_unavailable")
        attempts.begin("gpt")
        attempts.end("completed", "b", 6, input=100)
        attempts.ledger(settings)  # type: ignore[arg-type]
        found = {metric.name: metric for resource in reader.get_metrics_data().resource_metrics
                 for scope in resource.scope_metrics for metric in scope.metrics}  # fmt: skip
    finally:
        meters.shutdown_meters()
    assert set(found) == {GEN_AI_CLIENT_OPERATION_DURATION, GEN_AI_CLIENT_TOKEN_USAGE, meters.COST}
    points = found[GEN_AI_CLIENT_OPERATION_DURATION].data.data_points
    durations = {point.attributes.get("error.type"): point.count for point in points}
    assert durations == {"upstream_unavailable": 1, None: 1}
    tokens = {(p.attributes["gen_ai.token.type"], p.attributes.get("error.type")): p.sum
              for p in found[GEN_AI_CLIENT_TOKEN_USAGE].data.data_points}  # fmt: skip
    assert tokens == {("input", None): 100, ("output", None): 6, ("output", "upstream_unavailable"): 0}
    (cost,) = found[meters.COST].data.data_points
    assert cost.value == pytest.approx((100 * 1.0 + 6 * 10.0) / 1e6)
    assert dict(cost.attributes) == {GEN_AI_OPERATION_NAME: "chat", GEN_AI_PROVIDER_NAME: "openai",
                                     GEN_AI_REQUEST_MODEL: "gpt"}  # fmt: skip
