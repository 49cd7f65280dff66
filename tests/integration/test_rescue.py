"""Mid-stream rescue: a reply the upstream cut, ended early, let go silent or garbled after its
first token is continued on a route that works, in the same stream, with nothing lost or twice.

The fake upstream honours a continuation as a deterministic model would (harness/fake_openai.py):
a prefill goes on after the tokens it holds, a request to go on starts two tokens back, so the
whole answer equals the uninterrupted one only if ChatWait drops the overlap exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from app.providers.httpapi import tokens
from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, gateways_of, server_env
from ..sse import content_of, expected_reply, parse, read_events

pytestmark = pytest.mark.integration


def _unique(directives: str) -> str:
    return f"{uuid.uuid4().hex} {directives}"


@pytest.fixture(scope="module")
def rescuing(fake: FakeUpstream) -> Iterator[ChatWaitServer]:
    """One server with rescues on (the product's default: 2, by `message`)."""
    running = ChatWaitServer(server_env(fake.base_url, UPSTREAM_RESCUES="2"))
    yield running
    running.stop()


@pytest.fixture
def prefilling(fake: FakeUpstream, tmp_path: Path) -> Iterator[ChatWaitServer]:
    """A pool of two servers (both the fake) that continue by prefill; a test's own, as the server
    that cut a reply rests (when every server of a model rests, nothing takes a continuation)."""
    listing = tmp_path / "upstreams.yaml"
    servers = "".join(
        f"  - {{name: {name}, url: {fake.base_url!r}, continuation: prefill}}\n" for name in ("left", "right")
    )
    listing.write_text("upstreams:\n" + servers)
    env = server_env("", UPSTREAMS_FILE=str(listing), UPSTREAM_RESCUES="2")
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _native(server: ChatWaitServer, message: str):
    response = httpx.post(f"{server.url}/v1/chat/streaming", json={"message": message}, timeout=30)
    assert response.status_code == 200
    events, _ = parse(response.content)
    terminal = [e for e in events if e.event in ("done", "error")]
    assert len(terminal) == 1 and terminal[0] is events[-1], "exactly one terminal event, last"
    ids = [e.id for e in events if e.id is not None]
    assert ids == list(range(len(ids))), "sequence numbers contiguous, none repeated"
    return events, events[-1]


def _rescue_logs(server: ChatWaitServer) -> list[dict]:
    return [r for r in server.log_records() if r.get("event") == "upstream_rescue"]


# (fault, the token the continuation asks from: two back from where the reply broke)
CUTS = [
    ("@fault=reset@4", 2),
    ("@fault=errorchunk@3", 1),
    ("@fault=stall@6", 4),
    ("@fault=nofinish", 8),
    ("@fault=garbage@5", 3),
]


@pytest.mark.parametrize("fault,continued_from", CUTS)
def test_a_reply_cut_mid_answer_is_continued_whole(rescuing, fake, fault, continued_from) -> None:
    message = _unique(f"@tokens=10 {fault} @fail_times=1")
    events, done = _native(rescuing, message)
    assert done.event == "done" and done.data["finish_reason"] == "stop"
    assert content_of(events) == expected_reply(10), "no token lost, none twice, no seam"
    assert done.data["content_length"] == len(expected_reply(10))
    attempts = fake.outcomes_for(message)
    assert len(attempts) == 2 and attempts[1]["continued_from"] == continued_from
    assert attempts[1]["how"] == "completed"
    usage = done.data["usage"]
    assert done.data["usage_source"] == "estimated" and usage["completion_tokens"] > 0
    # Generated over the attempts, as the upstream counted them: the cut one's (its usage when it
    # sent one before ending, else its chunks: a token each) and the continuation's (its usage).
    assert usage["generated_tokens"] == sum(attempt["tokens"] for attempt in attempts)
    assert usage["completion_tokens"] == tokens.count_text(expected_reply(10)), "what the client got"


@pytest.mark.parametrize(("seam", "verdict"), [("chat", "answered as a chat turn"), ("restart", "restarted the reply")])
def test_a_continuation_that_does_not_continue_is_refused_and_the_next_one_taken(rescuing, fake, seam, verdict) -> None:
    """Asked by message to go on, the model first answers as a chat turn, or starts over in other
    words: nothing of it reaches the client; the next continuation goes on where the reply stopped."""
    message = _unique(f"@tokens=10 @fault=reset@6 @fail_times=1 @seam={seam}")
    events, done = _native(rescuing, message)
    assert done.event == "done" and content_of(events) == expected_reply(10)
    hows = [a["how"] for a in fake.outcomes_for(message)]
    assert hows[0] == "reset" and hows[2:] == ["completed"] and len(hows) == 3, "one refused continuation"
    refused = [r for r in _rescue_logs(rescuing) if r.get("cause") == "bad_response"]
    assert refused and verdict in refused[-1]["detail"]


def test_one_malformed_chunk_is_skipped(rescuing, fake) -> None:
    message = _unique("@tokens=10 @fault=badjson@5")
    events, done = _native(rescuing, message)
    assert done.event == "done" and content_of(events) == expected_reply(10)
    assert len(fake.outcomes_for(message)) == 1, "skipped, not rescued"
    assert any(r.get("event") == "upstream_chunk_skipped" for r in rescuing.log_records())


def test_a_reply_that_keeps_breaking_ends_honestly_after_the_rescues(rescuing, fake) -> None:
    message = _unique("@tokens=10 @fault=reset@4")
    events, error = _native(rescuing, message)
    assert error.event == "error" and error.data["error_code"] == "upstream_interrupted"
    assert content_of(events) == expected_reply(4), "what was delivered stays, nothing added"
    assert error.data["last_sequence"] == 4
    assert len(fake.outcomes_for(message)) == 3, "the first attempt and UPSTREAM_RESCUES continuations"


@pytest.mark.parametrize("mode", ["streaming", "wait"])
def test_replies_ended_without_a_finish_reason_spend_the_same_budget(rescuing, fake, mode) -> None:
    """A prompt the upstream ends early every time (no finish_reason: a preemption) costs the
    first attempt and UPSTREAM_RESCUES continuations, no more: one budget for every cause."""
    message = _unique("@tokens=10 @fault=nofinish")
    if mode == "streaming":
        _, error = _native(rescuing, message)
        assert error.event == "error" and error.data["error_code"] == "upstream_interrupted"
    else:
        answer = httpx.post(f"{rescuing.url}/v1/chat/wait", json={"message": message}, timeout=60)
        assert answer.status_code == 502 and answer.json()["error_code"] == "upstream_interrupted", answer.text
    assert len(fake.outcomes_for(message)) == 3, "the first attempt and UPSTREAM_RESCUES (2) continuations"


def test_a_tool_call_is_never_continued(rescuing, fake) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    message = _unique("@tokens=0 @fault=nofinish @argpieces=4")
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}], "tools": tools, "stream": True}
    response = httpx.post(f"{rescuing.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200
    events, _ = parse(response.content)
    errors = [e for e in events if e.event == "message" and e.data != "[DONE]" and "error" in e.data]
    assert errors and errors[0].data["error"]["code"] == "upstream_interrupted"
    assert len(fake.outcomes_for(message)) == 1, "a call cut mid-arguments would be corrupted"


def test_wait_mode_and_openai_families_get_the_whole_answer(rescuing, fake, request) -> None:
    wait = httpx.post(
        f"{rescuing.url}/v1/chat/wait", json={"message": _unique("@tokens=12 @fault=reset@5 @fail_times=1")}
    )
    assert wait.status_code == 200 and wait.json()["content"] == expected_reply(12)

    sdk = openai.OpenAI(base_url=f"{rescuing.url}/v1", api_key="unused", max_retries=0)
    request.addfinalizer(sdk.close)
    message = _unique("@tokens=12 @fault=reset@5 @fail_times=1")
    stream = sdk.chat.completions.create(model=FAKE_MODEL, messages=[{"role": "user", "content": message}], stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected_reply(12)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]

    message = _unique("@tokens=12 @fault=stall@7 @fail_times=1")
    with sdk.responses.stream(model=FAKE_MODEL, input=message) as events:
        final = events.get_final_response()
    assert final.status == "completed" and final.output_text == expected_reply(12)

    metrics = httpx.get(f"{rescuing.url}/metrics").text
    assert 'chatwait_upstream_rescues_total{cause="interrupted",strategy="message"}' in metrics
    assert 'chatwait_upstream_rescues_total{cause="timeout",strategy="message"}' in metrics


def test_prefill_continues_on_the_other_server_exactly(prefilling, fake) -> None:
    message = _unique("@tokens=10 @fault=reset@4 @fail_times=1")
    events, done = _native(prefilling, message)
    assert done.event == "done" and content_of(events) == expected_reply(10)
    attempts = fake.outcomes_for(message)
    assert [a.get("continued_from") for a in attempts] == [None, 4], "prefilled: nothing to drop"
    assert attempts[1]["options"] == {"continue_final_message": True, "add_generation_prompt": False}
    rescue = _rescue_logs(prefilling)[-1]
    assert rescue["strategy"] == "prefill" and rescue["cause"] == "interrupted"
    assert rescue["failed_server"] != rescue["upstream_server"], "another server of the model takes it"


def test_a_server_that_refuses_prefill_is_asked_by_message(prefilling, fake) -> None:
    message = _unique("@tokens=10 @fault=reset@6 @fail_times=1 @prefill=reject")
    events, done = _native(prefilling, message)
    assert done.event == "done" and content_of(events) == expected_reply(10)
    # The 400 says it is the prefill: not asked again without stream_options (as an unexplained one is).
    hows = [a["how"] for a in fake.outcomes_for(message)]
    assert hows == ["reset", "http_400_prefill", "completed"]
    assert fake.outcomes_for(message)[-1]["continued_from"] == 4
    assert any(r.get("event") == "upstream_prefill_refused" for r in prefilling.log_records())


@pytest.fixture(scope="module")
def two_instances(request: pytest.FixtureRequest, fake: FakeUpstream) -> Iterator[list[ChatWaitServer]]:
    """Two instances on one Redis, rescues on."""
    instances = gateways_of(request, server_env(fake.base_url, UPSTREAM_RESCUES="2"), "redis")
    yield instances
    for instance in instances:
        instance.stop()


@pytest.mark.parametrize("drop_at", [3, 9, 14])
def test_a_client_that_drops_around_a_rescue_resumes_exactly_elsewhere(two_instances, drop_at) -> None:
    """Dropped before, at or after the cut (token 8), resumed on the other instance."""
    first, other = two_instances
    body = {"message": _unique("@tokens=20 @delay_ms=20 @fault=reset@8 @fail_times=1")}
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{first.url}/v1/chat/streaming", json=body) as response:
            stream_id = response.headers["x-stream-id"]
            received, finished = read_events(response, drop_at)
        assert not finished
        headers = {"Last-Event-ID": str(received[-1].id)}
        with client.stream("GET", f"{other.url}/v1/chat/streaming/{stream_id}", headers=headers) as response:
            assert response.status_code == 200
            rest, finished = read_events(response, None)
    received += rest
    assert finished and received[-1].event == "done"
    ids = [e.id for e in received if e.id is not None]
    assert ids == list(range(len(ids)))
    assert content_of(received) == expected_reply(20)


def test_the_continuation_setting_is_checked(tmp_path: Path) -> None:
    from app.config import ConfigError, load_settings

    listing = tmp_path / "upstreams.yaml"
    listing.write_text("upstreams:\n  - {url: 'http://127.0.0.1:9/v1', continuation: maybe}\n")
    with pytest.raises(ConfigError, match="continuation must be one of prefill, message, none"):
        load_settings(environ={"UPSTREAMS_FILE": str(listing)})
