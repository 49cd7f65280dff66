"""Traces exported over OTLP/HTTP to a receiver started here, read as the OpenTelemetry GenAI
conventions name things: a span per request under the client's traceparent, a `chat {model}`
child per upstream attempt ended at its last token (two for a rescued stream), the upstream's
request carrying the attempt's traceparent, resume and cancel as events, no message content."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from harness.otlp_receiver import OtlpReceiver
from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env
from ..sse import parse

pytestmark = pytest.mark.integration

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SECRET = "the-words-of-the-user"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    found = OtlpReceiver()
    yield found
    found.stop()


@pytest.fixture(scope="module")
def server(fake: FakeUpstream, receiver: OtlpReceiver) -> Iterator[ChatWaitServer]:
    env = server_env(fake.base_url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_SERVICE_NAME="chatwait-test",
                     UPSTREAM_RESCUES="2", OTEL_METRIC_EXPORT_INTERVAL="300")  # fmt: skip
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _trace(receiver: OtlpReceiver, trace_id: str, attempts: int) -> tuple[dict, list[dict]]:
    """The request's span of a trace and its attempt spans, once all have come."""

    def whole(spans: list[dict]) -> bool:
        mine = [s for s in spans if s["trace_id"] == trace_id]
        return any(s["kind"] == "SERVER" for s in mine) and sum(s["kind"] == "CLIENT" for s in mine) >= attempts

    spans = [s for s in receiver.wait_for(whole) if s["trace_id"] == trace_id]
    request = next(s for s in spans if s["kind"] == "SERVER")
    children = sorted((s for s in spans if s["kind"] == "CLIENT"), key=lambda s: s["start_ns"])
    return request, children


def test_a_request_and_its_attempt_follow_the_genai_conventions_under_the_clients_trace(server, receiver, fake):
    body = {"model": FAKE_MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": f"{SECRET} @tokens=7"}]}
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers={"traceparent": traceparent},
                        timeout=30)  # fmt: skip
    assert answer.status_code == 200
    request, attempts = _trace(receiver, CLIENT_TRACE, 1)
    assert request["name"] == "POST /v1/chat/completions" and request["parent_span_id"] == CLIENT_SPAN
    assert request["attributes"]["http.response.status_code"] == 200
    assert request["attributes"]["http.request.method"] == "POST"
    assert request["resource"]["service.name"] == "chatwait-test"
    (attempt,) = attempts
    attributes = attempt["attributes"]
    assert attempt["name"] == f"chat {FAKE_MODEL}" and attempt["parent_span_id"] == request["span_id"]
    usage = answer.json()["usage"]
    assert attributes == attributes | {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": FAKE_MODEL,
        "gen_ai.response.model": FAKE_MODEL,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.usage.input_tokens": usage["prompt_tokens"],
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.response.finish_reasons": ["stop"],
        "server.address": "127.0.0.1",
    }, attributes
    assert attributes["server.port"] == int(fake.base_url.rsplit(":", 1)[1].split("/")[0])
    assert request["start_ns"] <= attempt["start_ns"] <= attempt["end_ns"] <= request["end_ns"]
    sent = next(o for o in fake.outcomes_for(f"{SECRET} @tokens=7"))
    assert sent["traceparent"].split("-")[1:3] == [CLIENT_TRACE, attempt["span_id"]], "the upstream joins the trace"
    assert SECRET not in json.dumps(receiver.spans), "no message content in a span"
    assert attributes["gen_ai.request.stream"] is True and attributes["gen_ai.response.id"].startswith("chatcmpl")
    assert attributes["gen_ai.response.time_to_first_chunk"] >= 0


