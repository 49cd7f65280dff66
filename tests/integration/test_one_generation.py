"""One generation per stream, cluster-wide: a worker that stalls past its lease (SIGSTOP) and
comes back, or dies (SIGKILL), never leaves two producers writing one stream. Every client of a
stream, on either instance, gets one text and one ending, equal to a later replay, and each
takeover costs one continuation.

Two instances of two workers on one Redis; streams are posted on instance A and followed from
event 0 on instance B, then A's busiest worker is stopped or killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream
from harness.redis_servers import RedisServer

from ..conftest import FAKE_MODEL, server_env
from ..sse import Event, expected_reply, iter_events, parse
from .test_scale_out import FRESH, _workers_by_request

pytestmark = pytest.mark.integration

STREAMS = 40
# How each API starts, resumes and ends a stream, and its text.
APIS = {
    "native": {
        "post": "/v1/chat/streaming",
        "body": lambda message: {"message": message},
        "resume": "/v1/chat/streaming/{}",
        "endings": ("done", "error"),
        "done": "done",
        "text": lambda e: e.data["content"] if e.event == "chunk" else "",
    },
    "messages": {
        "post": "/v1/messages",
        "body": lambda message: {
            "model": FAKE_MODEL,
            "max_tokens": 4000,
            "stream": True,
            "messages": [{"role": "user", "content": message}],
        },
        "resume": "/v1/messages/streams/{}",
        "endings": ("message_stop", "error"),
        "done": "message_stop",
        "text": lambda e: e.data["delta"].get("text", "") if e.event == "content_block_delta" else "",
    },
}
TOKENS = 500  # 10 s at 20 ms a token: still running when the stalled worker comes back
SPLIT_RUNS = int(os.environ.get("CHATWAIT_SPLIT_RUNS", "1"))  # 10 when checked by hand (docs/scaling.md)


def _instances(fake: FakeUpstream, redis: RedisServer, folder: Path) -> list[ChatWaitServer]:
    listing = folder / "upstreams.yaml"
    listing.write_text(f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}, continuation: prefill}}\n")
    env = server_env(
        "",
        UPSTREAMS_FILE=str(listing),
        STREAM_STORE="redis",
        REDIS_URL=redis.url,
        WEB_CONCURRENCY="2",
        UPSTREAM_RESCUES="2",
        UPSTREAM_TAKEOVERS="2",
    )
    return [ChatWaitServer(env), ChatWaitServer(env)]


def _kept(events: list[Event]) -> list[Event]:
    """The events of the stream's log: no comments, keepalives (`ping`) or id-less notices."""
    return [e for e in events if e.event not in (":comment", "ping") and e.id is not None]


def _read_to_the_end(
    servers: list[ChatWaitServer], api: dict, path: str, first: httpx.Response, deadline: float
) -> list[Event]:
    """The events of one client of a stream: `first` (an open response), then resumes after the
    last id received (an id-less ending says to), alternating instances, until a terminal event."""
    seen: list[Event] = []
    response: httpx.Response | None = first
    turn = 0
    while True:
        assert time.monotonic() < deadline, f"no ending: {seen[-2:]}"
        if response is not None:
            with contextlib.suppress(httpx.HTTPError):
                for event in iter_events(response):
                    if event.event in (":comment", "ping"):
                        continue
                    if event.id is None:
                        break  # an id-less ending: resume
                    seen.append(event)
                    if event.event in api["endings"]:
                        return seen
        turn += 1
        headers = {"Last-Event-ID": str(seen[-1].id)} if seen else {}
        with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=60, limits=FRESH) as client:
            reply = client.get(f"{servers[turn % 2].url}{path}", headers=headers)
            if reply.status_code == 200:
                seen += _kept(parse(reply.content)[0])
                if seen and seen[-1].event in api["endings"]:
                    return seen
        response = None
        time.sleep(0.2)


def _client(servers: list[ChatWaitServer], api: dict, stream_id: str, post: httpx.Response | None) -> list[Event]:
    """Follow `stream_id` to its end: the poster on its own response, a follower from event 0 on B."""
    path = api["resume"].format(stream_id)
    deadline = time.monotonic() + 120
    if post is not None:
        return _read_to_the_end(servers, api, path, post, deadline)
    with httpx.Client(timeout=60, limits=FRESH) as client, client.stream("GET", f"{servers[1].url}{path}") as reply:
        return _read_to_the_end(servers, api, path, reply, deadline)


