"""JSON logs of a real server: every line is JSON, traceable by correlation id, and no canary
secret or personal datum sent in messages, headers or upstream errors ever appears."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from harness.processes import ChatWaitServer

from ..conftest import CANARY_KEY, FAKE_MODEL, server_env
from ..sse import parse

pytestmark = pytest.mark.integration

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlY2FuYXJ5"
MESSAGE_CANARIES = [
    "canary.person@example.com",
    "4111 1111 1111 1111",
    "+1 415 555 2671",
    "sk-live-CANARYinMessage123456",
    "CANARY-MESSAGE-CONTENT",
]
HEADER_CANARIES = {"Authorization": "Bearer canary-bearer-token-xyz", "X-Api-Key": JWT, "Cookie": f"session={JWT}"}


@pytest.fixture(scope="module")
def debug_server(fake):
    """A server logging at DEBUG, so third-party and per-chunk lines are in the log too."""
    running = ChatWaitServer(server_env(fake.base_url, LOG_LEVEL="DEBUG"))
    yield running
    running.stop()


def test_log_lines_are_json_and_leak_nothing(debug_server) -> None:
    content = "CANARY-MESSAGE-CONTENT " + " ".join(MESSAGE_CANARIES)
    with httpx.Client(base_url=debug_server.url, timeout=30, headers=HEADER_CANARIES) as client:
        client.post("/v1/chat/wait", json={"message": content + " @tokens=3"})
        client.post("/v1/chat/streaming", json={"message": content + " @tokens=3", "system": content})
        client.post("/v1/chat/wait", json={"message": content + " @fault=401"})
        client.post("/v1/chat/wait", json={"message": content + " @fault=429 @retry_after=0"})
        client.post("/v1/chat/streaming", json={"message": content + " @tokens=4 @fault=errorchunk@2"})
        client.post("/v1/chat/wait", json={"message": content, "bogus": content})
        client.post("/v1/chat/wait", content=content.encode(), headers={"Content-Type": "application/json"})
        masked_id = client.post(
            "/v1/chat/wait", json={"message": "@tokens=1"}, headers={"X-Correlation-Id": "sk-CANARYcorrelation12345"}
        )
        assert masked_id.status_code == 200
    socket_url = debug_server.url.replace("http://", "ws://") + "/v1/responses"
    with ws_connect(socket_url, additional_headers=HEADER_CANARIES) as ws:  # WebSocket mode: frames logged at DEBUG?
        ws.send(json.dumps({"type": "response.create", "model": FAKE_MODEL, "input": content + " @tokens=3"}))
        while json.loads(ws.recv(timeout=10))["type"] != "response.completed":
            pass
    text = debug_server.log_text()
    records = debug_server.log_records()  # fails on any line that is not JSON
    assert len(records) > 20
    for canary in [CANARY_KEY, CANARY_KEY[-12:], *MESSAGE_CANARIES, "canary-bearer-token", JWT, "CANARYcorrelation"]:
        assert canary not in text, f"{canary!r} leaked into the log"
    assert "Incorrect API key" not in text and "exploded" not in text
    events = {r.get("event") for r in records}
    assert {"request_received", "stream_started", "first_token", "stream_completed", "error_occurred"} <= events
    assert "request_completed" in events
    assert "chunk_sent" in events  # DEBUG shows chunk metadata, never content
    assert not [r for r in records if r["logger"].startswith("websockets")], "its DEBUG lines hold headers and messages"


def test_a_request_is_traceable_by_correlation_id(server, http) -> None:
    response = http.post(
        "/v1/chat/streaming", json={"message": "@tokens=3"}, headers={"X-Correlation-Id": "trace-me-1"}
    )
    parse(response.content)
    stream_id = response.headers["x-stream-id"]
    http.get(f"/v1/chat/streaming/{stream_id}")  # a request of its own, about the stream
    ids = ("correlation_id", "stream_correlation_id")
    lines = [r for r in server.log_records() if "trace-me-1" in (r.get(name) for name in ids)]
    names = [r["event"] for r in lines]
    # the resume's own request_received line comes before it finds the stream: under its own id only
    assert names == ["request_received", "request_completed", "request_completed"], f"no third line: {names}"
    resumed = [r for r in lines if r["event"] == "request_completed" and r.get("resumed")]
    assert len(resumed) == 1 and resumed[0]["last_event_id"] is None, "the resume said on its completion line"
    completed = next(r for r in lines if r["event"] == "request_completed")
    assert completed["stream_id"] == stream_id
    assert completed["finish_reason"] == "stop"
    assert completed["completion_tokens"] == 3
    assert completed["generation_ms"] >= completed["ttft_ms"] >= 0
    for record in lines:
        assert record["timestamp"].endswith("Z") and record["level"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/streaming", {"message": "@tokens=3"}),
        ("/v1/chat/wait", {"message": "@tokens=3"}),
        ("/v1/chat/completions", {"model": "fake-model", "messages": [{"role": "user", "content": "@tokens=3"}]}),
        ("/v1/responses", {"model": "fake-model", "input": "@tokens=3", "stream": True}),
        (
            "/v1/messages",
            {"model": "fake-model", "max_tokens": 9, "messages": [{"role": "user", "content": "@tokens=3"}]},
        ),
    ],
)
def test_a_request_has_two_info_lines_and_the_second_carries_everything(server, http, path, body) -> None:
    cid = "two-lines-" + path.replace("/", "-")
    http.post(path, json=body, headers={"X-Correlation-Id": cid})
    lines = [r for r in server.log_records() if r.get("correlation_id") == cid and r["level"] == "INFO"]
    assert [r["event"] for r in lines] == ["request_received", "request_completed"], lines
    completed = lines[1]
    assert completed["status"] == 200 and completed["finish_reason"] == "stop", completed
    assert completed["completion_tokens"] == 3 and completed["prompt_tokens"] > 0
    assert completed["model"] == "fake-model" and completed["provider"] and completed["ttft_ms"] >= 0
    assert completed["duration_ms"] >= completed["generation_ms"] >= completed["ttft_ms"]


@pytest.mark.parametrize("resume", ["/v1/chat/streaming/{id}", "/v1/responses/{id}?stream=true"])
def test_a_resume_keeps_one_correlation_id_and_names_the_streams(server, http, resume) -> None:
    """A request about a stream (a resume, without an id of its own) logs every line under its own
    correlation id, from its first line to its last; the stream's own id is a field of its own."""
    if resume.startswith("/v1/responses"):
        body = {"model": "fake-model", "input": "@tokens=3"}
        started = http.post("/v1/responses", json=body, headers={"X-Correlation-Id": "resumed-from-r"})
        stream_id, original = started.json()["id"], "resumed-from-r"
    else:
        original = "resumed-from"
        started = http.post("/v1/chat/streaming", json={"message": "@tokens=3"}, headers={"X-Correlation-Id": original})
        stream_id = started.headers["x-stream-id"]
    resumed = http.get(resume.format(id=stream_id))
    cid = resumed.headers["x-correlation-id"]
    assert resumed.status_code == 200 and cid != original
    lines = [r for r in server.log_records() if r.get("correlation_id") == cid]
    assert lines[0]["event"] == "request_received" and lines[-1]["event"] == "request_completed"
    assert [r["event"] for r in lines] == ["request_received", "request_completed"], "two lines, no third"
    assert lines[-1]["resumed"] is True, "the resume said on its completion line, under its own id"
    assert {r.get("stream_correlation_id") for r in lines if r["event"] != "request_received"} == {original}


