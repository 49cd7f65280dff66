"""Fallback models: when a model's servers fail before the first token, or the input is too long
for it, another model answers, and the answer names it (wait replies, the native `done`, the
Responses object, logs, metrics)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from app.config import ConfigError, load_settings
from harness.processes import ChatWaitServer, FakeUpstream
from harness.upstream_servers import SwitchServer

from ..conftest import FAKE_MODEL, server_env, store_env
from ..sse import content_of, expected_reply, parse

pytestmark = pytest.mark.integration

BACKUP = "other-model"


def _unique(directives: str) -> str:
    return f"{uuid.uuid4().hex} {directives}"


def _listing(path: Path, fake: FakeUpstream) -> Path:
    path.write_text(
        "upstreams:\n"
        f"  - {{name: primary, url: {fake.base_url!r}, models: [{FAKE_MODEL}]}}\n"
        f"  - {{name: backup, url: {fake.base_url!r}, models: [{BACKUP}]}}\n"
        f"fallbacks: {{{FAKE_MODEL}: [{BACKUP}]}}\n"
        f"context_window_fallbacks: {{{FAKE_MODEL}: [{BACKUP}]}}\n"
    )
    return path


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[ChatWaitServer]:
    """The fallback deployment on each stream store (Redis: two workers)."""
    listing = _listing(tmp_path_factory.mktemp("fallbacks") / "upstreams.yaml", fake)
    env = server_env("", UPSTREAMS_FILE=str(listing), UPSTREAM_RETRIES="1", **store_env(request, request.param))
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _wait(server: ChatWaitServer, message: str, **body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/wait", json={"message": message, **body}, timeout=30)


def test_a_model_whose_servers_fail_is_answered_by_its_fallback(server, fake) -> None:
    message = _unique("@tokens=5 @fault=503 @only=fake-model")
    reply = _wait(server, message)
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == BACKUP and reply.json()["content"] == expected_reply(5)
    tried = [(o["model"], o["how"]) for o in fake.outcomes_for(message)]
    assert tried == [(FAKE_MODEL, "http_503"), (FAKE_MODEL, "http_503"), (BACKUP, "completed")]
    fallen = [r for r in server.log_records() if r.get("event") == "upstream_fallback"]
    assert fallen[-1]["model"] == FAKE_MODEL and fallen[-1]["fallback"] == BACKUP
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'chatwait_upstream_fallbacks_total{error_code="upstream_unavailable"}' in metrics


def test_a_streamed_answer_names_its_fallback(server, fake) -> None:
    message = _unique("@tokens=4 @fault=429 @retry_after=0 @only=fake-model")
    response = httpx.post(f"{server.url}/v1/chat/streaming", json={"message": message}, timeout=30)
    events, _ = parse(response.content)
    assert events[-1].event == "done" and events[-1].data["model"] == BACKUP
    assert content_of(events) == expected_reply(4)


def test_every_streamed_chunk_names_the_model_that_answered(server, request) -> None:
    """The SDK takes the model from the first chunk: every chunk of a fallback's answer (its
    first, the usage chunk) names the fallback, as the same answer not streamed does; a resume
    from the start gives the same bytes."""
    message = _unique("@tokens=4 @fault=503 @only=fake-model")
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}], "stream": True}
    body["stream_options"] = {"include_usage": True}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    events, _ = parse(answer.content)
    chunks = [event.data for event in events if isinstance(event.data, dict)]
    assert len(chunks) == 7 and {chunk["model"] for chunk in chunks} == {BACKUP}, chunks
    stream_id = answer.headers["X-Stream-Id"]
    again = httpx.get(f"{server.url}/v1/chat/completions/{stream_id}/stream", timeout=30)
    assert again.content == answer.content, "a replay (from Redis: another worker's) says the same"
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    request.addfinalizer(sdk.close)
    messages = [{"role": "user", "content": _unique("@tokens=3 @fault=500 @only=fake-model")}]
    with sdk.chat.completions.stream(model=FAKE_MODEL, messages=messages) as stream:
        final = stream.get_final_completion()
    assert final.model == BACKUP and final.choices[0].message.content == expected_reply(3)
    waited = sdk.chat.completions.create(model=FAKE_MODEL, messages=messages)
    assert waited.model == final.model


def test_a_resume_on_another_worker_before_the_answer_begins_names_the_fallback(fake, tmp_path, request) -> None:
    """Followed through Redis before its priming chunk exists (the primary is silent for its
    10 s attempt; the answer's head goes out at 5 s, HOLD_SECONDS, with no chunk yet), the stream
    still names the model that answered, byte for byte, on every worker."""
    listing = _listing(tmp_path / "upstreams.yaml", fake)
    env = server_env("", UPSTREAMS_FILE=str(listing), TIMEOUT_SECONDS="30", IDLE_TIMEOUT_SECONDS="30")
    running = ChatWaitServer({**env, **store_env(request, "redis")})
    request.addfinalizer(running.stop)
    message = _unique("@tokens=4 @fault=late@20000 @only=fake-model")
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}], "stream": True}
    url = f"{running.url}/v1/chat/completions"
    with httpx.Client(timeout=30) as http, http.stream("POST", url, json=body) as answer:
        again = f"{url}/{answer.headers['X-Stream-Id']}/stream"
        with ThreadPoolExecutor(12) as pool:  # each its own connection: some reach the other worker
            resumed = list(pool.map(lambda _: httpx.get(again, timeout=30), range(12)))
        original = answer.read()
    events = {again.content.replace(b": keepalive\n", b"") for again in resumed}  # as many as it waited
    assert events == {original.replace(b": keepalive\n", b"")}
    parsed, _ = parse(original)
    assert {event.data["model"] for event in parsed if isinstance(event.data, dict)} == {BACKUP}
    served = [r for r in running.log_records() if r.get("event") == "request_received" and "/stream" in r["path"]]
    assert len({r["pid"] for r in served}) == 2, "followed on both workers"


def test_a_messages_stream_starts_with_the_model_that_answered(server) -> None:
    message = _unique("@tokens=3 @fault=503 @only=fake-model")
    body = {"model": FAKE_MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": message}], "stream": True}
    answer = httpx.post(f"{server.url}/v1/messages", json=body, timeout=30)
    events, _ = parse(answer.content)
    assert events[0].event == "message_start" and events[0].data["message"]["model"] == BACKUP


def test_a_stream_that_fails_everywhere_ends_once_naming_the_model_asked(server) -> None:
    message = _unique("@tokens=3 @fault=503")
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}], "stream": True}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "upstream_unavailable"
    waited = httpx.post(f"{server.url}/v1/chat/streaming", json={"message": message}, timeout=30)
    events = [event for event in parse(waited.content)[0] if event.event != ":comment"]  # keepalives while it retries
    assert [event.event for event in events] == ["stream", "error"] and events[0].data["model"] == FAKE_MODEL


def test_a_silent_model_gives_way_within_the_deadline(server, fake) -> None:
    """TIMEOUT_SECONDS is shared: the silent model gets its part, the fallback the rest."""
    message = _unique("@tokens=3 @fault=stall@0 @only=fake-model")
    reply = _wait(server, message)
    assert reply.status_code == 200 and reply.json()["model"] == BACKUP


def test_an_input_too_long_goes_to_the_wider_model_once(server, fake) -> None:
    message = _unique("@tokens=3 @fault=context @only=fake-model")
    reply = _wait(server, message)
    assert reply.status_code == 200 and reply.json()["model"] == BACKUP
    assert [o["how"] for o in fake.outcomes_for(message)] == ["http_400_context", "completed"], "never resent"


def test_a_content_refusal_is_not_given_to_another_model(server, fake) -> None:
    message = _unique("@fault=filter @only=fake-model")
    reply = _wait(server, message)
    assert reply.status_code == 400 and reply.json()["error_code"] == "content_policy_violation"
    assert len(fake.outcomes_for(message)) == 1


def test_the_request_chooses_its_own_fallbacks(server, fake, request) -> None:
    message = _unique("@tokens=3 @fault=503 @only=fake-model")
    refused = _wait(server, message, fallbacks=[])
    assert refused.status_code == 503, "an empty list: no fallback"
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    request.addfinalizer(sdk.close)
    completion = sdk.chat.completions.create(
        model=FAKE_MODEL,
        messages=[{"role": "user", "content": _unique("@tokens=3 @fault=503 @only=fake-model")}],
        extra_body={"fallbacks": [BACKUP]},
    )
    assert completion.model == BACKUP and completion.choices[0].message.content == expected_reply(3)
    unknown = _wait(server, message, fallbacks=["gpt-unknown"])
    assert unknown.status_code == 400 and "fallbacks" in unknown.json()["fields"]


def test_the_responses_object_names_the_fallback(server, request) -> None:
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    request.addfinalizer(sdk.close)
    response = sdk.responses.create(model=FAKE_MODEL, input=_unique("@tokens=3 @fault=500 @only=fake-model"))
    assert response.status == "completed" and response.model == BACKUP
    assert sdk.responses.retrieve(response.id).model == BACKUP


def test_a_fallback_no_server_serves_is_refused_at_start(tmp_path: Path, fake) -> None:
    listing = tmp_path / "upstreams.yaml"
    listing.write_text(f"upstreams:\n  - {{url: {fake.base_url!r}, models: [a]}}\nfallbacks: {{a: [b]}}\n")
    with pytest.raises(ConfigError, match="names 'b' as a fallback"):
        load_settings(environ={"UPSTREAMS_FILE": str(listing)})
    listing.write_text(f"upstreams:\n  - {{url: {fake.base_url!r}}}\nfallbacks: {{a: b}}\n")
    with pytest.raises(ConfigError, match="must map a model to a list"):
        load_settings(environ={"UPSTREAMS_FILE": str(listing)})


def test_a_flapping_primary_costs_one_attempt_per_rest_and_is_used_again(fake, tmp_path: Path) -> None:
    """A lone server whose model has a fallback rests once UPSTREAM_BREAKER_FAILURES requests in
    a row failed on it (each with its retries: one request's evidence): requests go to the
    fallback at once, one probe per rest tries it, and it answers again."""
    primary = SwitchServer("status:503")
    try:
        listing = tmp_path / "upstreams.yaml"
        listing.write_text(
            "upstreams:\n"
            f"  - {{name: primary, url: {primary.base_url!r}, models: [{FAKE_MODEL}]}}\n"
            f"  - {{name: backup, url: {fake.base_url!r}, models: [{BACKUP}]}}\n"
            f"fallbacks: {{{FAKE_MODEL}: [{BACKUP}]}}\n"
        )
        env = server_env("", UPSTREAMS_FILE=str(listing), UPSTREAM_BREAKER_FAILURES="3", UPSTREAM_REST_SECONDS="1")
        running = ChatWaitServer({**env, "WEB_CONCURRENCY": "1", "READY_CACHE_SECONDS": "0"})
        try:
            answered = [_wait(running, _unique("@tokens=2")).json()["model"] for _ in range(15)]
            assert answered == [BACKUP] * 15, "served from the fallback during the outage"
            assert primary.answered <= 3 * 3 + 1, "the breaker: 3 requests of 3 attempts, then one probe per rest"
            ready = httpx.get(f"{running.url}/ready", timeout=10)
            assert ready.status_code == 200, "the fallback covers: a load balancer keeps the instance"
            route = ready.json()["routes"][0]
            assert route == {
                "model": FAKE_MODEL,
                "state": "degraded",
                "servers": ["backup"],
                "fallback": BACKUP,
                "detail": f"No server of {FAKE_MODEL} answers: its fallback {BACKUP} answers its requests.",
            }
            assert (
                ready.json()["checks"]["upstream"]["detail"]
                == f"Ready, degraded ({FAKE_MODEL}: degraded): see `routes`."
            )
            primary.target_port, primary.mode = fake.port, "pass"
            deadline = time.monotonic() + 10
            while _wait(running, _unique("@tokens=2")).json()["model"] != FAKE_MODEL:
                assert time.monotonic() < deadline, "the primary is probed and used again when back"
                time.sleep(0.2)
            assert [_wait(running, _unique("@tokens=2")).json()["model"] for _ in range(3)] == [FAKE_MODEL] * 3
            healed = httpx.get(f"{running.url}/ready", timeout=10).json()
            assert [route["state"] for route in healed["routes"]] == ["serving", "serving"]
        finally:
            running.stop()
    finally:
        primary.close()


def test_a_reply_cut_when_its_model_has_no_other_server_is_continued_by_the_fallback(fake, tmp_path: Path) -> None:
    """The primary rests after the cut (UPSTREAM_BREAKER_FAILURES=1): the fallback model goes on."""
    listing = _listing(tmp_path / "upstreams.yaml", fake)
    env = server_env("", UPSTREAMS_FILE=str(listing), UPSTREAM_RESCUES="2", UPSTREAM_BREAKER_FAILURES="1")
    running = ChatWaitServer(env)
    try:
        message = _unique("@tokens=10 @fault=reset@4 @fail_times=1")
        response = httpx.post(f"{running.url}/v1/chat/streaming", json={"message": message}, timeout=30)
        events, _ = parse(response.content)
        assert events[-1].event == "done" and content_of(events) == expected_reply(10)
        assert events[-1].data["model"] == BACKUP, "the answer names the model that finished it"
        tried = [(o["model"], o.get("continued_from")) for o in fake.outcomes_for(message)]
        assert tried == [(FAKE_MODEL, None), (BACKUP, 2)]
    finally:
        running.stop()
