"""A Redis Cluster found through any node REDIS_URL names: a worker started while the first-named
node is down (a crash, a deploy, a new instance) finds the Cluster through another, serves its
streams and opens its managed keys; a URL naming several servers without a Cluster is refused
at start, naming the setting."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest
from redis.crc import key_slot

from app.config import ConfigError, load_settings
from harness.processes import ChatWaitServer, FakeUpstream
from harness.redis_servers import Cluster

from ..conftest import server_env
from ..sse import iter_events

pytestmark = pytest.mark.integration

ADMIN = "admin-cluster-0123456789abcdef"
THERE = "there-cluster-key-0123456789abcdef"  # its counters on the node the test kills
ELSEWHERE = "elsewhere-cluster-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ELSEWHERE}"}


def test_a_worker_started_with_the_named_node_down_finds_the_cluster_through_another(fake: FakeUpstream) -> None:
    cluster = Cluster()
    server = None
    try:
        nodes = ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes)
        first = cluster.nodes[0]
        first.kill()
        first.proc = None
        cluster.until_healthy(60)  # its replica took over, if it was a primary
        env = server_env(fake.base_url, STREAM_STORE="redis", WEB_CONCURRENCY="2", ADMIN_API_KEY=ADMIN,
                         REDIS_URL=f"redis+cluster://{nodes}")  # fmt: skip
        server = ChatWaitServer(env)
        made = httpx.post(f"{server.url}/v1/admin/keys", json={"name": "seeded"},
                          headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)  # fmt: skip
        assert made.status_code == 201, made.text
        auth = {"Authorization": f"Bearer {made.json()['key']}"}
        asked = [{"message": f"seeded {n} @tokens=3"} for n in range(10)]
        answers = [httpx.post(f"{server.url}/v1/chat/streaming", json=body, headers=auth, timeout=30) for body in asked]
        assert [answer.status_code for answer in answers] == [200] * 10, "streams and the managed key, every worker"
        assert all("event: done" in answer.text for answer in answers)
        assert httpx.get(f"{server.url}/ready", timeout=10).status_code == 200
    finally:
        if server is not None:
            server.stop()
        cluster.stop()


def test_a_list_of_servers_is_for_a_cluster_or_sentinels() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL names several servers"):
        load_settings(environ={"STREAM_STORE": "redis", "REDIS_URL": "redis://a:6379,b:6379/0"})
    found = load_settings(environ={"STREAM_STORE": "redis", "REDIS_URL": "redis://a:6379,b:6379", "REDIS_CLUSTER": "1"})
    assert found.redis.redis_cluster


def _nodes(cluster: Cluster) -> list[tuple[int, str, str, list[tuple[int, int]]]]:
    """CLUSTER NODES as (port, node id, the primary's id or '-', slot ranges)."""
    alive = next(node for node in cluster.nodes if node.proc is not None)
    found = []
    for line in alive.client().execute_command("CLUSTER", "NODES").decode().splitlines():
        parts = line.split()
        ranges = [
            tuple(int(n) for n in part.split("-")) if "-" in part else (int(part), int(part)) for part in parts[8:]
        ]
        found.append((int(parts[1].split("@")[0].rpartition(":")[2]), parts[0], parts[3], ranges))
    return found  # type: ignore[return-value]


def _stream_slot(stream_id: str) -> int:
    return key_slot(f"chatwait:{{{stream_id}}}:meta".encode())


def _read_all(url: str, body: dict, started: list) -> tuple[str, list]:
    """A stream read to its end, from its POST: its id and its events (`started` gets its id
    once three events came)."""
    with (
        httpx.Client(base_url=url, timeout=httpx.Timeout(30, read=60)) as client,
        client.stream("POST", "/v1/chat/streaming", json=body, headers=AUTH) as answer,
    ):
        assert answer.status_code == 200, answer.read()
        events = []
        for event in iter_events(answer):
            events.append(event)
            if len(events) == 3:
                started.append(answer.headers["x-stream-id"])
        return answer.headers["x-stream-id"], events


@pytest.mark.parametrize("replica", [False, True], ids=["no_replica", "failover"])
def test_a_lost_primary_stops_its_own_slots_alone(fake: FakeUpstream, replica: bool, tmp_path) -> None:
    """The red team's finding: on a 6-node Cluster, a primary lost with no working replica made
    every stream stop and every new one refused, and a failover paused every stream. Now only
    the streams in its slots wait (and end, each with one terminal event, once
    REDIS_OUTAGE_SECONDS passes before a replica takes over); every other stream goes on to its
    `done`; new streams are placed in the slots still served; /ready stays ready and names a
    node lost for good; a key whose counters were on it is refused (KEY_LIMITS_WITHOUT_REDIS=closed)
    while the keys on other nodes are served."""
    cluster = Cluster()
    server = None
    try:
        coordination = key_slot(b"chatwait:live")
        deadline = time.monotonic() + 30
        table = _nodes(cluster)
        while sum(row[2] != "-" for row in table) < 3:  # each replica known to follow its primary
            assert time.monotonic() < deadline, table
            time.sleep(0.2)
            table = _nodes(cluster)
        port, victim, _, ranges = next(
            row for row in table if row[2] == "-" and not any(a <= coordination <= b for a, b in row[3])
        )  # a primary that does not hold the live count
        replica_port = next(row[0] for row in table if row[2] == victim)
        lost = lambda slot: any(a <= slot <= b for a, b in ranges)  # noqa: E731
        names = (f"team-{n}" for n in range(1000))
        there = next(name for name in names if lost(key_slot(f"chatwait:limits:{{{name}}}".encode())))
        elsewhere = next(name for name in names if not lost(key_slot(f"chatwait:limits:{{{name}}}".encode())))
        keys = tmp_path / "keys"
        keys.write_text(f"{THERE} name={there} rpm=1000\n{ELSEWHERE} name={elsewhere} rpm=1000\n")
        nodes = ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes)
        env = server_env(fake.base_url, STREAM_STORE="redis", WEB_CONCURRENCY="2", REDIS_OUTAGE_SECONDS="2",
                         REDIS_URL=f"redis+cluster://{nodes}", CHATWAIT_API_KEYS_FILE=str(keys),
                         KEY_LIMITS_WITHOUT_REDIS="closed")  # fmt: skip
        server = ChatWaitServer(env)
        started: list[str] = []
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            body = {"message": "Cluster @tokens=50 @delay_ms=100"}  # 5 s: the node dies a second in
            running = [pool.submit(_read_all, server.url, body, started) for _ in range(12)]
            deadline = time.monotonic() + 30
            while len(started) < 12:
                assert time.monotonic() < deadline, "the streams did not start"
                time.sleep(0.05)
            for node in cluster.nodes:
                if node.port == port or (node.port == replica_port and not replica):
                    node.kill()
                    node.proc = None
            ended = [future.result(timeout=90) for future in running]
        there = [events for stream_id, events in ended if lost(_stream_slot(stream_id))]
        elsewhere = [events for stream_id, events in ended if not lost(_stream_slot(stream_id))]
        assert there and elsewhere, "streams on both sides of the loss"
        for events in elsewhere:
            assert events[-1].event == "done", events[-1].data.get("detail")
            assert len([e for e in events if e.event == "chunk"]) == 50, "whole"
        for events in there:
            endings = [e for e in events if e.event in ("done", "error")]
            assert len(endings) == 1, endings
            assert endings[0].event == "done" or endings[0].data["error_code"] == "store_unavailable"
        answers = [httpx.post(f"{server.url}/v1/chat/streaming", json={"message": f"new {n} @tokens=3"},
                              headers=AUTH, timeout=30) for n in range(12)]  # fmt: skip
        assert [answer.status_code for answer in answers] == [200] * 12, [a.text[:200] for a in answers]
        if not replica:  # the keys, alternately: the one on the lost node refused, the other served
            asked = [(key, {"message": f"keyed {n} @tokens=2"}) for n in range(6) for key in (THERE, ELSEWHERE)]
            keyed = [httpx.post(f"{server.url}/v1/chat/streaming", json=body, timeout=30,
                                headers={"Authorization": f"Bearer {key}"}) for key, body in asked]  # fmt: skip
            assert [a.status_code for a in keyed[1::2]] == [200] * 6, "a key on another node is served"
            assert {a.status_code for a in keyed[0::2]} == {503}, "a key on the lost node: closed"
        assert all("event: done" in answer.text for answer in answers)
        ready = httpx.get(f"{server.url}/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        if not replica:
            placed = [_stream_slot(answer.headers["x-stream-id"]) for answer in answers]
            assert not any(lost(slot) for slot in placed), "new streams are placed in the slots still served"
            assert f"127.0.0.1:{port}" in ready.json()["checks"]["store"]["detail"], ready.json()
    finally:
        if server is not None:
            server.stop()
        cluster.stop()
