"""Conversations in Redis through its failures: on a Cluster (one key's conversations share a
slot, so every script runs there), and on a server that is paused, killed and restarted empty,
or out of memory. Each failure is a 503 store_unavailable in OpenAI's shape (retryable) that
comes within the command timeout, never a hang or a 500; what Redis lost is a 404 after."""

from __future__ import annotations

import openai
import pytest

from harness.processes import ChatWaitServer
from harness.redis_servers import Cluster, Standalone

from ..conftest import FAKE_MODEL, server_env

pytestmark = pytest.mark.integration


def _sdk(server: ChatWaitServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30)


@pytest.fixture(params=["standalone", "cluster"])
def on_redis(request, fake):
    topology = Standalone() if request.param == "standalone" else Cluster()
    server = ChatWaitServer(server_env(fake.base_url, STREAM_STORE="redis", WEB_CONCURRENCY="2", **topology.env))
    yield topology, server
    server.stop()
    topology.stop()


def test_a_conversation_round_trip_on_redis(on_redis) -> None:
    _, server = on_redis
    with _sdk(server) as sdk:
        conversation = sdk.conversations.create(items=[{"role": "user", "content": "I am Ada."}])
        added = sdk.conversations.items.create(conversation.id, items=[{"role": "user", "content": "Hi."}])
        response = sdk.responses.create(model=FAKE_MODEL, input="@tokens=2", conversation=conversation.id)
        assert response.status == "completed"
        sdk.conversations.items.delete(added.data[0].id, conversation_id=conversation.id)
        items = sdk.conversations.items.list(conversation.id, order="asc").data
        assert [item.role for item in items] == ["user", "user", "assistant"]
        assert sdk.conversations.delete(conversation.id).deleted
        with pytest.raises(openai.NotFoundError):
            sdk.conversations.retrieve(conversation.id)


def _unavailable(call) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        call()
    assert refused.value.status_code == 503 and refused.value.body["code"] == "store_unavailable"
    assert refused.value.response.headers.get("retry-after"), "retryable, and it says when"


def test_redis_paused_killed_or_full_is_a_503_then_what_it_lost_is_a_404(fake) -> None:
    topology = Standalone()
    server = ChatWaitServer(server_env(fake.base_url, STREAM_STORE="redis", WEB_CONCURRENCY="1", **topology.env))
    try:
        with _sdk(server) as sdk:
            conversation = sdk.conversations.create(items=[{"role": "user", "content": "kept"}])
            topology.server.pause()
            try:
                _unavailable(lambda: sdk.conversations.items.list(conversation.id))
            finally:
                topology.server.resume()
            assert len(sdk.conversations.items.list(conversation.id).data) == 1, "back once Redis answers"
            redis = topology.server.client()
            redis.config_set("maxmemory", max(1, int(redis.info("memory")["used_memory"]) // 2))
            try:
                _unavailable(
                    lambda: sdk.conversations.items.create(conversation.id, items=[{"role": "user", "content": "x"}])
                )
                _unavailable(lambda: sdk.conversations.create())
            finally:
                redis.config_set("maxmemory", 0)
            assert len(sdk.conversations.items.list(conversation.id).data) == 1, (
                "a refused write left nothing half done"
            )
            topology.server.kill()
            _unavailable(lambda: sdk.conversations.retrieve(conversation.id))
            topology.server.start()
            with pytest.raises(openai.NotFoundError) as gone:
                sdk.conversations.retrieve(conversation.id)
            assert gone.value.body["code"] == "conversation_not_found"
            assert sdk.conversations.create().id.startswith("conv_"), "and new ones are kept again"
    finally:
        server.stop()
        topology.stop()
