"""Takeover: the live streams of a worker that dies (SIGKILL) or stalls past its lease (SIGSTOP)
are claimed by another worker, which continues each from the text its clients have; followers
anywhere, and later resumes, get one whole answer with contiguous ids and nothing twice.

The fake upstream continues a prefill as a deterministic model would (harness/fake_openai.py), so
a taken-over answer equals the uninterrupted one exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream
from harness.redis_servers import RedisServer

from ..conftest import server_env
from ..sse import Event, content_of, expected_reply, iter_events, parse, read_events
from .test_scale_out import ARTIFACTS, FRESH, _follow_elsewhere, _worker_of

pytestmark = pytest.mark.integration

Start = Callable[..., ChatWaitServer]


def _upstreams(fake: FakeUpstream, folder: Path, continuation: str = "prefill") -> str:
    listing = folder / "upstreams.yaml"
    listing.write_text(f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}, continuation: {continuation}}}\n")
    return str(listing)


@pytest.fixture
def takeover(fake: FakeUpstream, redis_server: RedisServer, tmp_path: Path) -> Iterator[Start]:
    """ChatWait with two workers on the tests' Redis, continuing by prefill, rescues on."""
    started: list[ChatWaitServer] = []

    def start(continuation: str = "prefill", **overrides: str) -> ChatWaitServer:
        env = server_env(
            "",
            UPSTREAMS_FILE=_upstreams(fake, tmp_path, continuation),
            STREAM_STORE="redis",
            REDIS_URL=redis_server.url,
            WEB_CONCURRENCY="2",
            **{"UPSTREAM_RESCUES": "2", "UPSTREAM_TAKEOVERS": "2", **overrides},
        )
        running = ChatWaitServer(env)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def _started(server: ChatWaitServer, message: str, events: int) -> tuple[str, int, list[Event]]:
    """Start a native stream; its id, its worker's pid and its first `events` events."""
    cid = f"taken-{uuid.uuid4().hex[:8]}"
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("POST", "/v1/chat/streaming", json={"message": message}, headers={"X-Correlation-Id": cid}) as r,
    ):
        stream_id = r.headers["x-stream-id"]
        seen, _ = read_events(r, events)
    return stream_id, _worker_of(server, cid), seen


def _whole(events: list[Event], tokens: int) -> None:
    """One whole answer: contiguous ids from 0, one terminal `done` last, the exact text."""
    assert [e.id for e in events] == list(range(len(events))), "contiguous ids, nothing twice"
    assert [e.event for e in events].count("done") == 1 and events[-1].event == "done"
    assert not [e for e in events if e.event == "error"]
    assert content_of(events) == expected_reply(tokens), "no token lost, none twice, no seam"
    chunks = [e for e in events if e.event == "chunk"]
    assert events[-1].data["last_sequence"] == len(chunks)
    assert events[-1].data["content_length"] == len(expected_reply(tokens))


def test_a_killed_workers_stream_is_continued_by_another(takeover, fake) -> None:
    """UPSTREAM_TAKEOVERS alone continues it: UPSTREAM_RESCUES (after a cut) is 0 here."""
    server = takeover(UPSTREAM_RESCUES="0")
    message = f"{uuid.uuid4().hex} @tokens=400 @delay_ms=10"
    stream_id, owner, _ = _started(server, message, 3)
    following = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        follower = pool.submit(_follow_elsewhere, server, stream_id, owner, following)
        assert following.wait(60)
        os.kill(owner, signal.SIGKILL)
        killed_at = time.time()
        events = follower.result(timeout=90)
    _whole(events, 400)
    continued = next(r for r in fake.outcomes_for(message) if r.get("continued_from"))
    ARTIFACTS.mkdir(exist_ok=True)  # timings are recorded, not asserted (a shared, noisy machine)
    gap = {"seconds_from_sigkill_to_continuation_request": round(continued["started"] - killed_at, 3)}
    (ARTIFACTS / "takeover.json").write_text(json.dumps(gap))
    attempts = fake.outcomes_for(message)
    assert len(attempts) == 2 and 0 < attempts[1]["continued_from"] < 400, "continued, not started again"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        again = parse(client.get(f"/v1/chat/streaming/{stream_id}").content)[0]
    assert again == events, "every later resume gets the same answer"
    taken = [r for r in server.log_records() if r.get("event") == "generation_taken_over"]
    assert [r["stream_id"] for r in taken] == [stream_id]
    rescues = [r for r in server.log_records() if r.get("event") == "upstream_rescue"]
    assert [(r["cause"], r["strategy"]) for r in rescues] == [("takeover", "prefill")]
    lost, continuation = events[-1].data["usage"]["attempts"]  # the ledger: the dead worker's attempt too
    assert (lost["outcome"], lost["error_code"]) == ("cut", "generation_lost")
    assert lost["output_tokens"] == attempts[1]["continued_from"], "what its stream had (the upstream sent no more)"
    assert continuation["outcome"] == "completed" and continuation["output_tokens"] == attempts[1]["tokens"]


