"""GET /ready: the upstream check (GET /models with the service's credentials, in ChatWait's
words), cached and run once at a time; a failing check named; /metrics on and off."""

from __future__ import annotations

import gevent
import httpx
import pytest

from app import build_app, close_app
from app.config import load_settings
from app.providers.httpapi.models import MAX_LIST_BYTES
from app.service.readiness import Readiness
from app.streaming.store import MemoryStreamStore

from ..conftest import CANARY_KEY, FAKE_MODEL, UNIT_UPSTREAM

MODELS = f"{UNIT_UPSTREAM}/models"


@pytest.mark.parametrize(
    ("answer", "ok", "words"),
    [
        (httpx.Response(200, json={"data": []}), True, "answered HTTP 200"),
        (httpx.Response(404), True, "answered HTTP 404"),  # a server without /models still answers
        (httpx.Response(429), True, "answered HTTP 429"),  # rate limited: reachable, credentials fine
        (
            httpx.Response(401, json={"error": {"message": f"Incorrect API key {CANARY_KEY}"}}),
            False,
            "refused this service's credentials: check OPENAI_API_KEY",
        ),
        (httpx.Response(503, text="upstream body"), False, "temporarily unavailable: check OPENAI_BASE_URL"),
        (httpx.ConnectError("refused"), False, "(set by OPENAI_BASE_URL): Could not connect"),
        (httpx.ConnectTimeout("slow"), False, "did not answer in time. Check OPENAI_BASE_URL"),
    ],
)
def test_the_upstream_check_says_how_get_models_went(client, upstream_mock, answer, ok, words) -> None:
    route = upstream_mock.get(MODELS)
    route.side_effect = answer if isinstance(answer, Exception) else None
    if not isinstance(answer, Exception):
        route.return_value = answer
    response = client.get("/ready")
    body = response.get_json()
    assert response.status_code == (200 if ok else 503)
    assert body["checks"]["upstream"]["ok"] is ok and words in body["checks"]["upstream"]["detail"]
    assert body["failing"] == ([] if ok else ["upstream"])
    assert body["checks"]["store"] == {"ok": True, "detail": "In this worker's memory."}
    assert CANARY_KEY not in response.get_data(as_text=True) and "upstream body" not in response.get_data(as_text=True)
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {CANARY_KEY}"


def test_a_configured_model_the_upstream_does_not_list_is_not_ready_and_named(client, upstream_mock) -> None:
    listed = [{"id": "fake-modle", "owned_by": "system"}, {"id": "other-model", "owned_by": "system"}]
    upstream_mock.get(MODELS).respond(200, json={"object": "list", "data": listed})
    response = client.get("/ready")
    body = response.get_json()
    assert response.status_code == 503 and body["failing"] == ["upstream"]
    assert body["checks"]["upstream"]["detail"] == (
        f"GET /models answered HTTP 200. {FAKE_MODEL!r} is not in the models listed by "
        f"{UNIT_UPSTREAM.split('//')[1].split('/')[0]} (GET /models): check the name."
    )
    assert [(route["model"], route["state"]) for route in body["routes"]] == [(FAKE_MODEL, "unlisted")]


