"""Streams stay whole whatever Redis does. For each fault (kill and restart with its data, kill
and restart empty at once or 40 s later, a pause of 5 s and of 40 s, memory full, keys evicted, a Sentinel failover,
a Cluster primary lost), with 3 workers and 30 streams, half of whose clients drop early and
resume on new connections (so often on another worker):
- every response ends with exactly one terminal event: the stream's own (with an id), or an
  interruption (no id) after which the client resumes;
- no event is missing or repeated, and the text is exact;
- a later replay of each stream equals what its client saw;
- the service recovers without a restart: /ready passes and new streams complete.
What each client got is written to artifacts/redis-faults.json (docs/scaling.md has the table).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import ChatWaitServer
from harness.redis_servers import Cluster, Standalone, Topology, WithSentinel

from ..conftest import server_env
from ..sse import Event, content_of, expected_reply, iter_events, parse

pytestmark = pytest.mark.integration

STREAMS = 30
TOKENS, DELAY_MS = 300, 25  # 7.5 s of reply each
LONG_TOKENS = 1000  # 25 s: longer than REDIS_OUTAGE_SECONDS (10), so that an outage ends them
CLIENT_SECONDS = 120  # a client that has no ending by then has failed
GRACEFUL_SECONDS = 60  # GUNICORN_GRACEFUL_TIMEOUT: what a stopping worker gets to finish and write
FRESH = httpx.Limits(max_keepalive_connections=0)  # a new connection per request: any worker takes it
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
RESULTS: dict[str, dict[str, Any]] = {}


@dataclasses.dataclass
class Client:
    """What one client saw of its stream, over every response it read."""

    message: str
    drop_early: bool
    stream_id: str = ""
    events: list[Event] = dataclasses.field(default_factory=list)
    interruptions: int = 0
    resumes: int = 0
    refused: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ending(self) -> Event | None:
        return self.events[-1] if self.events and self.events[-1].event in ("done", "error") else None

    def read(self, response: httpx.Response, limit: int | None = None) -> str:
        """Read one response: `ended`, `interrupted`, `dropped` (cut, or closed here at `limit`)."""
        outcome = "dropped"
        try:
            for event in iter_events(response):
                if event.event == ":comment" or event.event == "queued":
                    continue
                if outcome != "dropped":
                    self.problems.append(f"an event after the response's terminal one: {event}")
                elif event.id is None:
                    self.interruptions += 1
                    outcome = "interrupted"
                    if event.event != "error" or event.data.get("error_code") != "store_unavailable":
                        self.problems.append(f"an event without id that is no interruption: {event}")
                elif event.id != len(self.events):
                    self.problems.append(f"event {event.id} after {len(self.events) - 1}: a gap or a repeat")
                    return "broken"
                else:
                    self.events.append(event)
                    if event.event in ("done", "error"):
                        outcome = "ended"
                    elif limit is not None and len(self.events) >= limit:
                        return "dropped"
        except httpx.HTTPError:
            return "dropped" if outcome == "dropped" else outcome
        return outcome


def _follow(client: Client, url: str, seed: int) -> None:
    """Start the stream, drop early (half the clients), then resume until the stream's ending."""
    rng = random.Random(seed)
    deadline = time.monotonic() + CLIENT_SECONDS
    with httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=60), limits=FRESH) as http:
        with http.stream("POST", "/v1/chat/streaming", json={"message": client.message}) as response:
            if response.status_code != 200:
                client.problems.append(f"POST answered {response.status_code}")
                return
            client.stream_id = response.headers["x-stream-id"]
            outcome = client.read(response, rng.randint(3, 12) if client.drop_early else None)
        while outcome != "ended" and time.monotonic() < deadline and outcome != "broken":
            time.sleep(0.2 if outcome == "dropped" else 1.0)
            client.resumes += 1
            headers = {"Last-Event-ID": str(len(client.events) - 1)} if client.events else {}
            try:
                with http.stream("GET", f"/v1/chat/streaming/{client.stream_id}", headers=headers) as response:
                    if response.status_code == 200:
                        outcome = client.read(response)
                    elif response.status_code == 503 and b'"store_unavailable"' in response.read():
                        client.refused[response.status_code] += 1
                        outcome = "interrupted"
                    else:
                        client.problems.append(f"a resume answered {response.status_code}: {response.read()[:300]!r}")
                        return
            except httpx.TransportError:  # a resume sent to the worker a fault killed: sent again, as a client would
                outcome = "dropped"
    if client.ending is None:
        client.problems.append(f"no ending ({outcome}) within {CLIENT_SECONDS} s")


