"""Resume after a dropped connection: no token lost, none repeated, in every form."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ..sse import Event, content_of, expected_reply, parse, read_events

pytestmark = [pytest.mark.integration, pytest.mark.both_stores("server", "start_server")]  # on both stores


TRIALS = 200


def _resume_options(last_id: int | None, form: str) -> dict:
    """The Last-Event-ID as a header or as the query parameter (nothing: replay all)."""
    if last_id is None:
        return {}
    if form == "header":
        return {"headers": {"Last-Event-ID": str(last_id)}}
    return {"params": {"last_event_id": last_id}}


def _trial(base_url: str, seed: int) -> tuple[str, str, list[int]]:
    """One stream, dropped at random points (during resumes too) and resumed until done."""
    rng = random.Random(seed)
    # One trial in four is longer than the frames a stream keeps encoded, so that resumes
    # replay re-encoded chunks too.
    long = seed % 4 == 0
    tokens = rng.randint(100, 300) if long else rng.randint(3, 40)
    delay = rng.choice([0, 1]) if long else rng.choice([0, 1, 2, 5])
    body = {"message": f"trial {seed} @tokens={tokens} @delay_ms={delay}"}
    received: list[Event] = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        with client.stream("POST", "/v1/chat/streaming", json=body) as response:
            assert response.status_code == 200
            stream_id = response.headers["x-stream-id"]
            events, finished = read_events(response, rng.randint(0, tokens + 1))
        received += events
        drops = 0
        while not finished:
            last_id = received[-1].id if received else None
            form = rng.choice(["header", "query"])
            limit = rng.randint(1, tokens) if drops < 3 and rng.random() < 0.5 else None
            options = _resume_options(last_id, form)
            with client.stream("GET", f"/v1/chat/streaming/{stream_id}", **options) as response:
                assert response.status_code == 200, response.read()
                events, finished = read_events(response, limit)
            received += events
            drops += 1
    ids = [e.id for e in received]
    assert received[-1].event == "done"
    assert received[-1].data["content_length"] == len(content_of(received))
    return content_of(received), expected_reply(tokens), ids


def test_two_hundred_random_drops_give_the_exact_reply(server) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda seed: _trial(server.url, seed), range(TRIALS)))
    for text, expected, ids in results:
        assert text == expected
        assert ids == list(range(len(ids))), "event ids must be contiguous with no repeat"


def test_resume_without_last_event_id_replays_everything(http: httpx.Client) -> None:
    first = http.post("/v1/chat/streaming", json={"message": "@tokens=5"})
    replay = http.get(f"/v1/chat/streaming/{first.headers['x-stream-id']}")
    assert replay.status_code == 200
    assert replay.headers["x-stream-id"] == first.headers["x-stream-id"]
    assert replay.headers["x-correlation-id"] != first.headers["x-correlation-id"], "a request: its own id"
    assert parse(replay.content)[0] == parse(first.content)[0]


def test_header_wins_over_query(http: httpx.Client) -> None:
    first = http.post("/v1/chat/streaming", json={"message": "@tokens=6"})
    url = f"/v1/chat/streaming/{first.headers['x-stream-id']}"
    events, _ = parse(http.get(url, params={"last_event_id": 1}, headers={"Last-Event-ID": "4"}).content)
    assert [e.id for e in events] == [5, 6, 7]


def test_late_resume_after_the_end_gets_the_rest(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/chat/streaming", json={"message": "@tokens=30 @delay_ms=5"}) as response:
        stream_id = response.headers["x-stream-id"]
        events, _ = read_events(response, 4)
    time.sleep(0.5)  # the generation finishes while nobody follows it
    rest, _ = parse(http.get(f"/v1/chat/streaming/{stream_id}", headers={"Last-Event-ID": str(events[-1].id)}).content)
    assert content_of(events + rest) == expected_reply(30)
    assert rest[-1].event == "done"


def test_resume_while_generating_follows_live(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/chat/streaming", json={"message": "@tokens=20 @delay_ms=20"}) as response:
        stream_id = response.headers["x-stream-id"]
        events, _ = read_events(response, 3)
    with http.stream("GET", f"/v1/chat/streaming/{stream_id}", params={"last_event_id": events[-1].id}) as response:
        rest, finished = read_events(response, None)
    assert finished
    assert content_of(events + rest) == expected_reply(20)


def test_two_consumers_see_the_same_stream(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/chat/streaming", json={"message": "@tokens=15 @delay_ms=10"}) as response:
        stream_id = response.headers["x-stream-id"]
        second = http.get(f"/v1/chat/streaming/{stream_id}")  # follows to the end in full
        first, _ = read_events(response, None)
    assert content_of(parse(second.content)[0]) == content_of(first) == expected_reply(15)


@pytest.mark.parametrize(
    "message,params,headers",
    [
        ("@tokens=2", {"last_event_id": "abc"}, {}),
        ("@tokens=2", {}, {"Last-Event-ID": "-1"}),
        ("@tokens=40 @delay_ms=50", {}, {"Last-Event-ID": "99"}),  # a live stream never sent it (yet)
    ],
)
def test_bad_last_event_id_is_a_400(http: httpx.Client, message, params, headers) -> None:
    with http.stream("POST", "/v1/chat/streaming", json={"message": message}) as first:
        response = http.get(f"/v1/chat/streaming/{first.headers['x-stream-id']}", params=params, headers=headers)
        assert response.status_code == 400
        assert response.json()["error_code"] == "invalid_last_event_id"
        http.delete(f"/v1/chat/streaming/{first.headers['x-stream-id']}")


@pytest.mark.parametrize("after", ["3", "4", "99"])
def test_a_resume_at_or_past_the_end_of_a_finished_stream_is_a_204(http: httpx.Client, after: str) -> None:
    """Nothing is left to send: 204, on which EventSource stops reconnecting (a 200 with an empty
    body would have it reconnect every `retry` milliseconds for as long as the stream is kept)."""
    first = http.post("/v1/chat/streaming", json={"message": "@tokens=2"})
    stream_id = first.headers["x-stream-id"]
    assert parse(first.content)[0][-1].id == 3
    response = http.get(f"/v1/chat/streaming/{stream_id}", headers={"Last-Event-ID": after})
    assert response.status_code == 204 and response.content == b""
    assert response.headers["x-stream-id"] == stream_id
    before_end = http.get(f"/v1/chat/streaming/{stream_id}", params={"last_event_id": "2"})
    assert [(e.id, e.event) for e in parse(before_end.content)[0]] == [(3, "done")]


def test_unknown_stream_is_a_404_with_advice(http: httpx.Client) -> None:
    response = http.get("/v1/chat/streaming/does-not-exist")
    assert response.status_code == 404
    body = response.json()
    assert body["error_code"] == "stream_not_found"
    assert "POST /v1/chat/streaming" in body["action"]


def test_expired_stream_is_a_404(start_server) -> None:
    server = start_server(STREAM_TTL_SECONDS="0.5")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        stream_id = client.post("/v1/chat/streaming", json={"message": "@tokens=2"}).headers["x-stream-id"]
        assert client.get(f"/v1/chat/streaming/{stream_id}").status_code == 200
        deadline = time.monotonic() + 10
        while client.get(f"/v1/chat/streaming/{stream_id}").status_code == 200:
            assert time.monotonic() < deadline, "the finished stream never expired"
            time.sleep(0.1)
        assert client.get(f"/v1/chat/streaming/{stream_id}").json()["error_code"] == "stream_not_found"


def test_a_resume_or_stop_answers_with_the_correlation_id_the_client_sent(http: httpx.Client) -> None:
    """A resume or stop is a request with its own correlation id: the one it sent, echoed, else a
    new one (its log lines name the stream's as `stream_correlation_id`)."""
    first = http.post("/v1/chat/streaming", json={"message": "@tokens=400 @delay_ms=5"})
    stream_id = first.headers["x-stream-id"]
    mine = {"X-Correlation-Id": "resume-own-id-1"}
    with http.stream("GET", f"/v1/chat/streaming/{stream_id}", headers={**mine, "Last-Event-ID": "1"}) as resumed:
        assert resumed.headers["x-correlation-id"] == "resume-own-id-1"
    stopped = http.delete(f"/v1/chat/streaming/{stream_id}", headers={"X-Correlation-Id": "stop-own-id-1"})
    assert stopped.headers["x-correlation-id"] == "stop-own-id-1"
    assert http.get(f"/v1/chat/streaming/{stream_id}").headers["x-correlation-id"] != first.headers["x-correlation-id"]
