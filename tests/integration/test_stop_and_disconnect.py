"""DELETE stops generation and closes the upstream; a client drop only detaches its consumer."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from ..rawhttp import connect, read_until_close, responses
from ..sse import content_of, expected_reply, iter_events, parse

pytestmark = [pytest.mark.integration, pytest.mark.both_stores("server", "start_server")]  # on both stores


def _unique(directives: str) -> str:
    return f"{uuid.uuid4().hex} {directives}"


def test_delete_closes_upstream_within_a_second_and_ends_with_cancelled(http, fake) -> None:
    message = _unique("@tokens=2000 @delay_ms=20")
    with http.stream("POST", "/v1/chat/streaming", json={"message": message}) as response:
        stream_id = response.headers["x-stream-id"]
        events = iter_events(response)
        received = [next(events) for _ in range(4)]  # stream + 3 chunks
        asked_at = time.time()
        stop = http.delete(f"/v1/chat/streaming/{stream_id}")
        rest = list(events)
    assert stop.status_code == 200
    assert stop.json()["status"] == "cancelled"
    closed = fake.wait_for_outcome(message, "client_closed")
    assert closed["ended"] - asked_at < 1.0, "the upstream connection must close within 1 s of DELETE"
    done = rest[-1]
    assert done.event == "done"
    assert done.data["finish_reason"] == "cancelled"
    chunks = received[1:] + [e for e in rest if e.event == "chunk"]
    assert done.data["last_sequence"] == len(chunks)
    assert done.data["usage"]["completion_tokens"] > 0
    assert done.data["usage"]["prompt_tokens"] > 0
    assert content_of(chunks) == expected_reply(len(chunks))


def test_delete_before_the_first_token(http, fake) -> None:
    message = _unique("@tokens=5 @first_ms=3000")
    with http.stream("POST", "/v1/chat/streaming", json={"message": message}) as response:
        stream_id = response.headers["x-stream-id"]
        events = iter_events(response)
        assert next(events).event == "stream"
        time.sleep(0.2)
        assert http.delete(f"/v1/chat/streaming/{stream_id}").json()["status"] == "cancelled"
        rest = [e for e in events if e.event != ":comment"]
    assert [e.event for e in rest] == ["done"]
    assert rest[0].data["finish_reason"] == "cancelled"
    assert rest[0].data["usage"]["completion_tokens"] == 0
    fake.wait_for_outcome(message, "client_closed")


def test_delete_is_idempotent_and_404_for_unknown(http) -> None:
    stream_id = http.post("/v1/chat/streaming", json={"message": "@tokens=2"}).headers["x-stream-id"]
    again = http.delete(f"/v1/chat/streaming/{stream_id}")
    assert again.status_code == 200
    assert again.json()["status"] == "already_finished"
    unknown = http.delete("/v1/chat/streaming/nope")
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "stream_not_found"


def test_client_drop_does_not_stop_generation(http, fake, server) -> None:
    message = _unique("@tokens=40 @delay_ms=10")
    with http.stream("POST", "/v1/chat/streaming", json={"message": message}) as response:
        stream_id = response.headers["x-stream-id"]
        events = iter_events(response)
        received = [next(events) for _ in range(3)]
    completed = fake.wait_for_outcome(message, "completed")
    assert completed["tokens"] == 40
    rest, _ = parse(http.get(f"/v1/chat/streaming/{stream_id}", headers={"Last-Event-ID": "2"}).content)
    assert content_of(received + rest) == expected_reply(40)
    deadline = time.monotonic() + 5

    def detached() -> bool:  # said on the stream request's completion line, not a line of its own
        records = server.log_records()
        return any(r.get("event") == "request_completed" and r.get("client_left") and r.get("stream_id") == stream_id
                   for r in records)  # fmt: skip

    while not detached():
        assert time.monotonic() < deadline, "the client's departure was never logged"
        time.sleep(0.05)


def test_abandoned_stream_is_cancelled_after_the_ttl(start_server, fake) -> None:
    server = start_server(STREAM_TTL_SECONDS="1", KEEPALIVE_SECONDS="0.2")
    message = _unique("@tokens=5000 @delay_ms=10")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/v1/chat/streaming", json={"message": message}) as response:
            stream_id = response.headers["x-stream-id"]
            next(iter_events(response))
        closed = fake.wait_for_outcome(message, "client_closed", timeout=15)
        assert closed["tokens"] < 5000
        deadline = time.monotonic() + 10  # the Redis store drops it at its next sweep
        while client.get(f"/v1/chat/streaming/{stream_id}").status_code != 404:
            assert time.monotonic() < deadline, "the abandoned stream was never dropped"
            time.sleep(0.1)
    assert any(r.get("event") == "stream_expired" and r.get("stream_id") == stream_id for r in server.log_records())


def test_store_full_of_live_streams_answers_server_busy(start_server) -> None:
    server = start_server(MAX_STREAMS="2")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ids = [
            client.post("/v1/chat/streaming", json={"message": "@tokens=1"}).headers["x-stream-id"] for _ in range(2)
        ]
        # Both finished: in memory, a third stream evicts the least recently used finished one;
        # in Redis, MAX_STREAMS counts the cluster's live streams (finished ones expire by TTL).
        third = client.post("/v1/chat/streaming", json={"message": "@tokens=1"})
        assert third.status_code == 200
        evicted = server.env["STREAM_STORE"] == "memory"
        assert client.get(f"/v1/chat/streaming/{ids[0]}").status_code == (404 if evicted else 200)
        long_reply = {"message": "@tokens=500 @delay_ms=20"}
        with (
            client.stream("POST", "/v1/chat/streaming", json=long_reply) as one,
            client.stream("POST", "/v1/chat/streaming", json=long_reply) as two,
        ):
            assert one.status_code == two.status_code == 200
            busy = client.post("/v1/chat/streaming", json={"message": "@tokens=1"})
            assert busy.status_code == 503
            assert busy.json()["error_code"] == "server_busy"
            assert busy.json()["retryable"] is True
            assert busy.headers["retry-after"] == "2" and busy.json()["retry_after_seconds"] == 2
            for live in (one, two):
                client.delete(f"/v1/chat/streaming/{live.headers['x-stream-id']}")


def test_a_wait_client_that_leaves_cancels_its_generation(server, fake) -> None:
    """Wait mode writes nothing until the end: the worker watches the socket for the client leaving."""
    message = _unique("@tokens=2000 @delay_ms=20")
    with connect(server.port) as sock:
        body = json.dumps({"message": message}).encode()
        sock.sendall(b"POST /v1/chat/wait HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        sock.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.5)  # the generation is under way
        left_at = time.time()
    closed = fake.wait_for_outcome(message, "client_closed")
    assert closed["tokens"] < 2000 and closed["ended"] >= left_at
    records = server.log_records()
    left = [r for r in records if r["event"] == "request_completed" and r.get("client_left")]
    assert left and left[-1]["finish_reason"] == "cancelled", "the departure is said on its completion line"
    assert not [r for r in records if r["event"] == "client_detached"], "not on a line of its own"


def test_a_wait_client_that_stays_gets_its_reply_on_a_kept_alive_connection(server) -> None:
    """The watch must not mistake the next pipelined request for a departure."""
    with connect(server.port) as sock:
        body = json.dumps({"message": _unique("@tokens=5 @delay_ms=50")}).encode()
        request = b"POST /v1/chat/wait HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        request += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        sock.sendall(request + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = responses(read_until_close(sock))
    assert [a.status for a in answers] == [200, 200]
    assert answers[0].json()["content"] == expected_reply(5)


def test_a_stop_travels_up_a_chain_of_chatwaits(fake) -> None:
    """B relays A (any upstream that names its stream with X-Stream-Id): a DELETE on B stops
    the generation on A too, which closes its own upstream instead of generating for nobody."""
    from harness.processes import ChatWaitServer

    from ..conftest import server_env

    a = ChatWaitServer(server_env(fake.base_url))
    b = ChatWaitServer(server_env(f"{a.url}/v1", OPENAI_API_KEY="sk-chain-not-checked-by-a", UPSTREAM_RETRIES="0"))
    try:
        message = _unique("@tokens=3000 @delay_ms=10")
        with (
            httpx.Client(base_url=b.url, timeout=30) as http,
            http.stream("POST", "/v1/chat/streaming", json={"message": message}) as response,
        ):
            stream_id = response.headers["x-stream-id"]
            events = iter_events(response)
            assert [next(events).event for _ in range(3)] == ["stream", "chunk", "chunk"]
            assert http.delete(f"/v1/chat/streaming/{stream_id}").json()["status"] == "cancelled"
            assert list(events)[-1].data["finish_reason"] == "cancelled"
        assert fake.wait_for_outcome(message, "client_closed")["tokens"] < 3000, "A stopped generating"
        sent = [r for r in b.log_records() if r.get("event") == "upstream_stop_sent"]
        assert sent and sent[0]["upstream_status"] == 200, sent
    finally:
        b.stop()
        a.stop()
