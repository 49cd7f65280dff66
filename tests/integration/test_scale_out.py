"""Scaling out on Redis: two workers share every stream; restarts, crashes and Redis outages
lose nothing that can be kept, and every client gets an ending."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import ChatWaitServer
from harness.redis_servers import RedisServer

from ..conftest import server_env
from ..sse import Event, content_of, expected_reply, iter_events, parse, read_events

pytestmark = pytest.mark.integration

TRIALS = 200
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
FRESH = httpx.Limits(max_keepalive_connections=0)  # a new connection per request: any worker takes it


def _redis_env(redis: RedisServer, **overrides: str) -> dict[str, str]:
    return {"STREAM_STORE": "redis", "REDIS_URL": redis.url, "WEB_CONCURRENCY": "2", **overrides}


@pytest.fixture
def cluster(fake, redis_server):
    """Start ChatWait with two workers on the tests' Redis; every server started is stopped."""
    started: list[ChatWaitServer] = []

    def start(redis: RedisServer = redis_server, **overrides: str) -> ChatWaitServer:
        running = ChatWaitServer(server_env(fake.base_url, **_redis_env(redis, **overrides)))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def _request_id(kind: str, seed: int, step: int) -> dict[str, str]:
    return {"X-Correlation-Id": f"{kind}-{seed}-{step}"}


def _trial(base_url: str, seed: int) -> dict[str, Any]:
    """A stream dropped at random points and resumed on new connections until it ends; one in
    four is stopped with a DELETE on a new connection along the way."""
    rng = random.Random(seed)
    tokens = rng.randint(20, 200)
    message = f"scale {seed} {uuid.uuid4().hex[:8]} @tokens={tokens} @delay_ms={rng.choice([1, 2, 5])}"
    stop_at = rng.randint(1, 3) if seed % 4 == 0 else None
    received: list[Event] = []
    stopped: dict[str, Any] = {}
    with httpx.Client(base_url=base_url, timeout=30, limits=FRESH) as client:
        post = {"json": {"message": message}, "headers": _request_id("post", seed, 0)}
        with client.stream("POST", "/v1/chat/streaming", **post) as response:
            assert response.status_code == 200
            stream_id = response.headers["x-stream-id"]
            events, finished = read_events(response, rng.randint(1, tokens // 2))
        received += events
        step = 0
        while not finished:
            step += 1
            if step == stop_at:
                asked = time.time()
                reply = client.delete(f"/v1/chat/streaming/{stream_id}", headers=_request_id("stop", seed, step))
                stopped = {**reply.json(), "asked": asked}
            headers = {"Last-Event-ID": str(received[-1].id), **_request_id("resume", seed, step)}
            with client.stream("GET", f"/v1/chat/streaming/{stream_id}", headers=headers) as response:
                assert response.status_code == 200, response.read()
                events, finished = read_events(response, rng.randint(1, tokens) if rng.random() < 0.6 else None)
            received += events
    return {"message": message, "tokens": tokens, "events": received, "stopped": stopped}


def _check_trial(result: dict[str, Any], fake) -> float | None:
    """The reply is exact, ids contiguous, one terminal event; a stop closed the upstream. Returns
    the seconds from DELETE to the upstream closing, for a stop that cancelled a generation."""
    events = result["events"]
    assert [e.id for e in events] == list(range(len(events))), "event ids contiguous, none repeated"
    assert [e.event for e in events].count("done") == 1 and events[-1].event == "done"
    text = content_of(events)
    assert events[-1].data["content_length"] == len(text)
    if result["stopped"].get("status") != "cancelled":
        assert text == expected_reply(result["tokens"])
        return None
    assert events[-1].data["finish_reason"] == "cancelled"
    assert expected_reply(result["tokens"]).startswith(text) and text.endswith(" ")
    assert result["stopped"]["last_event_id"] == events[-1].id
    deadline = time.monotonic() + 10
    while not (ended := [o for o in fake.outcomes_for(result["message"]) if "ended" in o]):
        assert time.monotonic() < deadline, "the upstream request never ended"
        time.sleep(0.02)
    if ended[0]["how"] == "completed":
        return None  # the upstream had sent its whole reply before the stop; the relay had not
    assert ended[0]["how"] == "client_closed", ended
    return ended[0]["ended"] - result["stopped"]["asked"]


def _workers_by_request(server: ChatWaitServer) -> dict[str, int]:
    """The worker (pid) that received each request, by the correlation id the client sent."""
    return {
        line["correlation_id"]: line["pid"]
        for line in server.log_records()
        if line.get("event") == "request_received" and "pid" in line
    }


def test_two_hundred_drop_resume_and_stop_trials_across_two_workers(cluster, fake) -> None:
    server = cluster()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda seed: _trial(server.url, seed), range(TRIALS)))
    stop_seconds = [s for s in (_check_trial(result, fake) for result in results) if s is not None]
    served = _workers_by_request(server)
    owner = {seed: served[f"post-{seed}-0"] for seed in range(TRIALS)}
    resumes = [(cid, pid) for cid, pid in served.items() if cid.startswith("resume-")]
    stops = [(cid, pid) for cid, pid in served.items() if cid.startswith("stop-")]
    assert len({pid for _, pid in resumes}) == 2 and len({pid for _, pid in stops}) == 2, "both workers served"
    remote = [cid for cid, pid in resumes if pid != owner[int(cid.split("-")[1])]]
    assert remote and len(remote) < len(resumes), "resumes on the producer's worker and on the other one"
    assert sum(1 for cid, pid in stops if pid != owner[int(cid.split("-")[1])]) > 0
    assert stop_seconds, "some stops cancelled a running generation"
    ARTIFACTS.mkdir(exist_ok=True)
    report = {
        "trials": TRIALS,
        "resumes": len(resumes),
        "resumes_on_the_other_worker": len(remote),
        "stops": len(stops),
        "stop_to_upstream_closed_seconds": {"max": max(stop_seconds), "all": sorted(stop_seconds)},
    }
    (ARTIFACTS / "scale-out-trials.json").write_text(json.dumps(report, indent=1))


