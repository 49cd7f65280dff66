"""A Redis Cluster found through any node REDIS_URL names: a worker started while the first-named
node is down (a crash, a deploy, a new instance) finds the Cluster through another, serves its
streams and opens its managed keys; a URL naming several servers without a Cluster is refused
at start, naming the setting."""

from __future__ import annotations

import httpx
import pytest

from app.config import ConfigError, load_settings
from harness.processes import ChatWaitServer, FakeUpstream
from harness.redis_servers import Cluster

from ..conftest import server_env

pytestmark = pytest.mark.integration

ADMIN = "admin-cluster-0123456789abcdef"


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
