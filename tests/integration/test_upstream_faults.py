"""Every upstream fault of the fake, in streaming and wait mode: the right error, nothing leaked."""

from __future__ import annotations

import uuid

import httpx
import pytest

from ..conftest import CANARY_KEY, FAKE_MODEL
from ..sse import content_of, expected_reply, parse

pytestmark = pytest.mark.integration


def _unique(directives: str) -> str:
    return f"{uuid.uuid4().hex} {directives}"


def _stream(http: httpx.Client, message: str):
    response = http.post("/v1/chat/streaming", json={"message": message})
    assert response.status_code == 200
    events, _ = parse(response.content)
    terminal = [e for e in events if e.event in ("done", "error")]
    assert len(terminal) == 1 and terminal[0] is events[-1], "exactly one terminal event, last"
    return events, events[-1]


def _no_leak(text: str) -> None:
    assert CANARY_KEY not in text and CANARY_KEY[:12] not in text
    assert "Incorrect API key" not in text and "Rate limit reached" not in text and "exploded" not in text


# (directives, error_code, wait status, retryable, upstream attempts made)
FAULTS = [
    ("@fault=401", "upstream_auth_failed", 502, False, 1),
    ("@fault=429 @retry_after=0", "upstream_rate_limited", 429, True, 3),
    ("@fault=500", "upstream_unavailable", 503, True, 3),
    ("@fault=503", "upstream_unavailable", 503, True, 3),
    ("@fault=reset@0", "upstream_interrupted", 502, True, 3),
    ("@fault=nofinish @tokens=0", "upstream_interrupted", 502, True, 3),
    # A refusal of the request's content is never sent again, and says why in ChatWait's words.
    ("@fault=context", "input_too_long", 400, False, 1),
    ("@fault=filter", "content_policy_violation", 400, False, 1),
]


@pytest.mark.parametrize("directives,code,status,retryable,attempts", FAULTS)
def test_faults_before_the_first_token(http, fake, directives, code, status, retryable, attempts) -> None:
    message = _unique(directives)
    wait = http.post("/v1/chat/wait", json={"message": message})
    assert wait.status_code == status
    body = wait.json()
    assert body["error_code"] == code and body["retryable"] is retryable
    assert body["message"] and body["detail"] and body["action"]
    assert body["correlation_id"] == wait.headers["x-correlation-id"]
    _no_leak(wait.text)
    assert len(fake.outcomes_for(message)) == attempts, "retries happen only for retryable errors"

    _, error = _stream(http, _unique(directives))
    assert error.event == "error"
    assert error.data["error_code"] == code
    assert error.data["retryable"] is retryable
    assert error.data["last_sequence"] == 0 and error.data["content_length"] == 0
    _no_leak(str(error.data))


def test_rate_limit_reports_retry_after(http) -> None:
    response = http.post("/v1/chat/wait", json={"message": _unique("@fault=429 @retry_after=0")})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1


def test_a_transient_failure_is_retried_transparently(http, fake, server) -> None:
    message = _unique("@fault=429 @retry_after=0 @fail_times=1 @tokens=4")
    reply = http.post("/v1/chat/wait", json={"message": message})
    assert reply.status_code == 200
    assert reply.json()["content"] == expected_reply(4)
    assert [o["how"] for o in fake.outcomes_for(message)] == ["http_429", "completed"]
    retries = [r for r in server.log_records() if r.get("event") == "upstream_retry"]
    assert retries and retries[-1]["error_code"] == "upstream_rate_limited"

    message = _unique("@fault=503 @fail_times=2 @tokens=3")
    events, done = _stream(http, message)
    assert done.event == "done" and content_of(events) == expected_reply(3)


MID_STREAM = [
    ("@tokens=10 @fault=reset@4", "upstream_interrupted"),
    ("@tokens=10 @fault=nofinish", "upstream_interrupted"),
    ("@tokens=10 @fault=garbage@5", "upstream_bad_response"),
    ("@tokens=10 @fault=errorchunk@3", "upstream_interrupted"),
    ("@tokens=10 @fault=stall@6", "upstream_timeout"),
]


@pytest.mark.parametrize("directives,code", MID_STREAM)
def test_faults_after_the_first_token_keep_the_partial_reply(http, fake, directives, code) -> None:
    message = _unique(directives)
    events, error = _stream(http, message)
    assert error.event == "error" and error.data["error_code"] == code
    chunks = [e for e in events if e.event == "chunk"]
    assert chunks, "tokens sent before the fault stay delivered"
    assert content_of(events) == expected_reply(len(chunks))
    assert error.data["last_sequence"] == len(chunks)
    assert error.data["content_length"] == len(content_of(events))
    assert len(fake.outcomes_for(message)) == 1, "no retry after the first token"
    _no_leak(str(error.data))

    wait = http.post("/v1/chat/wait", json={"message": _unique(directives)})
    assert wait.json()["error_code"] == code
    _no_leak(wait.text)


def test_first_token_deadline(http) -> None:
    """stall@0: idle read timeouts are retried until TIMEOUT_SECONDS, then upstream_timeout."""
    response = http.post("/v1/chat/wait", json={"message": _unique("@fault=stall@0")})
    assert response.status_code == 504
    assert response.json()["error_code"] == "upstream_timeout"


def test_missing_usage_is_counted(http) -> None:
    _, done = _stream(http, _unique("@tokens=8 @usage=0"))
    assert done.event == "done"
    usage = done.data["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_unreachable_upstream(start_server) -> None:
    server = start_server(OPENAI_BASE_URL="http://127.0.0.1:9/v1", UPSTREAM_RETRIES="1")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/v1/chat/wait", json={"message": "hello"})
        assert response.status_code == 503
        assert response.json()["error_code"] == "upstream_unavailable"
        events, _ = parse(client.post("/v1/chat/streaming", json={"message": "hello"}).content)
        assert events[-1].data["error_code"] == "upstream_unavailable"


def test_total_deadline(start_server) -> None:
    server = start_server(MAX_STREAM_SECONDS="0.5")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        events, _ = parse(client.post("/v1/chat/streaming", json={"message": "@tokens=100 @delay_ms=20"}).content)
        assert events[-1].event == "error"
        assert events[-1].data["error_code"] == "upstream_timeout"
        assert "MAX_STREAM_SECONDS" in events[-1].data["detail"]
        assert content_of(events) == expected_reply(events[-1].data["last_sequence"])


def test_a_refusal_for_content_reaches_openai_clients_with_openais_code(start_server, fake) -> None:
    server = start_server()
    refusals = (("@fault=context", "context_length_exceeded"), ("@fault=filter", "content_policy_violation"))
    for directive, code in refusals:
        message = _unique(directive)
        body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}]}
        answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == code, answer.text
        _no_leak(answer.text)
        assert "maximum context length is 4096" not in answer.text and "content management" not in answer.text
        assert len(fake.outcomes_for(message)) == 1, "not sent again"


def test_a_server_that_takes_no_stream_options_is_asked_again_without_them(start_server, fake) -> None:
    server = start_server()  # its own: the worker then asks without stream_options from then on
    message = _unique("@fault=nostreamoptions @tokens=3")
    answer = httpx.post(f"{server.url}/v1/chat/wait", json={"message": message}, timeout=30)
    assert answer.status_code == 200 and answer.json()["content"] == expected_reply(3)
    assert [o["how"] for o in fake.outcomes_for(message)] == ["http_400_nostreamoptions", "completed"]