def _check(client: Client, tokens: int) -> None:
    """One ending, nothing missing or repeated, the text exact."""
    assert not client.problems, (client.message, client.problems)
    events = client.events
    assert [e.id for e in events] == list(range(len(events)))
    assert [e.event for e in events].count("done") + [e.event for e in events].count("error") == 1
    chunks = [e for e in events if e.event == "chunk"]
    assert content_of(chunks) == expected_reply(len(chunks)), "the text is exact"
    assert events[-1].data["last_sequence"] == len(chunks)
    if events[-1].event == "done":
        assert events[-1].data["finish_reason"] == "stop" and len(chunks) == tokens


def _replay_equals(url: str, client: Client) -> None:
    """What Redis holds now is what the client saw, from any worker (a replay that Redis leaves
    unserved, a 503 or an interruption, is asked again, as a client would)."""
    deadline = time.monotonic() + 40
    with httpx.Client(base_url=url, timeout=30, limits=FRESH) as http:
        while True:
            replay = http.get(f"/v1/chat/streaming/{client.stream_id}")
            events = [e for e in parse(replay.content)[0] if e.event != ":comment"] if replay.status_code == 200 else []
            interrupted = any(e.id is None for e in events)
            if replay.status_code != 503 and not interrupted:
                break
            assert time.monotonic() < deadline, replay.text[:300]  # Redis lost it moments ago: being written again
            time.sleep(float(replay.headers.get("retry-after", "1")))
    assert replay.status_code == 200, (client.stream_id, replay.status_code, replay.text[:300])
    assert events == client.events, f"{client.stream_id}: the replay differs from what its client saw"


def _recovered(server: ChatWaitServer) -> float:
    """Seconds until /ready passes again and new streams complete on fresh connections."""
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=30, limits=FRESH) as http:
        while (ready := http.get("/ready")).status_code != 200:
            assert time.monotonic() - started < 60, ready.text
            time.sleep(0.5)
        for number in range(6):  # new connections: every worker in turn, most likely
            reply = http.post("/v1/chat/streaming", json={"message": f"after {number} @tokens=5"})
            events = parse(reply.content)[0]
            assert reply.status_code == 200 and events[-1].event == "done", reply.text[:300]
            assert content_of(events) == expected_reply(5)
    return time.monotonic() - started


def _kill_and_restart(topology: Topology, _: ChatWaitServer) -> None:
    topology.server.kill()  # type: ignore[attr-defined]
    time.sleep(1.0)
    topology.server.start()  # type: ignore[attr-defined]


def _down(seconds: float) -> Callable[[Topology, ChatWaitServer], None]:
    def down(topology: Topology, _: ChatWaitServer) -> None:
        topology.server.kill()  # type: ignore[attr-defined]
        time.sleep(seconds)
        topology.server.start()  # type: ignore[attr-defined]

    return down


def _pause(seconds: float) -> Callable[[Topology, ChatWaitServer], None]:
    def pause(topology: Topology, _: ChatWaitServer) -> None:
        topology.server.pause()  # type: ignore[attr-defined]
        time.sleep(seconds)
        topology.server.resume()  # type: ignore[attr-defined]

    return pause


def _workers(server: ChatWaitServer) -> list[int]:
    pid = server.proc.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _pause_across(operation: str) -> Callable[[Topology, ChatWaitServer], None]:
    """Redis paused for 8 s while a worker is killed (gunicorn starts another, which boots while
    Redis does not answer) or every worker is replaced (SIGHUP, as a deploy does): the master
    goes on, and so does the service once Redis is back. The pause ends within the old workers'
    graceful time (GRACEFUL_SECONDS less what they need to write what their clients saw): one
    longer leaves Redis to end their streams otherwise than their clients saw them."""

    def pause(topology: Topology, server: ChatWaitServer) -> None:
        topology.server.pause()  # type: ignore[attr-defined]
        try:
            before = set(_workers(server))
            if operation == "kill":
                os.kill(min(before), signal.SIGKILL)
            else:
                os.kill(server.proc.pid, signal.SIGHUP)
            resume_by = time.monotonic() + GRACEFUL_SECONDS - 20
            _until(lambda: len(set(_workers(server)) - before) >= (1 if operation == "kill" else 3), 20)
            booted = lambda: any(r.get("event") == "store_unavailable" for r in server.log_records())  # noqa: E731
            _until(lambda: booted() or time.monotonic() > resume_by - 8, 40)  # a new worker met the paused Redis
            time.sleep(max(0.0, min(8.0, resume_by - time.monotonic())))
        finally:
            topology.server.resume()  # type: ignore[attr-defined]
        assert server.proc.poll() is None, "the master runs on"

    return pause


