"""Every family's views and the service, in this process: each endpoint of the app gets a real
exchange through Flask's test client, its upstream mocked with respx (the integration tests run
the same under gunicorn). A test checks that no endpoint is left without one."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import flask
import httpx
import pytest
import respx

from ..conftest import FAKE_MODEL as MODEL
from ..conftest import UNIT_UPSTREAM
from ..sse import Event, content_of, parse, upstream_reply

Exchange = Callable[[Any], None]
SCENARIOS: dict[str, Exchange] = {}


def scenario(*endpoints: str) -> Callable[[Exchange], Exchange]:
    """Register `exchange` as the one that reaches `endpoints` (checked when it runs)."""

    def register(exchange: Exchange) -> Exchange:
        for endpoint in endpoints:
            SCENARIOS[endpoint] = exchange
        return exchange

    return register


@pytest.fixture
def reached(app) -> Iterator[set[str]]:
    """The endpoints the app served during a test."""
    served: set[str] = set()

    def record(sender: flask.Flask, **_: Any) -> None:
        served.add(flask.request.endpoint or "")

    flask.request_started.connect(record, app)
    yield served
    flask.request_started.disconnect(record, app)


@pytest.fixture
def upstream() -> Iterator[Any]:
    """The upstream answers every chat completion with "Hello there." and lists its models."""
    with respx.mock(using="httpx", assert_all_called=False) as router:
        router.post(f"{UNIT_UPSTREAM}/chat/completions").mock(
            side_effect=lambda request: httpx.Response(200, content=upstream_reply("Hello", " there."))
        )
        router.get(f"{UNIT_UPSTREAM}/models").mock(return_value=httpx.Response(200, json={"data": []}))
        yield router


def _events(response: Any) -> list[Event]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/event-stream"
    return [e for e in parse(response.get_data())[0] if e.event != ":comment"]


@scenario("chat.wait", "chat.start_stream", "chat.resume_stream", "chat.stop_stream")
def native(client: Any) -> None:
    assert client.post("/v1/chat/wait", json={"message": "hi"}).get_json()["content"] == "Hello there."
    started = client.post("/v1/chat/streaming", json={"message": "hi"})
    events = _events(started)
    assert [e.event for e in events][-1] == "done" and content_of(events) == "Hello there."
    chunks = len([e for e in events if e.event == "chunk"])
    assert events[-1].data["usage"]["delivered_tokens"] == chunks and "replayed_tokens" not in events[-1].data["usage"]
    stream_id = started.headers["X-Stream-Id"]
    assert _events(client.get(f"/v1/chat/streaming/{stream_id}")) == events, "a replay is what the client saw"
    after = client.get(f"/v1/chat/streaming/{stream_id}", headers={"Last-Event-ID": str(events[-2].id)})
    assert _events(after) == events[-1:]
    stopped = client.delete(f"/v1/chat/streaming/{stream_id}")
    assert stopped.get_json()["status"] == "already_finished"


@scenario("completions.create", "completions.resume", "completions.stop", "completions.delete")
def chat_completions(client: Any) -> None:
    whole = client.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert whole.get_json()["choices"][0]["message"]["content"] == "Hello there."
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    streamed = client.post("/v1/chat/completions", json=body)
    assert streamed.status_code == 200 and streamed.get_data().endswith(b"data: [DONE]\n\n")
    completion_id = streamed.headers["X-Stream-Id"]
    again = client.get(f"/v1/chat/completions/{completion_id}/stream")
    assert again.status_code == 200 and again.get_data() == streamed.get_data(), "a replay is byte-equal"
    assert client.delete(f"/v1/chat/completions/{completion_id}/stream").status_code == 200
    deleted = client.delete(f"/v1/chat/completions/{completion_id}")
    assert deleted.get_json()["deleted"] is True
    assert client.get(f"/v1/chat/completions/{completion_id}/stream").status_code == 404


@scenario("completions.list_models", "completions.get_model")
def models(client: Any) -> None:
    listed = client.get("/v1/models").get_json()
    assert listed["object"] == "list" and MODEL in [m["id"] for m in listed["data"]]
    assert client.get(f"/v1/models/{MODEL}").get_json()["id"] == MODEL
    assert client.get("/v1/models/no-such-model").status_code == 404


@scenario(
    "responses.create",
    "responses.retrieve",
    "responses.input_items",
    "responses.cancel",
    "responses.delete",
    "responses.input_tokens",
    "responses.connect",
    "responses.compact",
)
def responses(client: Any) -> None:
    created = client.post("/v1/responses", json={"model": MODEL, "input": "hi"}).get_json()
    assert created["status"] == "completed" and created["output"][0]["content"][0]["text"] == "Hello there."
    response_id = created["id"]
    assert client.get(f"/v1/responses/{response_id}").get_json()["output"] == created["output"]
    items = client.get(f"/v1/responses/{response_id}/input_items").get_json()
    assert [item["content"][0]["text"] for item in items["data"]] == ["hi"]
    cancelled = client.post(f"/v1/responses/{response_id}/cancel").get_json()
    assert cancelled["status"] == "completed" and cancelled["output"] == created["output"], "it had ended"
    assert client.delete(f"/v1/responses/{response_id}").get_json()["deleted"] is True
    assert client.get(f"/v1/responses/{response_id}").status_code == 404
    counted = client.post("/v1/responses/input_tokens", json={"model": MODEL, "input": "hi"}).get_json()
    assert counted["object"] == "response.input_tokens" and counted["input_tokens"] > 0
    compacted = client.post("/v1/responses/compact", json={"model": MODEL, "input": "hi"}).get_json()
    assert compacted["object"] == "response.compaction" and compacted["output"][-1]["type"] == "compaction"
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    refused = client.get("/v1/responses", headers={**upgrade, "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert refused.status_code == 405, "no connection to take in this process (tests/integration take sockets)"
    allowed = {method.strip() for method in client.options("/v1/responses").headers["Allow"].split(",")}
    assert allowed == {"POST", "OPTIONS"}, "Allow is for plain requests: GET here is only an upgrade"


@scenario(
    "conversations.create",
    "conversations.retrieve",
    "conversations.update",
    "conversations.delete",
    "conversations.list_items",
    "conversations.add_items",
    "conversations.retrieve_item",
    "conversations.delete_item",
)
def conversations(client: Any) -> None:
    made = client.post("/v1/conversations", json={"metadata": {"topic": "a"}}).get_json()
    path = f"/v1/conversations/{made['id']}"
    assert client.get(path).get_json()["metadata"] == {"topic": "a"}
    assert client.post(path, json={"metadata": {"topic": "b"}}).get_json()["metadata"] == {"topic": "b"}
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}
    added = client.post(f"{path}/items", json={"items": [item]}).get_json()["data"][0]
    assert client.get(f"{path}/items/{added['id']}").get_json()["content"] == item["content"]
    assert [i["id"] for i in client.get(f"{path}/items").get_json()["data"]] == [added["id"]]
    assert client.delete(f"{path}/items/{added['id']}").status_code == 200
    assert client.get(f"{path}/items").get_json()["data"] == []
    assert client.delete(path).get_json()["deleted"] is True
    assert client.get(path).status_code == 404


@scenario("messages.create", "messages.tokens", "messages.resume", "messages.stop")
def messages(client: Any) -> None:
    body = {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    whole = client.post("/v1/messages", json=body).get_json()
    assert whole["type"] == "message" and whole["content"] == [{"type": "text", "text": "Hello there."}]
    streamed = client.post("/v1/messages", json={**body, "stream": True})
    events = _events(streamed)
    assert events[0].event == "message_start" and events[-1].event == "message_stop"
    message_id = streamed.headers["X-Stream-Id"]
    again = client.get(f"/v1/messages/streams/{message_id}")
    assert again.status_code == 200 and again.get_data() == streamed.get_data(), "a replay is byte-equal"
    assert client.delete(f"/v1/messages/streams/{message_id}").status_code == 200
    counted = client.post("/v1/messages/count_tokens", json={k: body[k] for k in ("model", "messages")})
    assert counted.get_json()["input_tokens"] > 0


@scenario(
    "health.health",
    "health.ready",
    "metrics.metrics",
    "spend.spend",
    "contract.contract",
    "page.index",
    "static",
    "page.admin",
)
def service(client: Any) -> None:
    assert client.get("/health").get_json()["status"] == "healthy"
    hello = client.head("/api/hello")  # Claude Code's preconnect
    assert hello.status_code == 200 and hello.get_data() == b""
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.get_data(as_text=True)
    assert b"chatwait_http_requests_total" in client.get("/metrics").get_data()
    spend = client.get("/v1/spend")  # no client keys: nothing is counted per key
    assert spend.get_json() == {"object": "spend", "key": None, "budgets": {}}
    assert client.get("/openapi.yaml").get_data().startswith(b"openapi:")
    with client.get("/") as page:
        assert page.status_code == 200 and b"<html" in page.get_data()
    with client.get("/admin") as admin_page:
        assert admin_page.status_code == 200 and b"/static/admin.js" in admin_page.get_data()
        assert "default-src 'none'" in admin_page.headers["Content-Security-Policy"]
    with client.get("/static/chat.js") as script:
        assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert json.loads(client.get("/v1/nowhere").get_data())["error"]["code"] == "not_found"


@scenario(
    "admin.create", "admin.listed", "admin.shown", "admin.change", "admin.rotate", "admin.revoke",
    "admin.end_user", "admin.end_user_defaults", "admin.spend", "admin.live_streams", "admin.stop_stream",
    "admin.clear_cache",
)  # fmt: skip
def admin(client: Any) -> None:
    """Without ADMIN_API_KEY the admin API is off: 404 saying how to turn it on (its exchanges with
    a key: test_admin_keys, test_admin_streams, test_response_cache)."""
    calls = [("post", "/v1/admin/keys"), ("get", "/v1/admin/keys"), ("get", "/v1/admin/keys/k"),
             ("patch", "/v1/admin/keys/k"), ("post", "/v1/admin/keys/k/rotate"), ("delete", "/v1/admin/keys/k"),
             ("put", "/v1/admin/keys/k/users/u"), ("delete", "/v1/admin/keys/k/users/u"),
             ("get", "/v1/admin/spend"), ("get", "/v1/admin/streams"), ("delete", "/v1/admin/streams/s"),
             ("delete", "/v1/admin/cache")]  # fmt: skip
    for method, path in calls:
        answer = getattr(client, method)(path, json={})
        assert answer.status_code == 404 and "ADMIN_API_KEY" in answer.get_json()["detail"], (method, path)


# The tests, after every scenario has registered.


def test_every_endpoint_has_an_exchange_here(app) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - SCENARIOS.keys() == set(), "an endpoint without a scenario in this file"


@pytest.mark.parametrize("name", sorted({exchange.__name__ for exchange in SCENARIOS.values()}))
def test_an_exchange(name, client, upstream, reached) -> None:
    exchange = next(e for e in SCENARIOS.values() if e.__name__ == name)
    exchange(client)
    expected = {endpoint for endpoint, e in SCENARIOS.items() if e is exchange}
    assert expected <= reached, f"{name} never reached {expected - reached}"