def test_each_attempt_is_measured_in_the_genai_client_metrics(server, receiver) -> None:
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "Measured @tokens=3"}]}
    assert httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30).status_code == 200

    def measured(points: list[dict]) -> bool:
        names = {point["name"] for point in points}
        return {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"} <= names

    points = receiver.wait_for_points(measured)
    durations = [p for p in points if p["name"] == "gen_ai.client.operation.duration"]
    assert durations[-1]["unit"] == "s" and durations[-1]["count"] >= 1
    assert durations[-1]["attributes"] == {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                           "gen_ai.request.model": FAKE_MODEL}  # fmt: skip
    kinds = {p["attributes"]["gen_ai.token.type"] for p in points if p["name"] == "gen_ai.client.token.usage"}
    assert kinds == {"input", "output"}


def test_a_rescued_stream_has_two_attempt_spans_under_one_request_span_ended_at_its_last_token(server, receiver):
    trace_id = "5bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"}
    body = {"message": "Go on @tokens=12 @delay_ms=20 @fault=reset@4 @fail_times=1"}
    streamed = httpx.post(f"{server.url}/v1/chat/streaming", json=body, headers=headers, timeout=30)
    events, _ = parse(streamed.content)
    assert events[-1].event == "done"
    request, attempts = _trace(receiver, trace_id, 2)
    cut, continued = attempts
    assert all(a["parent_span_id"] == request["span_id"] for a in attempts)
    assert cut["attributes"]["error.type"] == "upstream_interrupted"
    assert cut["attributes"]["gen_ai.usage.output_tokens"] == 4, "the chunks it sent: a token each"
    assert [e["name"] for e in continued["events"]] == ["chatwait.rescue"]
    assert continued["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    assert "chatwait.first_token" in [e["name"] for e in cut["events"]]
    assert cut["end_ns"] <= continued["start_ns"] and continued["end_ns"] <= request["end_ns"], "at the last token"
    assert request["attributes"]["chatwait.stream_id"] == streamed.headers["x-stream-id"]


def test_a_resume_and_a_stop_are_events_of_their_requests_and_the_attempt_ends_cancelled(server, receiver):
    trace_id = "6bf92f3577b34da6a3ce929d0e0e4736"
    body = {"message": "Long @tokens=400 @delay_ms=20"}
    with httpx.stream("POST", f"{server.url}/v1/chat/streaming", json=body, timeout=30,
                      headers={"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"}) as cut:  # fmt: skip
        stream_id = cut.headers["x-stream-id"]
    resume_trace, stop_trace = "7bf92f3577b34da6a3ce929d0e0e4736", "8bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"Last-Event-ID": "2", "traceparent": f"00-{resume_trace}-{CLIENT_SPAN}-01"}
    with httpx.stream("GET", f"{server.url}/v1/chat/streaming/{stream_id}", timeout=30, headers=headers) as resumed:
        next(resumed.iter_bytes())
    stopped = httpx.delete(f"{server.url}/v1/chat/streaming/{stream_id}", timeout=30,
                           headers={"traceparent": f"00-{stop_trace}-{CLIENT_SPAN}-01"})  # fmt: skip
    assert stopped.status_code == 200
    _, (attempt,) = _trace(receiver, trace_id, 1)
    assert attempt["attributes"]["error.type"] == "cancelled"
    resume = receiver.wait_for(lambda spans: any(s["trace_id"] == resume_trace for s in spans))
    (resume_span,) = [s for s in resume if s["trace_id"] == resume_trace]
    events = [(e["name"], e["attributes"]) for e in resume_span["events"]]
    assert events == [("chatwait.resume", {"chatwait.last_event_id": 2})]
    stop = receiver.wait_for(lambda spans: any(s["trace_id"] == stop_trace for s in spans))
    (stop_span,) = [s for s in stop if s["trace_id"] == stop_trace]
    assert [e["name"] for e in stop_span["events"]] == ["chatwait.cancel"]


def test_a_websockets_turns_join_the_trace_its_upgrade_named(server, receiver) -> None:
    trace_id = "9bf92f3577b34da6a3ce929d0e0e4736"
    url = server.url.replace("http://", "ws://") + "/v1/responses"
    with ws_connect(url, additional_headers={"traceparent": f"00-{trace_id}-{CLIENT_SPAN}-01"}) as socket:
        for _ in range(2):
            socket.send(json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": "@tokens=2"}))
            while json.loads(socket.recv(timeout=10))["type"] != "response.completed":
                pass

    def whole(spans: list[dict]) -> bool:
        return sum(s["trace_id"] == trace_id and s["kind"] == "CLIENT" for s in spans) >= 2

    spans = [s for s in receiver.wait_for(whole) if s["trace_id"] == trace_id]
    turns = [s for s in spans if s["kind"] == "SERVER" and s["name"] == "POST /v1/responses"]
    assert len(turns) == 2 and all(turn["parent_span_id"] == CLIENT_SPAN for turn in turns)
    assert {s["parent_span_id"] for s in spans if s["kind"] == "CLIENT"} == {turn["span_id"] for turn in turns}
