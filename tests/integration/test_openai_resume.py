"""Resumable completions, with both stream stores (Redis: two workers, so a resume may land on
the other one): the raw resume endpoint, the SDK helper of docs/clients.md through a connection cut
mid-reply, stop, and the boundaries between the two API families."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import openai
import pytest

from harness.proxy import CuttingProxy

from ..conftest import FAKE_MODEL
from ..sse import expected_reply, iter_events, parse

pytestmark = [pytest.mark.integration, pytest.mark.both_stores]  # each test that uses `server`: on both stores

CLIENTS = Path(__file__).resolve().parents[2] / "docs" / "clients.md"


def completion(text: str, **extra) -> dict:
    return {"model": FAKE_MODEL, "messages": [{"role": "user", "content": text}], "stream": True, **extra}


def readme_helper() -> dict:
    """The resuming helper exactly as docs/clients.md shows it, run as a user would paste it."""
    blocks = re.findall(r"```python\n(.*?)```", CLIENTS.read_text(encoding="utf-8"), re.DOTALL)
    source = next(block for block in blocks if "def resumable_stream" in block)
    namespace: dict = {}
    exec(compile(source.split("\nclient = ")[0], "docs/clients.md", "exec"), namespace)  # the helper, not its usage
    return namespace


def texts(chunks) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def test_resume_after_the_last_event_received_gives_exactly_the_rest(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/chat/completions", json=completion("@tokens=30 @delay_ms=20")) as response:
        stream_id = response.headers["x-stream-id"]
        received = []
        for event in iter_events(response):
            received.append(event)
            if event.id == 10:
                break  # the client drops here
    resumed = http.get(f"/v1/chat/completions/{stream_id}/stream", headers={"Last-Event-ID": "10"})
    assert resumed.status_code == 200
    rest, _ = parse(resumed.content)
    events = [e for e in received + rest if e.event != ":comment"]
    assert [e.id for e in events] == [*range(32), 31], "no gap, nothing twice; the finish chunk and [DONE] share 31"
    text = "".join(e.data["choices"][0]["delta"].get("content", "") for e in events[1:-2])
    assert text == expected_reply(30) and events[-1].data == "[DONE]"
    again = http.get(f"/v1/chat/completions/chatcmpl-{stream_id}/stream", params={"starting_after": "29"})
    assert [e.id for e in parse(again.content)[0]] == [30, 31, 31], "the completion id works too"
    assert http.get(f"/v1/chat/completions/{stream_id}/stream", headers={"Last-Event-ID": "31"}).status_code == 204


def test_the_readme_helper_resumes_an_sdk_stream_cut_mid_reply(server, request) -> None:
    proxy = CuttingProxy(server.port)
    try:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=30)
        request.addfinalizer(client.close)
        resumable_stream = readme_helper()["resumable_stream"]
        proxy.cut_next_stream(after_bytes=2500)
        messages = [{"role": "user", "content": "Survive @tokens=60 @delay_ms=20"}]
        usage = {"include_usage": True}
        chunks = list(resumable_stream(client, model=FAKE_MODEL, messages=messages, stream_options=usage))
        assert proxy.cuts == 1, "the connection was cut once, and the helper carried on"
        assert texts(chunks) == expected_reply(60), "the exact text: nothing lost, nothing twice"
        assert len({chunk.id for chunk in chunks}) == 1
        assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-1].usage.completion_tokens == 60
        messages = [{"role": "user", "content": "@tokens=5 @first_ms=300"}]
        head = httpx.post(f"{server.url}/v1/chat/completions", json=completion(messages[0]["content"]))
        head_bytes = len(b"HTTP/1.1 200 OK\r\n") + sum(len(k) + len(v) + 4 for k, v in head.headers.raw) + 2
        proxy.cut_next_stream(after_bytes=head_bytes + 20)  # inside the first chunk: the helper replays it all
        chunks = list(resumable_stream(client, model=FAKE_MODEL, messages=messages))
        assert proxy.cuts == 2 and texts(chunks) == expected_reply(5)
        assert chunks[0].choices[0].delta.role == "assistant", "the first chunk was received once"
    finally:
        proxy.close()


def test_stop_ends_the_stream_with_its_finish_chunk_and_done(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/chat/completions", json=completion("@tokens=500 @delay_ms=20")) as response:
        stream_id = response.headers["x-stream-id"]
        for event in iter_events(response):
            if event.id == 3:
                break
        stopped = http.delete(f"/v1/chat/completions/chatcmpl-{stream_id}/stream")
    assert stopped.status_code == 200
    body = stopped.json()
    assert body["id"] == f"chatcmpl-{stream_id}" and body["object"] == "chat.completion.stream"
    assert body["status"] == "cancelled"
    rest, _ = parse(http.get(f"/v1/chat/completions/{stream_id}/stream", params={"starting_after": "3"}).content)
    assert rest[-2].data["choices"][0]["finish_reason"] == "stop", "OpenAI's clients know no `cancelled`"
    assert rest[-1].data == "[DONE]" and rest[-1].id == body["last_event_id"]
    again = http.delete(f"/v1/chat/completions/{stream_id}/stream").json()
    assert again["status"] == "already_finished"


def test_each_family_resumes_only_its_own_streams(http: httpx.Client) -> None:
    native = http.post("/v1/chat/streaming", json={"message": "@tokens=2"}).headers["x-stream-id"]
    compat = http.post("/v1/chat/completions", json=completion("@tokens=2")).headers["x-stream-id"]
    wrong = http.get(f"/v1/chat/completions/{native}/stream")
    assert wrong.status_code == 404 and "GET /v1/chat/streaming/{id}" in wrong.json()["error"]["message"]
    other = http.get(f"/v1/chat/streaming/{compat}")
    assert other.status_code == 404 and "/v1/chat/completions/{id}/stream" in other.json()["action"]
    unknown = http.get("/v1/chat/completions/chatcmpl-nothing/stream")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "stream_not_found"
    bad = http.get(f"/v1/chat/completions/{compat}/stream", params={"starting_after": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_last_event_id"


def test_the_sdks_delete_stops_and_deletes_a_streamed_completion(server, fake, request) -> None:
    message = f"delete {uuid.uuid4().hex} @tokens=2000 @delay_ms=10"
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    request.addfinalizer(sdk.close)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        with http.stream("POST", "/v1/chat/completions", json=completion(message)) as response:
            stream_id = response.headers["x-stream-id"]
            events = iter_events(response)
            assert [next(events).id for _ in range(3)] == [0, 1, 2]
            deleted = sdk.chat.completions.delete(f"chatcmpl-{stream_id}")
            rest = [e for e in events if e.event != ":comment"]
        assert deleted.deleted is True and deleted.id == f"chatcmpl-{stream_id}"
        assert rest[-1].data == "[DONE]", "the open stream still ends with its finish chunk"
        assert fake.wait_for_outcome(message, "client_closed")["tokens"] < 2000
        gone = http.get(f"/v1/chat/completions/{stream_id}/stream")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "stream_not_found"
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.delete(f"chatcmpl-{stream_id}")
