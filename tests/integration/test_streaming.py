"""Streaming and wait mode end to end through gunicorn/gevent and the fake upstream."""

from __future__ import annotations

import datetime
import json

import httpx
import pytest

from ..sse import content_of, expected_reply, iter_events, parse

pytestmark = [pytest.mark.integration, pytest.mark.both_stores("server", "start_server")]  # on both stores


def test_streaming_frames_headers_and_terminal_event(http: httpx.Client) -> None:
    response = http.post("/v1/chat/streaming", json={"message": "Hello @tokens=12"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    stream_id = response.headers["x-stream-id"]
    events, parser = parse(response.content)
    assert response.content.startswith(b"retry: 2000\nid: 0\nevent: stream\n"), "retry is in the first event's block"
    assert parser.retry == 2000
    first, *chunks, last = events
    assert (first.id, first.event) == (0, "stream")
    assert first.data["stream_id"] == stream_id
    assert first.data["correlation_id"] == response.headers["x-correlation-id"]
    assert first.data["model"] == "fake-model"
    assert [c.id for c in chunks] == list(range(1, 13))
    assert [c.data["sequence"] for c in chunks] == list(range(1, 13))
    assert all(c.data["is_final"] is False for c in chunks)
    assert content_of(events) == expected_reply(12)
    assert last.event == "done" and last.id == 13
    assert last.data["is_final"] is True
    assert last.data["finish_reason"] == "stop"
    assert last.data["last_sequence"] == 12
    assert last.data["content_length"] == len(expected_reply(12))
    assert last.data["usage"]["completion_tokens"] == 12
    assert last.data["usage"]["total_tokens"] == last.data["usage"]["prompt_tokens"] + 12
    assert last.data["usage_source"] == "upstream"
    assert [e.event for e in events].count("done") + [e.event for e in events].count("error") == 1


def test_unicode_content_survives_the_wire(http: httpx.Client) -> None:
    response = http.post("/v1/chat/streaming", json={"message": "@tokens=25 @text=unicode"})
    events, _ = parse(response.content)
    text = content_of(events)
    assert "世界" in text and "🎉" in text and '"quoted"' in text and "\n" in text
    assert events[-1].data["content_length"] == len(text)
    wait = http.post("/v1/chat/wait", json={"message": "@tokens=25 @text=unicode"}).json()
    assert wait["content"] == text


def test_tokens_arrive_progressively(http: httpx.Client) -> None:
    """The first chunk is read while the upstream is still generating the rest."""
    with http.stream("POST", "/v1/chat/streaming", json={"message": "@tokens=6 @delay_ms=150"}) as response:
        events = iter_events(response)
        assert next(events).event == "stream"
        first_chunk = next(events)
        assert first_chunk.event == "chunk"
        stream_id = response.headers["x-stream-id"]
        status = http.get("/ready").json()
        assert status["live_streams"] >= 1, "counted whichever worker answers /ready"
        rest = list(events)
    assert rest[-1].event == "done"
    assert stream_id


def test_wait_mode_reply(http: httpx.Client) -> None:
    response = http.post("/v1/chat/wait", json={"message": "What is 2+2? @tokens=7"})
    assert response.status_code == 200
    body = response.json()
    assert body["content"] == expected_reply(7)
    assert body["finish_reason"] == "stop"
    assert body["model"] == "fake-model"
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    assert body["usage"]["completion_tokens"] == 7
    assert body["duration_ms"] >= 0


@pytest.mark.parametrize("path", ["/chat/wait", "/chat/streaming"])
def test_unversioned_seed_paths_answer_the_same(http: httpx.Client, path: str) -> None:
    response = http.post(path, json={"message": "@tokens=4"})
    assert response.status_code == 200
    if path.endswith("wait"):
        assert response.json()["content"] == expected_reply(4)
    else:
        assert content_of(parse(response.content)[0]) == expected_reply(4)


def test_history_system_and_parameters_reach_the_upstream(http: httpx.Client) -> None:
    body = {
        "message": "And then? @reply=request",
        "history": [{"role": "user", "content": "one two"}, {"role": "assistant", "content": "three"}],
        "system": "Be brief.",
        "model": "other-model",
        "max_tokens": 50,
        "temperature": 0.2,
    }
    reply = http.post("/v1/chat/wait", json=body).json()
    assert reply["model"] == "other-model"
    seen = json.loads(reply["content"])
    assert seen["model"] == "other-model"
    assert seen["max_tokens"] == 50 and seen["temperature"] == 0.2
    assert seen["stream_options"] == {"include_usage": True}
    assert seen["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one two"},
        {"role": "assistant", "content": "three"},
        {"role": "user", "content": "And then? @reply=request"},
    ]


def test_defaults_are_applied(http: httpx.Client) -> None:
    seen = json.loads(http.post("/v1/chat/wait", json={"message": "@reply=request"}).json()["content"])
    assert seen["model"] == "fake-model"
    assert seen["max_tokens"] == 1024
    assert "temperature" not in seen
    assert seen["messages"] == [{"role": "user", "content": "@reply=request"}]


def test_client_correlation_id_is_echoed_and_bad_ones_replaced(http: httpx.Client) -> None:
    good = http.post("/v1/chat/wait", json={"message": "@tokens=1"}, headers={"X-Correlation-Id": "trace-abc.123"})
    assert good.headers["x-correlation-id"] == "trace-abc.123"
    assert good.json()["correlation_id"] == "trace-abc.123"
    bad = http.post("/v1/chat/wait", json={"message": "@tokens=1"}, headers={"X-Correlation-Id": "bad id<script>"})
    assert bad.headers["x-correlation-id"] != "bad id<script>"
    assert len(bad.headers["x-correlation-id"]) == 32


def test_health_ready_and_contract(http: httpx.Client) -> None:
    health = http.get("/health").json()
    assert set(health) == {"status", "timestamp"} and health["status"] == "healthy"
    stamp = datetime.datetime.fromisoformat(health["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.UTC) - stamp).total_seconds()) < 3600
    ready = http.get("/ready").json()
    assert ready["provider"] == "openai" and ready["model"] == "fake-model"
    assert "CANARY" not in str(ready)
    contract = http.get("/openapi.yaml")
    assert contract.status_code == 200 and contract.text.startswith("openapi: 3.1")


def test_keepalive_comments_during_silence(http: httpx.Client) -> None:
    """KEEPALIVE_SECONDS is 0.5 in the test server; the first token comes after 1.6 s."""
    response = http.post("/v1/chat/streaming", json={"message": "@tokens=2 @first_ms=1600"})
    assert response.content.count(b": keepalive\n") >= 2
    assert b": keepalive\n\n" not in response.content, "a keepalive never makes a block of its own"
    events, _ = parse(response.content)
    assert content_of(events) == expected_reply(2)