def test_a_generation_that_outlives_its_request_logs_its_own_completion(server) -> None:
    cid = "outlives-its-request"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        body = {"message": "@tokens=12 @delay_ms=40"}
        with client.stream("POST", "/v1/chat/streaming", json=body, headers={"X-Correlation-Id": cid}) as response:
            next(response.iter_bytes())  # the priming event; then the client leaves
    deadline = time.monotonic() + 20
    while not any(
        r.get("event") == "stream_completed" and r.get("correlation_id") == cid for r in server.log_records()
    ):
        assert time.monotonic() < deadline, "the generation never logged its completion"
        time.sleep(0.05)
    lines = [r for r in server.log_records() if r.get("correlation_id") == cid]
    done = next(r for r in lines if r["event"] == "stream_completed")
    assert done["level"] == "INFO" and done["completion_tokens"] == 12
    request_done = next(r for r in lines if r["event"] == "request_completed")
    assert "finish_reason" not in request_done  # the request ended before its generation did


def test_error_lines_carry_code_type_action_and_upstream_request_id(server, http) -> None:
    http.post("/v1/chat/wait", json={"message": "@fault=401"}, headers={"X-Correlation-Id": "trace-err-1"})
    records = server.log_records()
    errors = [r for r in records if r.get("correlation_id") == "trace-err-1" and r["event"] == "error_occurred"]
    assert errors
    line = errors[0]
    assert line["error_code"] == "upstream_auth_failed"
    assert line["error_type"] == "UpstreamError"
    assert line["action"]
    assert line["upstream_request_id"].startswith("req_")
    assert line["upstream_status"] == 401


def test_a_streamed_request_has_its_request_completed_line_when_its_body_ends(server, http) -> None:
    http.post("/v1/chat/streaming", json={"message": "@tokens=3"}, headers={"X-Correlation-Id": "trace-done-1"})
    lines = [r for r in server.log_records() if r.get("correlation_id") == "trace-done-1"]
    completed = [r for r in lines if r["event"] == "request_completed"]
    assert len(completed) == 1 and completed[0]["status"] == 200 and completed[0]["streamed"] is True, lines
    assert completed[0]["finish_reason"] == "stop"  # the generation had ended: its fields are on the line