def test_a_client_of_the_killed_worker_resumes_and_gets_the_rest(takeover) -> None:
    server = takeover()
    cid = f"taken-client-{uuid.uuid4().hex[:8]}"
    seen: list[Event] = []
    with httpx.Client(base_url=server.url, timeout=30, limits=FRESH) as client:
        body = {"message": f"{uuid.uuid4().hex} @tokens=300 @delay_ms=10"}
        with client.stream("POST", "/v1/chat/streaming", json=body, headers={"X-Correlation-Id": cid}) as response:
            stream_id = response.headers["x-stream-id"]
            events = (e for e in iter_events(response) if e.event != ":comment")
            seen += [next(events) for _ in range(20)]
            os.kill(_worker_of(server, cid), signal.SIGKILL)
            with contextlib.suppress(httpx.HTTPError):
                seen += events  # what was on its way when the worker died
        while seen[-1].event != "done":  # resumed after the last event received, until the end
            headers = {"Last-Event-ID": str(seen[-1].id)}
            reply = client.get(f"/v1/chat/streaming/{stream_id}", headers=headers, timeout=60)
            seen += [e for e in parse(reply.content)[0] if e.event != ":comment"]
    _whole(seen, 300)


def test_a_taken_over_stream_keeps_its_keys_place(takeover, tmp_path) -> None:
    """A key with max_streams=1: its stream, taken over from a worker that died, still holds the
    key's one place while it runs (no other generation of the key starts), and frees it at its end."""
    key = "sk-one-place-" + uuid.uuid4().hex
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{key} name=one-{uuid.uuid4().hex[:6]} max_streams=1\n")
    server = takeover(CHATWAIT_API_KEYS_FILE=str(keys))
    auth = {"Authorization": f"Bearer {key}"}
    cid = f"taken-key-{uuid.uuid4().hex[:8]}"
    message = f"{uuid.uuid4().hex} @tokens=2000 @delay_ms=10"
    with httpx.Client(base_url=server.url, timeout=60, limits=FRESH, headers=auth) as client:
        post = {"json": {"message": message}, "headers": {"X-Correlation-Id": cid}}
        with client.stream("POST", "/v1/chat/streaming", **post) as r:
            stream_id = r.headers["x-stream-id"]
            read_events(r, 3)
        os.kill(_worker_of(server, cid), signal.SIGKILL)
        _wait_for_takeover(server, stream_id)
        time.sleep(6)  # past the dead worker's ticket lease (5 s): only the new owner holds the place now
        refused = client.post("/v1/chat/wait", json={"message": "@tokens=1"})
        assert refused.status_code == 429 and "max_streams" in refused.json()["detail"], refused.text
        events = parse(client.get(f"/v1/chat/streaming/{stream_id}").content)[0]
        assert events[-1].event == "done"
        assert client.post("/v1/chat/wait", json={"message": "@tokens=1"}).status_code == 200, "freed at its end"


def test_a_stream_cut_in_a_tool_call_is_not_continued_but_ends_lost(takeover) -> None:
    server = takeover()
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    cid = f"taken-tool-{uuid.uuid4().hex[:8]}"
    message = f"{uuid.uuid4().hex} @tokens=0 @argpieces=400 @delay_ms=10"
    body = {"model": "fake-model", "messages": [{"role": "user", "content": message}], "tools": tools, "stream": True}
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=body, headers={"X-Correlation-Id": cid}) as response,
    ):
        stream_id = response.headers["x-stream-id"]
        read_events(response, 5)
    os.kill(_worker_of(server, cid), signal.SIGKILL)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        events = parse(client.get(f"/v1/chat/completions/{stream_id}/stream").content)[0]
    errors = [e for e in events if e.event == "message" and e.data != "[DONE]" and "error" in e.data]
    assert errors and errors[-1].data["error"]["code"] == "generation_lost", events[-3:]


