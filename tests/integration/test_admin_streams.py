"""The live streams in the admin API (GET and DELETE /v1/admin/streams): on one worker's memory
and across two instances x two workers sharing Redis, a stream is listed with its key's name,
model, path and progress wherever it runs, and an admin stops it from any instance: its client
gets the cancelled ending, and the list no longer holds it. One audit line per stop."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, admin_instances, server_env
from ..sse import iter_events

pytestmark = pytest.mark.integration

ADMIN = "admin-streams-key-0123456789abcdef"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def memory(fake: FakeUpstream, tmp_path_factory) -> Iterator[list[ChatWaitServer]]:
    env = server_env(fake.base_url, ADMIN_API_KEY=ADMIN, DATA_DIR=str(tmp_path_factory.mktemp("data")))
    server = ChatWaitServer(env)
    yield [server]
    server.stop()


@pytest.fixture(scope="module")
def shared(fake: FakeUpstream, redis_server) -> Iterator[list[ChatWaitServer]]:
    yield from admin_instances(fake, redis_server, ADMIN)


def _listed(url: str, **query: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/admin/streams", params=query, headers=AS_ADMIN, timeout=10)


def _key(servers: list[ChatWaitServer], name: str) -> str:
    """A new key, once every worker of `servers` takes it (each reads the store within a second)."""
    made = httpx.post(f"{servers[0].url}/v1/admin/keys", json={"name": name}, headers=AS_ADMIN, timeout=10)
    assert made.status_code == 201, made.text
    secret, deadline = made.json()["key"], time.monotonic() + 10
    as_key = {"Authorization": f"Bearer {made.json()['key']}"}
    while not all(httpx.get(f"{s.url}/v1/spend", headers=as_key).status_code == 200 for s in servers * 4):
        assert time.monotonic() < deadline, "the new key did not reach every worker"
        time.sleep(0.1)
    return secret


@pytest.mark.parametrize("where", ["memory", "shared"])
def test_a_live_stream_is_listed_wherever_it_runs_and_an_admin_stops_it(where, request, fake) -> None:
    servers = request.getfixturevalue(where)
    started_on, asked_on = servers[0].url, servers[-1].url
    secret = _key(servers, f"streams-{where}")
    message = f"{uuid.uuid4().hex} @tokens=2000 @delay_ms=20"
    headers = {"Authorization": f"Bearer {secret}", "X-ChatWait-User": "alice@example.com"}
    body = {"model": FAKE_MODEL, "stream": True, "messages": [{"role": "user", "content": message}]}
    with httpx.stream("POST", f"{started_on}/v1/chat/completions", json=body, headers=headers, timeout=30) as reply:
        stream_id = reply.headers["x-stream-id"]
        events = iter_events(reply)
        for _ in range(3):
            next(events)
        found = _listed(asked_on)
        assert found.status_code == 200, found.text
        listed = found.json()
        mine = [entry for entry in listed["data"] if entry["id"] == stream_id]
        assert listed["live"] >= 1 and len(mine) == 1, listed
        entry = mine[0]
        assert (entry["key"], entry["model"], entry["api"]) == (f"streams-{where}", FAKE_MODEL, "/v1/chat/completions")
        assert entry["events"] >= 1 and entry["age_seconds"] >= 0 and entry["worker"]
        assert secret not in found.text and "alice" not in found.text
        with httpx.stream("POST", f"{started_on}/v1/chat/streaming", json={"message": message}, headers=headers,
                          timeout=30) as newer:  # fmt: skip
            next(iter_events(newer))
            newest = _listed(asked_on, limit="1").json()
            assert newest["live"] >= 2 and [e["id"] for e in newest["data"]] == [newer.headers["x-stream-id"]]
            assert newest["data"][0]["api"] == "/v1/chat/streaming", newest
        stopped = httpx.delete(f"{asked_on}/v1/admin/streams/{stream_id}", headers=AS_ADMIN, timeout=10)
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "cancelled" and stopped.json()["stream_id"] == stream_id
        rest = [event for event in events if event.event != ":comment"]
    finished = [event.data for event in rest if isinstance(event.data, dict) and event.data.get("choices")]
    assert finished and finished[-1]["choices"][0]["finish_reason"] is not None, "the client got the ending"
    fake.wait_for_outcome(message, "client_closed")
    deadline = time.monotonic() + 5
    while any(entry["id"] == stream_id for entry in _listed(asked_on).json()["data"]):
        assert time.monotonic() < deadline, "a stopped stream is listed no more"
        time.sleep(0.05)
    again = httpx.delete(f"{asked_on}/v1/admin/streams/{stream_id}", headers=AS_ADMIN, timeout=10)
    assert again.status_code == 200 and again.json()["status"] == "already_finished"
    audit = [json.loads(line) for server in servers for line in server.log_text().splitlines() if "stop_stream" in line]
    said = [(line["action"], line["stream_id"], line["result"]) for line in audit]
    assert said == [("stop_stream", stream_id, "cancelled"), ("stop_stream", stream_id, "already_finished")]


def test_what_the_streams_list_refuses(memory) -> None:
    url = memory[0].url
    for limit in ("0", "501", "many"):
        refused = _listed(url, limit=limit)
        assert refused.status_code == 400 and "limit" in refused.json()["fields"], refused.text
    client_key = _key(memory, "not-an-admin")
    as_client = {"Authorization": f"Bearer {client_key}"}
    assert httpx.get(f"{url}/v1/admin/streams", headers=as_client, timeout=10).status_code == 401
    assert httpx.delete(f"{url}/v1/admin/streams/unknown", headers=as_client, timeout=10).status_code == 401
    assert httpx.delete(f"{url}/v1/admin/streams/unknown", headers=AS_ADMIN, timeout=10).status_code == 404