def _memory_full(topology: Topology, _: ChatWaitServer) -> None:
    """maxmemory below what Redis holds, with noeviction: every write that needs memory is refused."""
    redis = topology.server.client()  # type: ignore[attr-defined]
    redis.config_set("maxmemory", max(1, int(redis.info("memory")["used_memory"]) // 2))
    time.sleep(12.0)  # past REDIS_OUTAGE_SECONDS
    redis.config_set("maxmemory", 0)


def _evicting(topology: Topology, server: ChatWaitServer) -> None:
    """An operator turns eviction on and memory runs short: Redis evicts keys, ChatWait's too."""
    redis = topology.server.client()  # type: ignore[attr-defined]
    redis.config_set("maxmemory-policy", "allkeys-lru")
    redis.config_set("maxmemory", int(int(redis.info("memory")["used_memory"]) * 0.9))
    with contextlib.suppress(httpx.HTTPError):
        ready = httpx.get(f"{server.url}/ready", timeout=10)
        assert ready.status_code == 503 and "allkeys-lru" in ready.json()["checks"]["store"]["detail"], ready.text
    time.sleep(4.0)
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", 0)


def _failover(topology: Topology, _: ChatWaitServer) -> None:
    sentinel: WithSentinel = topology  # type: ignore[assignment]
    old = sentinel.primary_port()
    sentinel.primary.kill()
    deadline = time.monotonic() + 30
    while sentinel.primary_port() == old:
        assert time.monotonic() < deadline, "the Sentinel did not fail over"
        time.sleep(0.2)


def _node_lost(topology: Topology, _: ChatWaitServer) -> None:
    cluster: Cluster = topology  # type: ignore[assignment]
    node = cluster.a_primary()
    node.kill()
    node.proc = None
    cluster.until_healthy(60)


FAULTS: dict[str, tuple[Callable[[], Topology], Callable[[Topology, ChatWaitServer], None]]] = {
    "kill_restart_with_data": (lambda: Standalone(persistent=True), _kill_and_restart),
    "kill_restart_empty": (Standalone, _kill_and_restart),
    "down_40s_restart_empty": (Standalone, _down(40.0)),
    "pause_5s": (Standalone, _pause(5.0)),
    "pause_40s": (Standalone, _pause(40.0)),
    "pause_worker_killed": (Standalone, _pause_across("kill")),
    "pause_sighup": (Standalone, _pause_across("hup")),
    "memory_full": (Standalone, _memory_full),
    "eviction": (Standalone, _evicting),
    "sentinel_failover": (WithSentinel, _failover),
    "cluster_node_lost": (Cluster, _node_lost),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_client_gets_its_stream_whole_through_a_redis_fault(fake, fault) -> None:
    make_topology, inject = FAULTS[fault]
    tokens = LONG_TOKENS if fault.startswith("down_") else TOKENS
    topology = make_topology()
    server = None
    try:
        env = server_env(fake.base_url, STREAM_STORE="redis", WEB_CONCURRENCY="3", **topology.env)
        server = ChatWaitServer({**env, "GUNICORN_GRACEFUL_TIMEOUT": str(GRACEFUL_SECONDS)})
        clients = [
            Client(f"{fault} {n} {uuid.uuid4().hex[:6]} @tokens={tokens} @delay_ms={DELAY_MS}", n % 2 == 0)
            for n in range(STREAMS)
        ]
        with ThreadPoolExecutor(max_workers=STREAMS) as pool:
            running = [pool.submit(_follow, client, server.url, n) for n, client in enumerate(clients)]
            _until(lambda: all(len(c.events) >= 3 for c in clients if not c.problems), 30)
            started = time.monotonic()
            inject(topology, server)
            lasted = time.monotonic() - started
            for future in running:
                future.result(timeout=CLIENT_SECONDS + 30)
        recovery = _recovered(server)
        for client in clients:
            _check(client, tokens)
            _replay_equals(server.url, client)
        RESULTS[fault] = _summary(clients, lasted, recovery)
    finally:
        if server is not None:
            server.stop()
        topology.stop()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "redis-faults.json").write_text(json.dumps(RESULTS, indent=1))


def _until(done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def _summary(clients: list[Client], lasted: float, recovery: float) -> dict[str, Any]:
    endings = collections.Counter(
        c.ending.data.get("finish_reason") or c.ending.data.get("error_code") for c in clients if c.ending
    )
    return {
        "fault_seconds": round(lasted, 1),
        "endings": dict(endings),
        "interrupted_responses": sum(c.interruptions for c in clients),
        "resumes": sum(c.resumes for c in clients),
        "resumes_refused_503": sum(sum(c.refused.values()) for c in clients),
        "recovered_after_seconds": round(recovery, 1),
    }


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> None:
    before = threading.active_count()
    yield
    _until(lambda: threading.active_count() <= before, 10)