def test_a_background_response_whose_worker_dies_completes(takeover, fake) -> None:
    server = takeover()
    cid = f"taken-bg-{uuid.uuid4().hex[:8]}"
    message = f"{uuid.uuid4().hex} @tokens=300 @delay_ms=10"
    with httpx.Client(base_url=server.url, timeout=30, limits=FRESH) as client:
        body = {"model": "fake-model", "input": message, "background": True}
        created = client.post("/v1/responses", json=body, headers={"X-Correlation-Id": cid}).json()
        assert created["status"] in ("queued", "in_progress")
        time.sleep(0.5)  # some of it generated
        os.kill(_worker_of(server, cid), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (found := client.get(f"/v1/responses/{created['id']}").json())["status"] == "in_progress":
            assert time.monotonic() < deadline, "the response never ended"
            time.sleep(0.2)
    assert found["status"] == "completed", found.get("error")
    assert found["output"][0]["content"][0]["text"] == expected_reply(300)
    attempts = fake.outcomes_for(message)
    assert len(attempts) == 2 and attempts[1]["continued_from"] > 0


def test_a_stalled_owner_that_comes_back_hands_its_clients_over(takeover) -> None:
    """SIGSTOP past the lease: another worker takes the stream over; once the first worker runs
    again, its writes are refused and its own client reads on, on the same response, what the
    new owner writes: one whole answer, without a resume."""
    server = takeover()
    cid = f"taken-stalled-{uuid.uuid4().hex[:8]}"
    seen: list[Event] = []
    with httpx.Client(base_url=server.url, timeout=60, limits=FRESH) as client:
        body = {"message": f"{uuid.uuid4().hex} @tokens=400 @delay_ms=10"}
        with client.stream("POST", "/v1/chat/streaming", json=body, headers={"X-Correlation-Id": cid}) as response:
            stream_id = response.headers["x-stream-id"]
            events = iter_events(response)
            seen += [e for e in (next(events) for _ in range(10)) if e.event != ":comment"]
            owner = _worker_of(server, cid)
            os.kill(owner, signal.SIGSTOP)
            try:
                _wait_for_takeover(server, stream_id)
            finally:
                os.kill(owner, signal.SIGCONT)
            seen += [e for e in events if e.event != ":comment"]
        assert all(e.id is not None for e in seen), "no id-less ending: handed over, not interrupted"
        replay = [e for e in parse(client.get(f"/v1/chat/streaming/{stream_id}").content)[0] if e.event != ":comment"]
    _whole(seen, 400)
    assert replay == seen
    assert any(r.get("event") == "stream_moved" for r in server.log_records())


def _wait_for_takeover(server: ChatWaitServer, stream_id: str) -> None:
    deadline = time.monotonic() + 30
    while not any(
        r.get("event") == "generation_taken_over" and r.get("stream_id") == stream_id for r in server.log_records()
    ):
        assert time.monotonic() < deadline, "never taken over"
        time.sleep(0.2)


CHAOS_SECONDS = 70.0  # workers are killed at 10, 30 and 50 s; streams start until the end
KILL_EVERY_SECONDS = 20.0
CHAOS_CLIENTS = 24


def _workers(server: ChatWaitServer) -> list[int]:
    """The pids of a ChatWait instance's workers (the gunicorn master's children)."""
    pid = server.proc.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _chaos_stream(servers: list[ChatWaitServer], seed: int) -> tuple[list[Event], int]:
    """One stream started on one instance, dropped at random and resumed on the other, again and
    again, through connections cut by killed workers, until its terminal event; its events and
    its length in tokens."""
    rng = random.Random(seed)
    tokens = rng.randint(100, 300)
    message = f"chaos {seed} {uuid.uuid4().hex[:8]} @tokens={tokens} @delay_ms=20"
    received: list[Event] = []
    stream_id = None
    deadline = time.monotonic() + 120
    turn = rng.randrange(2)
    while not received or received[-1].event not in ("done", "error"):
        assert time.monotonic() < deadline, f"stream {stream_id} never ended: {received[-3:]}"
        turn += 1
        with contextlib.suppress(httpx.TransportError), httpx.Client(timeout=30, limits=FRESH) as client:
            url = servers[turn % 2].url
            if stream_id is None:
                request = client.stream("POST", f"{url}/v1/chat/streaming", json={"message": message})
            else:  # a client cut before its first event (it has the id from the head) replays it all
                headers = {"Last-Event-ID": str(received[-1].id)} if received else {}
                request = client.stream("GET", f"{url}/v1/chat/streaming/{stream_id}", headers=headers)
            with request as response:
                assert response.status_code == 200, (response.status_code, response.read())
                stream_id = response.headers["x-stream-id"]
                for event in iter_events(response):
                    if event.event == ":comment":
                        continue
                    received.append(event)
                    if event.event in ("done", "error") or rng.random() < 0.02:
                        break  # the end, or a drop
        time.sleep(rng.uniform(0.0, 0.3) if received else 0.2)
    return received, tokens


def test_streams_survive_workers_killed_under_load(fake, redis_server, tmp_path) -> None:
    """Two instances of two workers on one Redis; clients stream, drop and resume on the other
    instance while a worker is SIGKILLed every 20 s: every stream ends whole and exact, none lost."""
    env = server_env(
        "",
        UPSTREAMS_FILE=_upstreams(fake, tmp_path),
        STREAM_STORE="redis",
        REDIS_URL=redis_server.url,
        WEB_CONCURRENCY="2",
        UPSTREAM_RESCUES="2",
        UPSTREAM_TAKEOVERS="2",
    )
    servers = [ChatWaitServer(env), ChatWaitServer(env)]
    stop = threading.Event()
    killed: list[int] = []

    def killer() -> None:
        rng = random.Random(7)
        while not stop.wait(KILL_EVERY_SECONDS / 2 if not killed else KILL_EVERY_SECONDS):
            victim = rng.choice(_workers(rng.choice(servers)))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    def client(index: int) -> list[tuple[list[Event], int]]:
        done, seed = [], index
        while not stop.is_set():
            done.append(_chaos_stream(servers, seed))
            seed += CHAOS_CLIENTS
        return done

    try:
        with ThreadPoolExecutor(max_workers=CHAOS_CLIENTS + 1) as pool:
            pool.submit(killer)
            clients = [pool.submit(client, index) for index in range(CHAOS_CLIENTS)]
            time.sleep(CHAOS_SECONDS)
            stop.set()
            results = [stream for running in clients for stream in running.result(timeout=180)]
        records = [r for server in servers for r in server.log_records()]
        taken = sum(r.get("event") == "generation_taken_over" for r in records)
    finally:
        stop.set()
        for server in servers:
            server.stop()
    endings = Counter(events[-1].data.get("error_code", "done") for events, _ in results)
    assert endings == Counter({"done": len(results)}), (endings, _story_of_lost(results, records))
    for events, tokens in results:
        _whole(events, tokens)
    assert len(killed) >= 3 and taken > 0, (killed, taken)
    ARTIFACTS.mkdir(exist_ok=True)
    summary = {"streams": len(results), "workers_killed": len(killed), "taken_over": taken}
    (ARTIFACTS / "takeover-chaos.json").write_text(json.dumps(summary))


def _story_of_lost(results: list[tuple[list[Event], int]], records: list[dict]) -> list[tuple[str, list]]:
    """For each stream that did not end done: what the servers logged of it (to tell why)."""
    lost = {events[0].data["stream_id"] for events, _ in results if events[-1].event != "done"}
    fields = ("pid", "event", "error_code", "owner", "chunks")
    return [(sid, [[r.get(f) for f in fields] for r in records if r.get("stream_id") == sid]) for sid in lost]


def test_a_dead_workers_streams_that_redis_then_loses_end_with_one_terminal_event(fake, tmp_path) -> None:
    """The double fault: a worker is SIGKILLed, and Redis restarts empty right after (before the
    worker's lease lapses and another could take its streams over): nothing holds their events any
    more. Every client following one elsewhere gets one terminal generation_lost event with an id
    (not an interruption that sends it to resume a stream that no longer exists), and so does a
    client that resumes after the last event it had; a replay from the start is told the stream
    was lost."""
    redis = RedisServer()
    env = server_env(
        "", UPSTREAMS_FILE=_upstreams(fake, tmp_path), STREAM_STORE="redis", REDIS_URL=redis.url,
        WEB_CONCURRENCY="2", UPSTREAM_RESCUES="2", UPSTREAM_TAKEOVERS="2",
    )  # fmt: skip
    server = ChatWaitServer(env)
    try:
        message = f"{uuid.uuid4().hex} @tokens=3000 @delay_ms=10"
        stream_id, owner, _ = _started(server, message, 3)
        following = threading.Event()
        with ThreadPoolExecutor(max_workers=1) as pool:
            follower = pool.submit(_follow_elsewhere, server, stream_id, owner, following)
            assert following.wait(60)
            os.kill(owner, signal.SIGKILL)
            time.sleep(0.3)  # the lease lapses 2-3 s after the kill: well before
            redis.stop()
            redis.start()  # empty
            events = follower.result(timeout=90)
        assert [e.id for e in events] == list(range(len(events))), "contiguous ids, the ending's too"
        assert events[-1].event != "done", "taken over before Redis lost it: the test's premise broke"
        assert [e.event for e in events].count("error") == 1 and events[-1].event == "error", events[-1]
        assert events[-1].data["error_code"] == "generation_lost", events[-1]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            path, cut = f"/v1/chat/streaming/{stream_id}", {"Last-Event-ID": "1"}  # a client cut early
            while (resumed := client.get(path, headers=cut)).status_code == 503:  # owners may write theirs again
                time.sleep(1.0)
            ended = [e for e in parse(resumed.content)[0] if e.event != ":comment"]
            whole = client.get(path)  # a replay from the start: nothing to replay
        assert [(e.id, e.event, e.data["error_code"]) for e in ended] == [(2, "error", "generation_lost")], ended
        assert whole.status_code == 404 and "Redis lost the stream" in whole.json()["detail"], whole.text
    finally:
        server.stop()
        redis.stop()
