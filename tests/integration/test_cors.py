"""CORS_ORIGINS: a browser app on a listed origin may call every API route (preflights answered
before client keys, stream headers exposed, errors readable); any other origin gets nothing, and
with the default (empty) no CORS header is ever sent. Chromium itself: tests/e2e/test_cors_page.py."""

from __future__ import annotations

import httpx
import pytest

from harness.processes import ChatWaitServer

from ..conformance import conform
from ..conftest import FAKE_MODEL, server_env
from ..sse import parse

pytestmark = pytest.mark.integration

APP = "http://app.example:3000"
KEY = "cors-test-key-0123456789abcdef"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


@pytest.fixture(scope="module")
def cors_server(fake) -> ChatWaitServer:
    running = ChatWaitServer(
        server_env(fake.base_url, CORS_ORIGINS=f"{APP},https://other.example", CHATWAIT_API_KEYS=KEY)
    )
    yield running
    running.stop()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/wait",
        "/v1/chat/streaming",
        "/v1/chat/streaming/abc",
        "/v1/chat/completions",
        "/v1/models",
        "/chat/wait",
    ],
)
def test_a_preflight_from_a_listed_origin_is_answered_for_every_api_route(cors_server, path) -> None:
    response = httpx.options(f"{cors_server.url}{path}", headers={"Origin": APP, **PREFLIGHT}, timeout=10)
    assert response.status_code == 204, "answered before the key check: a preflight never carries one"
    assert response.headers["access-control-allow-origin"] == APP
    assert set(response.headers["access-control-allow-methods"].split(", ")) >= {"GET", "POST", "DELETE"}
    assert response.headers["access-control-allow-headers"] == "authorization,content-type"
    assert int(response.headers["access-control-max-age"]) > 0
    assert "Origin" in response.headers["vary"]


def test_a_preflight_from_another_origin_is_refused_with_a_clear_error(cors_server) -> None:
    response = httpx.options(
        f"{cors_server.url}/v1/chat/wait", headers={"Origin": "https://evil.example", **PREFLIGHT}, timeout=10
    )
    assert response.status_code == 403 and "access-control-allow-origin" not in response.headers
    body = response.json()
    conform("Error", body)
    assert body["error_code"] == "origin_not_allowed" and "CORS_ORIGINS" in body["action"]


def test_a_listed_origin_reads_answers_errors_and_stream_headers(cors_server) -> None:
    auth = {"Origin": APP, "Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=cors_server.url, timeout=30, headers=auth) as client:
        started = client.post("/v1/chat/streaming", json={"message": "Hi @tokens=3"})
        assert started.status_code == 200 and started.headers["access-control-allow-origin"] == APP
        exposed = {h.strip().lower() for h in started.headers["access-control-expose-headers"].split(",")}
        assert {"x-stream-id", "x-correlation-id", "x-request-id", "retry-after"} <= exposed
        assert parse(started.content)[0][-1].event == "done"
        completion = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "Hi"}]}
        assert client.post("/v1/chat/completions", json=completion).headers["access-control-allow-origin"] == APP
        refused = client.post("/v1/chat/wait", json={"message": ""})
        assert refused.status_code == 400 and refused.headers["access-control-allow-origin"] == APP
        missing = client.get("/v1/chat/streaming/nope")
        assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == APP
    unkeyed = httpx.post(f"{cors_server.url}/v1/chat/wait", json={"message": "Hi"}, headers={"Origin": APP})
    assert unkeyed.status_code == 401 and unkeyed.headers["access-control-allow-origin"] == APP, "a 401 is readable"


def test_other_origins_get_no_cors_header(cors_server) -> None:
    response = httpx.get(f"{cors_server.url}/v1/models", headers={"Origin": "https://evil.example"}, timeout=10)
    assert "access-control-allow-origin" not in response.headers and "Origin" in response.headers["vary"]


def test_by_default_only_the_same_origin_may_call(server) -> None:
    preflight = httpx.options(f"{server.url}/v1/chat/wait", headers={"Origin": APP, **PREFLIGHT}, timeout=10)
    assert preflight.status_code == 403 and preflight.json()["error_code"] == "origin_not_allowed"
    answer = httpx.post(f"{server.url}/v1/chat/wait", json={"message": "Hi"}, headers={"Origin": APP}, timeout=30)
    assert answer.status_code == 200
    assert not [name for name in answer.headers if name.lower().startswith("access-control-")]
