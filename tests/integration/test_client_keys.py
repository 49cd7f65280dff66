"""Client keys (CHATWAIT_API_KEYS): every API endpoint asks for one, in its family's error shape;
a stream is resumed or stopped only with the key that started it (Redis: across workers); the
keys never reach the logs."""

from __future__ import annotations

import httpx
import openai
import pytest

from harness.processes import ChatWaitServer

from ..conformance import conform
from ..conftest import FAKE_MODEL, server_env, store_env
from ..sse import parse

pytestmark = pytest.mark.integration

KEY_A = "chatwait-key-a-0123456789abcdef"
KEY_B = "ChatWaitKeyB~fedcba9876543210"
KEY_C = "key-from-the-file-000111222333"


@pytest.fixture(scope="module", params=["memory", "redis"])
def keyed(request, fake, tmp_path_factory) -> ChatWaitServer:
    """A server with two keys in CHATWAIT_API_KEYS and one in CHATWAIT_API_KEYS_FILE."""
    key_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    key_file.write_text(f"# one key per line\n\n{KEY_C}\n", encoding="utf-8")
    env = server_env(
        fake.base_url,
        CHATWAIT_API_KEYS=f"{KEY_A}, {KEY_B}",
        CHATWAIT_API_KEYS_FILE=str(key_file),
        **store_env(request, request.param),
    )
    running = ChatWaitServer(env)
    yield running
    running.stop()


def as_client(server: ChatWaitServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, timeout=30, headers=headers)


def completion(text: str, stream: bool = False) -> dict:
    return {"model": FAKE_MODEL, "messages": [{"role": "user", "content": text}], "stream": stream}


def test_the_page_probes_and_contract_stay_open(keyed) -> None:
    with as_client(keyed, None) as anyone:
        assert anyone.get("/health").status_code == 200
        ready = anyone.get("/ready").json()
        assert ready["client_keys"] is True
        conform("Ready", ready)
        assert anyone.get("/openapi.yaml").status_code == 200
        assert anyone.get("/").status_code == 200 and anyone.get("/static/chat.js").status_code == 200


@pytest.mark.parametrize("key", [None, "not-a-key-of-this-service", f"{KEY_A}x"])
def test_every_api_endpoint_refuses_a_missing_or_wrong_key_in_its_shape(keyed, key, request) -> None:
    with as_client(keyed, key) as client:
        for path in ("/v1/chat/wait", "/chat/wait", "/v1/chat/streaming", "/chat/streaming"):
            refused = client.post(path, json={"message": "@tokens=1"})
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            assert refused.json()["error_code"] == "invalid_api_key"
            conform("Error", refused.json())
        for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/embeddings")):
            refused = client.request(method, path, json=completion("@tokens=1"))
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
            conform("OpenAIError", refused.json())
        assert client.options("/v1/chat/completions").status_code == 200, "a CORS preflight carries no key"
    sdk = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=key or "missing", max_retries=0)
    request.addfinalizer(sdk.close)
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()


@pytest.mark.parametrize("key", [KEY_A, KEY_B, KEY_C])
def test_each_key_opens_both_apis(keyed, key, request) -> None:
    with as_client(keyed, key) as client:
        assert client.post("/v1/chat/wait", json={"message": "@tokens=2"}).status_code == 200
    sdk = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=key, max_retries=0)
    request.addfinalizer(sdk.close)
    reply = sdk.chat.completions.create(**completion("@tokens=2"))
    assert reply.choices[0].message.content == "tok0 tok1 "


@pytest.mark.parametrize(
    "start,resume,stop",
    [
        ("/v1/chat/streaming", "/v1/chat/streaming/{id}", "/v1/chat/streaming/{id}"),
        ("/v1/chat/completions", "/v1/chat/completions/{id}/stream", "/v1/chat/completions/{id}/stream"),
    ],
)
def test_only_the_key_that_started_a_stream_resumes_or_stops_it(keyed, start, resume, stop) -> None:
    long_reply = "@tokens=200 @delay_ms=20"
    body = {"message": long_reply} if "streaming" in start else completion(long_reply, stream=True)
    with as_client(keyed, KEY_A) as owner, as_client(keyed, KEY_B) as other, as_client(keyed, None) as anyone:
        with owner.stream("POST", start, json=body) as started:
            stream_id = started.headers["x-stream-id"]
            for path, method in ((resume, "GET"), (stop, "DELETE")):
                url = path.format(id=stream_id)
                assert other.request(method, url).status_code == 404, "another key's stream does not exist for it"
                assert anyone.request(method, url).status_code == 401
            assert owner.delete(stop.format(id=stream_id)).json()["status"] == "cancelled"
        replay = owner.get(resume.format(id=stream_id))
        assert replay.status_code == 200 and parse(replay.content)[0]


def test_keys_never_reach_the_logs(keyed) -> None:
    with as_client(keyed, KEY_A) as client:
        client.get(f"/v1/models/{KEY_A}")  # a key in a path is logged with the path: redacted
        client.get(f"/v1/models/{KEY_C}", headers={"X-Correlation-Id": KEY_B})
        client.post("/v1/chat/wait", json={"message": "@tokens=1"})
    text = keyed.log_text()
    assert "/v1/models/[REDACTED]" in text
    for key in (KEY_A, KEY_B, KEY_C):
        assert key not in text and key[:20] not in text


def test_only_the_key_that_made_a_response_reads_cancels_chains_or_deletes_it(keyed) -> None:
    with as_client(keyed, KEY_A) as owner, as_client(keyed, KEY_B) as other:
        body = {"model": FAKE_MODEL, "input": "@tokens=200 @delay_ms=20", "background": True}
        response_id = owner.post("/v1/responses", json=body).json()["id"]
        for method, path in (("GET", ""), ("GET", "?stream=true"), ("POST", "/cancel"), ("DELETE", "")):
            refused = other.request(method, f"/v1/responses/{response_id}{path}")
            assert refused.status_code == 404 and refused.json()["error"]["code"] == "response_not_found"
        chained = other.post("/v1/responses", json={"input": "more", "previous_response_id": response_id})
        assert chained.status_code == 404, "another key cannot continue it either"
        assert owner.post(f"/v1/responses/{response_id}/cancel").json()["status"] == "cancelled"