class ListStream(httpx.SyncByteStream):
    """A GET /models body that stalls part-way (ReadTimeout), or runs past MAX_LIST_BYTES."""

    def __init__(self, stall: bool) -> None:
        self.stall = stall
        self.sent = 0

    def __iter__(self):
        yield b'{"object": "list", "data": [{"id": "fake-modle"}]'
        if self.stall:
            raise httpx.ReadTimeout("the server stopped sending")
        for _ in range(MAX_LIST_BYTES // 2**20 + 4):
            self.sent += 1
            yield b" " * 2**20
        yield b"}"


@pytest.mark.parametrize("stall", [True, False], ids=["stalled", "too-long"])
def test_a_list_of_models_that_stalls_or_runs_too_long_judges_no_name(client, upstream_mock, stall) -> None:
    body = ListStream(stall)
    upstream_mock.get(MODELS).mock(return_value=httpx.Response(200, stream=body))
    response = client.get("/ready")
    assert response.status_code == 200, response.get_json()  # the typo'd list is not read whole: not judged
    assert response.get_json()["routes"][0]["state"] == "serving"
    assert body.sent <= MAX_LIST_BYTES // 2**20 + 1, "reading stops past the bound"


def test_the_upstream_check_is_cached(client, upstream_mock) -> None:
    route = upstream_mock.get(MODELS).respond(200, json={"data": []})
    for _ in range(5):
        assert client.get("/ready").status_code == 200
    assert route.call_count == 1


class SlowProvider:
    """A provider whose check takes a while, or raises."""

    check_name = "upstream"

    def __init__(self, fails: bool = False) -> None:
        self.checks = 0
        self.fails = fails

    def check(self) -> tuple[bool, str]:
        self.checks += 1
        gevent.sleep(0.05)
        if self.fails:
            raise RuntimeError("a bug")
        return True, "Fine."


def test_callers_during_a_check_share_it_and_the_result_expires() -> None:
    now = [0.0]
    provider = SlowProvider()
    readiness = Readiness(provider, MemoryStreamStore(10, 60), cache_seconds=5, clock=lambda: now[0])  # type: ignore[arg-type]
    reports = gevent.joinall([gevent.spawn(readiness.report) for _ in range(10)], raise_error=True)
    assert provider.checks == 1 and all(g.value[2] for g in reports)
    now[0] = 4.9
    readiness.report()
    assert provider.checks == 1
    now[0] = 5.0
    readiness.report()
    assert provider.checks == 2


def test_a_check_that_raises_is_a_failed_check_not_a_500() -> None:
    readiness = Readiness(SlowProvider(fails=True), MemoryStreamStore(10, 60), cache_seconds=5)  # type: ignore[arg-type]
    checks, _, ok = readiness.report()
    assert not ok and checks["upstream"] == {"ok": False, "detail": "The check failed unexpectedly (RuntimeError)."}


@pytest.fixture
def no_metrics_app():
    settings = {"OPENAI_BASE_URL": UNIT_UPSTREAM, "OPENAI_MODEL": FAKE_MODEL, "METRICS_ENABLED": "false"}
    application = build_app(load_settings(settings))
    yield application
    close_app(application)


def test_metrics_are_scraped_or_switched_off(client, no_metrics_app) -> None:
    client.get("/health")
    scraped = client.get("/metrics")
    assert scraped.status_code == 200 and scraped.mimetype == "text/plain"
    health = 'chatwait_http_requests_total{method="GET",route="/health",status="200"} 1.0'
    assert health in scraped.get_data(as_text=True)
    off = no_metrics_app.test_client().get("/metrics")
    assert off.status_code == 404 and off.get_json()["error_code"] == "not_found"
    assert "METRICS_ENABLED=false" in off.get_json()["detail"]


OPERATOR = "operator-token-0123456789abcdef"


def test_an_operator_token_guards_metrics_and_the_readiness_details(upstream_mock) -> None:
    """The red team read key names and spend in /metrics and the upstream hosts in /ready: with
    OPERATOR_TOKEN, only its bearer does; probes still get the status (and its code) and /health."""
    upstream_mock.get(f"{UNIT_UPSTREAM}/models").respond(200, json={"data": [{"id": FAKE_MODEL}]})
    settings = {"OPENAI_BASE_URL": UNIT_UPSTREAM, "OPENAI_MODEL": FAKE_MODEL, "OPERATOR_TOKEN": OPERATOR}
    application = build_app(load_settings(settings))
    try:
        client = application.test_client()
        refused = client.get("/metrics")
        assert refused.status_code == 401 and "OPERATOR_TOKEN" in refused.get_json()["detail"]
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {OPERATOR}"}).status_code == 200
        bare = client.get("/ready")
        assert bare.status_code == 200 and bare.get_json() == {"status": "ready", "failing": []}
        whole = client.get("/ready", headers={"Authorization": f"Bearer {OPERATOR}"}).get_json()
        assert whole["status"] == "ready" and "upstream.test" in str(whole) and whole["checks"]["upstream"]["ok"]
        assert client.get("/health").status_code == 200
        assert OPERATOR in load_settings(settings).secrets, "redacted from the logs"
    finally:
        close_app(application)