def test_streams_resume_exactly_after_a_full_restart(cluster) -> None:
    first = cluster()
    with httpx.Client(base_url=first.url, timeout=30) as client:
        whole = [parse(client.post("/v1/chat/streaming", json={"message": f"@tokens={n}"}).content)[0] for n in (3, 40)]
        with client.stream("POST", "/v1/chat/streaming", json={"message": "@tokens=60 @delay_ms=5"}) as response:
            dropped, _ = read_events(response, 5)  # it finishes while nobody follows
        time.sleep(1.0)
    first.stop()  # SIGTERM: every worker exits; the master too
    assert first.proc.poll() is not None
    second = cluster()
    with httpx.Client(base_url=second.url, timeout=30) as client:
        for events in whole:
            replay = client.get(f"/v1/chat/streaming/{events[0].data['stream_id']}", headers={"Last-Event-ID": "1"})
            assert parse(replay.content)[0] == events[2:]
        rest_url = f"/v1/chat/streaming/{dropped[0].data['stream_id']}"
        rest, _ = parse(client.get(rest_url, headers={"Last-Event-ID": str(dropped[-1].id)}).content)
    assert content_of(dropped + rest) == expected_reply(60) and rest[-1].event == "done"


def _worker_of(server: ChatWaitServer, correlation_id: str) -> int:
    """The pid of the worker that received the request sent with this correlation id."""
    return _workers_of(server, [correlation_id])[correlation_id]


def _workers_of(server: ChatWaitServer, correlation_ids: list[str]) -> dict[str, int]:
    """The pid of the worker that received each of these requests, the log read once a poll."""
    deadline = time.monotonic() + 10  # each worker writes its lines a few milliseconds late
    while missing := set(correlation_ids) - (served := _workers_by_request(server)).keys():
        assert time.monotonic() < deadline, f"no request_received line for {sorted(missing)}"
        time.sleep(0.05)
    return {cid: served[cid] for cid in correlation_ids}


def _follow_elsewhere(server: ChatWaitServer, stream_id: str, owner: int, following: threading.Event) -> list[Event]:
    """Follow the stream from the start on a connection that a worker other than `owner` took,
    to its end; `following` is set once it does."""
    for attempt in range(40):
        cid = f"follow-{attempt}-{uuid.uuid4().hex[:6]}"
        with (
            httpx.Client(base_url=server.url, timeout=60, limits=FRESH) as client,
            client.stream("GET", f"/v1/chat/streaming/{stream_id}", headers={"X-Correlation-Id": cid}) as response,
        ):
            frames = (e for e in iter_events(response) if e.event != ":comment")
            first = next(frames)
            if _worker_of(server, cid) == owner:
                continue
            following.set()
            return [first, *frames]  # to the end
    raise AssertionError("no connection reached the other worker in 40 attempts")