def _split_run(servers: list[ChatWaitServer], fake: FakeUpstream, fault: signal.Signals, api: dict) -> None:
    """Post STREAMS streams on A, follow each on B, then stall (8 s) or kill A's busiest worker."""
    tag = uuid.uuid4().hex[:8]
    messages = {i: f"split {tag} {i} @tokens={TOKENS} @delay_ms=20" for i in range(STREAMS)}
    opened: dict[int, tuple[str, httpx.Response]] = {}
    clients: list[httpx.Client] = []
    with ThreadPoolExecutor(max_workers=2 * STREAMS) as pool:
        for i, message in messages.items():
            client = httpx.Client(timeout=60, limits=FRESH)
            clients.append(client)
            cid = f"split-{tag}-{i}"
            request = client.build_request("POST", f"{servers[0].url}{api['post']}", json=api["body"](message))
            request.headers["X-Correlation-Id"] = cid
            response = client.send(request, stream=True)
            assert response.status_code == 200, response.read()
            opened[i] = (response.headers["x-stream-id"], response)
        posters = {i: pool.submit(_client, servers, api, sid, response) for i, (sid, response) in opened.items()}
        followers = {i: pool.submit(_client, servers, api, sid, None) for i, (sid, _) in opened.items()}
        time.sleep(1.5)  # every stream under way, followed on B
        by_worker = _workers_by_request(servers[0])
        owners = Counter(by_worker[f"split-{tag}-{i}"] for i in messages)
        victim, _ = owners.most_common(1)[0]
        os.kill(victim, fault)
        if fault == signal.SIGSTOP:
            time.sleep(8)
            os.kill(victim, signal.SIGCONT)
        got = {i: (posters[i].result(timeout=180), followers[i].result(timeout=180)) for i in messages}
    for _, response in opened.values():
        response.close()
    for client in clients:
        client.close()
    with httpx.Client(timeout=60) as client:
        for i, (stream_id, _) in opened.items():
            replay = _kept(parse(client.get(f"{servers[1].url}{api['resume'].format(stream_id)}").content)[0])
            poster, follower = got[i]
            _one_answer(api, poster, follower, replay)
            continuations = [o for o in fake.outcomes_for(messages[i]) if o.get("continued_from")]
            taken = _taken_over(servers, stream_id)
            lines = [r for server in servers for r in server.log_records() if r.get("stream_id") == stream_id]
            assert len(continuations) == taken, (stream_id, continuations, [r for r in lines if r["level"] != "DEBUG"])


def _one_answer(api: dict, poster: list[Event], follower: list[Event], replay: list[Event]) -> None:
    """One text, one ending, contiguous ids, equal for every client and for the replay."""
    key = [(e.id, e.event, e.data) for e in replay]
    assert [(e.id, e.event, e.data) for e in poster] == key, "the poster saw what a replay shows"
    assert [(e.id, e.event, e.data) for e in follower] == key, "the follower saw what a replay shows"
    ids = sorted({e.id for e in replay})
    assert ids == list(range(len(ids))) and [e.id for e in replay] == sorted(e.id for e in replay)
    endings = [e.event for e in replay if e.event in api["endings"]]
    assert endings == [api["done"]] and replay[-1].event == api["done"], replay[-1]
    assert "".join(api["text"](e) for e in replay) == expected_reply(TOKENS)


def _taken_over(servers: list[ChatWaitServer], stream_id: str) -> int:
    return sum(
        r.get("event") == "generation_taken_over" and r.get("stream_id") == stream_id
        for server in servers
        for r in server.log_records()
    )


@pytest.mark.parametrize(
    ("fault", "api"),
    [(signal.SIGSTOP, "native"), (signal.SIGKILL, "native"), (signal.SIGSTOP, "messages")],
    ids=["stalled", "killed", "stalled-messages"],
)
def test_a_stalled_or_killed_worker_leaves_one_generation_per_stream(fake, redis_server, tmp_path, fault, api) -> None:
    servers = _instances(fake, redis_server, tmp_path)
    try:
        for _ in range(SPLIT_RUNS if (fault, api) == (signal.SIGSTOP, "native") else 1):
            _split_run(servers, fake, fault, APIS[api])
    finally:
        for server in servers:
            server.stop()