def test_sigkill_of_the_producing_worker_ends_its_stream_with_generation_lost(cluster) -> None:
    server = cluster()
    cid = f"killed-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        body = {"message": "@tokens=5000 @delay_ms=10"}
        with client.stream("POST", "/v1/chat/streaming", json=body, headers={"X-Correlation-Id": cid}) as response:
            stream_id = response.headers["x-stream-id"]
            read_events(response, 3)
    owner = _worker_of(server, cid)
    following = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        follower = pool.submit(_follow_elsewhere, server, stream_id, owner, following)
        assert following.wait(60)
        os.kill(owner, signal.SIGKILL)
        killed_at = time.monotonic()
        events = follower.result(timeout=60)
    lost_after = time.monotonic() - killed_at
    assert [e.id for e in events] == list(range(len(events)))
    assert [e.event for e in events[:-1]].count("error") == 0 and events[-1].event == "error"
    assert events[-1].data["error_code"] == "generation_lost" and events[-1].data["retryable"] is True
    chunks = [e for e in events if e.event == "chunk"]
    assert 0 < len(chunks) < 5000 and content_of(chunks) == expected_reply(len(chunks))
    assert events[-1].data["last_sequence"] == len(chunks) and events[-1].data["content_length"] == len(
        content_of(chunks)
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        again = parse(client.get(f"/v1/chat/streaming/{stream_id}").content)[0]
    assert again == events, "every later resume gets the same ending"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "generation-lost.json").write_text(json.dumps({"seconds_from_sigkill_to_terminal": lost_after}))


def test_a_client_of_a_killed_worker_resumes_right_after_the_last_event_it_got(cluster) -> None:
    """Every event a client gets was handed to Redis first: after a SIGKILL of the worker that
    served it, the client's resume elsewhere continues with the next id (events Redis got but
    the client did not, then generation_lost), and nothing is missing or repeated."""
    server = cluster()
    cid = f"killed-client-{uuid.uuid4().hex[:8]}"
    seen = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        body = {"message": "@tokens=20000 @delay_ms=1"}
        with client.stream("POST", "/v1/chat/streaming", json=body, headers={"X-Correlation-Id": cid}) as response:
            stream_id = response.headers["x-stream-id"]
            events = iter_events(response)
            seen += [next(events) for _ in range(50)]
            os.kill(_worker_of(server, cid), signal.SIGKILL)
            with contextlib.suppress(httpx.HTTPError):
                seen += events  # what was on its way when the worker died
        last = seen[-1].id
        reply = client.get(f"/v1/chat/streaming/{stream_id}", headers={"Last-Event-ID": str(last)})
    said = (reply.status_code, reply.text[-300:], last, [e.event for e in seen[-3:]])  # if it fails: what came
    resumed = [e for e in parse(reply.content)[0] if e.event != ":comment"]  # keepalives until the lease lapses
    assert [e.id for e in seen + resumed] == list(range(len(seen) + len(resumed))), "no gap, nothing twice"
    assert resumed and [e.event for e in resumed[:-1]] == ["chunk"] * (len(resumed) - 1), said
    ending = resumed[-1]
    assert ending.event == "error" and ending.data["error_code"] == "generation_lost"
    chunks = [e for e in seen + resumed if e.event == "chunk"]
    assert ending.data["last_sequence"] == len(chunks) and content_of(chunks) == expected_reply(len(chunks))


def test_redis_lost_and_back_mid_run(cluster) -> None:
    """Streams running when Redis goes end with store_unavailable; meanwhile new streams and
    resumes get 503 store_unavailable and /ready says why; once Redis is back, all works again."""
    redis = RedisServer()
    server = None
    try:
        server = cluster(redis)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            streams = [
                client.stream("POST", "/v1/chat/streaming", json={"message": "@tokens=3000 @delay_ms=30"})
                for _ in range(3)
            ]
            opened = [stream.__enter__() for stream in streams]
            readers = [(e for e in iter_events(response) if e.event != ":comment") for response in opened]
            received = [[next(reader) for _ in range(3)] for reader in readers]
            redis.stop()
            for stream, reader, events in zip(streams, readers, received, strict=True):
                events += reader  # to the end
                stream.__exit__(None, None, None)
                assert [e.id for e in events] == list(range(len(events)))
                assert events[-1].event == "error" and events[-1].data["error_code"] == "store_unavailable"
                assert events[-1].data["retryable"] is True
                assert content_of(events) == expected_reply(events[-1].data["last_sequence"])
            refused = client.post(
                "/v1/chat/streaming", json={"message": "@tokens=3"}, headers={"X-Correlation-Id": "refused-1"}
            )
            assert refused.status_code == 503 and refused.json()["error_code"] == "store_unavailable"
            assert int(refused.headers["retry-after"]) >= 1 and "try again" in refused.json()["action"].lower()
            assert "REDIS_URL" not in refused.text, "the operator's hint is logged, not sent"
            logged = [r for r in server.log_records() if r.get("correlation_id") == "refused-1" and "action" in r]
            assert logged and "REDIS_URL" in logged[0]["action"], "the log tells the operator what to check"
            # A stream no worker holds in memory (any not produced here) must be read from Redis.
            unknown = client.get(f"/v1/chat/streaming/{uuid.uuid4().hex}")
            assert unknown.status_code == 503 and unknown.json()["error_code"] == "store_unavailable"
            ready = client.get("/ready")
            assert ready.status_code == 503 and ready.json()["store"] == "redis", ready.text
            assert client.post("/v1/chat/wait", json={"message": "@tokens=3"}).status_code == 200, "wait needs no store"
            redis.start()
            deadline = time.monotonic() + 20
            while (again := client.post("/v1/chat/streaming", json={"message": "@tokens=4"})).status_code != 200:
                assert time.monotonic() < deadline, again.text
                time.sleep(0.2)
            assert content_of(parse(again.content)[0]) == expected_reply(4)
            assert client.get("/ready").status_code == 200
    finally:
        if server is not None:  # before its Redis: a worker that stops holding events Redis lacks waits for it
            server.stop()
        redis.stop()


def test_redis_down_at_start_up_boots_says_why_and_serves_once_it_is_back(fake) -> None:
    """No Redis fault stops ChatWait: it starts, answers /health, refuses streams with 503
    store_unavailable (never naming Redis's host: /ready and the log say where and what to do),
    and serves once Redis answers."""
    redis = RedisServer()
    redis.stop()  # its port is free: nothing answers there
    env = server_env(fake.base_url, STREAM_STORE="redis", REDIS_URL=redis.url, WEB_CONCURRENCY="2")
    server = ChatWaitServer(env)
    try:
        with httpx.Client(base_url=server.url, timeout=30, limits=FRESH) as client:
            assert client.get("/health").status_code == 200
            refused = client.post("/v1/chat/streaming", json={"message": "@tokens=3"})
            assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
            body = refused.json()
            assert body["error_code"] == "store_unavailable"
            assert "Redis" in body["detail"] and "127.0.0.1" not in body["detail"], "no host to a client"
            ready = client.get("/ready")  # the operator's: where, and what to do
            detail = ready.json()["checks"]["store"]["detail"]
            assert ready.status_code == 503 and f"Redis at {redis.url} did not answer" in detail
            assert "start Redis, fix REDIS_URL, or set STREAM_STORE=memory" in detail
            assert client.post("/v1/chat/wait", json={"message": "@tokens=3"}).status_code == 200, "wait needs no store"
            logged = [r for r in server.log_records() if r.get("event") == "store_unavailable"]
            assert logged and logged[0]["level"] == "ERROR" and "STREAM_STORE=memory" in logged[0]["detail"]
            redis.start()
            deadline = time.monotonic() + 20
            for _ in range(4):  # new connections: both workers, most likely
                while (again := client.post("/v1/chat/streaming", json={"message": "@tokens=4"})).status_code != 200:
                    assert time.monotonic() < deadline, again.text
                    time.sleep(0.2)
                assert content_of(parse(again.content)[0]) == expected_reply(4)
            # /ready probes Redis from the worker that answers it; right after Redis is back, one
            # that the streams above did not reach may not see it yet: waited for, as they were.
            while (ready := client.get("/ready")).status_code != 200:
                assert time.monotonic() < deadline, ready.json()["checks"]
                time.sleep(0.2)
    finally:
        server.stop()
        redis.stop()
