"""The ledger of a generation against the upstream's own count (the fake records every attempt's
tokens): `generated_tokens` and each attempt in the native usage and as `usage.chatwait` on every
family's objects and final chunks or events, streamed and not; for a reply completed, cut and
continued, stopped by its client; in the completion log line and /metrics; kept with a stored
response for any worker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import ChatWaitServer, FakeUpstream

from ..conftest import FAKE_MODEL, server_env, store_env
from ..sse import parse, responses_events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["memory", "redis"])
def server(fake: FakeUpstream, request) -> Iterator[ChatWaitServer]:
    env = server_env(fake.base_url, UPSTREAM_RESCUES="2", ABANDON_SECONDS="1", **store_env(request, request.param))
    running = ChatWaitServer(env)
    yield running
    running.stop()


def _message(directives: str) -> str:
    return f"ledger {uuid.uuid4().hex[:8]} {directives}"


MAX_TOKENS_FIELD = {"chat_completions": "max_completion_tokens", "responses": "max_output_tokens"}


def _ask(server: ChatWaitServer, family: str, message: str, stream: bool, max_tokens: int = 100) -> dict:
    """The ledger a family's answer carries: the native usage, else `usage.chatwait`."""
    field = MAX_TOKENS_FIELD.get(family, "max_tokens")
    if family == "native":
        body = {"message": message, field: max_tokens}
        if not stream:
            return httpx.post(f"{server.url}/v1/chat/wait", json=body, timeout=30).json()["usage"]
        events, _ = parse(httpx.post(f"{server.url}/v1/chat/streaming", json=body, timeout=30).content)
        return events[-1].data["usage"]
    if family == "chat_completions":
        body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}], "stream": stream}
        body[field] = max_tokens
        if stream:
            body["stream_options"] = {"include_usage": True}
        answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
        if not stream:
            return answer.json()["usage"]["chatwait"]
        chunks = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]
        return chunks[-1]["usage"]["chatwait"]
    if family == "responses":
        body = {"model": FAKE_MODEL, "input": message, "stream": stream, field: max_tokens}
        answer = httpx.post(f"{server.url}/v1/responses", json=body, timeout=30)
        found = responses_events(answer.content)[-1].data["response"] if stream else answer.json()
        return found["usage"]["chatwait"]
    body = {"model": FAKE_MODEL, field: max_tokens, "messages": [{"role": "user", "content": message}]}
    answer = httpx.post(f"{server.url}/v1/messages", json={**body, "stream": stream}, timeout=30)
    if not stream:
        return answer.json()["usage"]["chatwait"]
    delta = next(e for e in parse(answer.content)[0] if e.event == "message_delta")
    return delta.data["usage"]["chatwait"]


FAMILIES = ["native", "chat_completions", "responses", "messages"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_completed_reply_has_the_upstreams_count(server, fake, family, stream) -> None:
    message = _message("@tokens=7")
    ledger = _ask(server, family, message, stream)
    (sent,) = fake.outcomes_for(message)
    assert ledger["generated_tokens"] == sent["tokens"] == 7
    assert ledger["delivered_tokens"] == 7 and ledger.get("replayed_tokens", 0) == 0, "every token reached its client"
    (attempt,) = ledger["attempts"]
    assert attempt["outcome"] == "completed" and attempt["output_tokens"] == 7 and attempt["model"] == FAKE_MODEL
    assert attempt["input_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_reply_stopped_at_max_tokens_has_the_upstreams_count(server, fake, family, stream) -> None:
    message = _message("@tokens=40 @limit=max_tokens")
    ledger = _ask(server, family, message, stream, max_tokens=6)
    (sent,) = fake.outcomes_for(message)
    assert ledger["generated_tokens"] == sent["tokens"] == 6, "the upstream stopped at max_tokens"
    (attempt,) = ledger["attempts"]
    assert attempt["outcome"] == "completed" and attempt["output_tokens"] == 6


@pytest.mark.parametrize("family", FAMILIES)
def test_a_reply_cut_and_continued_counts_every_attempt(server, fake, family) -> None:
    message = _message("@tokens=12 @delay_ms=5 @fault=reset@5 @fail_times=1")
    ledger = _ask(server, family, message, True)
    sent = fake.outcomes_for(message)
    assert len(sent) == 2 and sent[0]["tokens"] == 5
    assert ledger["generated_tokens"] == sum(o["tokens"] for o in sent), "the upstream's count, over its attempts"
    cut, continued = ledger["attempts"]
    assert (cut["outcome"], cut["error_code"], cut["output_tokens"]) == ("cut", "upstream_interrupted", 5)
    assert continued["outcome"] == "completed" and continued["output_tokens"] == sent[1]["tokens"]
    assert ledger["resent_tokens"] == continued["input_tokens"] > cut["input_tokens"], "the prompt and the text so far"


def test_a_stopped_stream_counts_what_was_generated_until_its_stop(server, fake) -> None:
    message = _message("@tokens=400 @delay_ms=30")
    with httpx.stream("POST", f"{server.url}/v1/chat/streaming", json={"message": message}, timeout=30) as started:
        stream_id = started.headers["x-stream-id"]
        for line in started.iter_lines():
            if line.startswith("id: 6"):
                break
    assert httpx.delete(f"{server.url}/v1/chat/streaming/{stream_id}", timeout=30).status_code == 200
    resumed = httpx.get(f"{server.url}/v1/chat/streaming/{stream_id}", headers={"Last-Event-ID": "0"}, timeout=30)
    done = parse(resumed.content)[0][-1]
    assert done.data["finish_reason"] == "cancelled"
    (sent,) = [fake.wait_for_outcome(message, "client_closed")]
    usage = done.data["usage"]
    # A token the upstream sent as the stop landed is generated but never read: its count is one up then.
    assert sent["tokens"] - 1 <= usage["generated_tokens"] == usage["attempts"][0]["output_tokens"] <= sent["tokens"]
    assert usage["generated_tokens"] >= 6
    assert usage["attempts"][0]["outcome"] == "cancelled"


def test_the_log_line_and_the_metrics_have_the_ledger(server, fake) -> None:
    message = _message("@tokens=9 @fault=reset@3 @fail_times=1")
    stream_id = httpx.post(f"{server.url}/v1/chat/streaming", json={"message": message}, timeout=30).headers[
        "x-stream-id"
    ]
    lines = [r for r in server.log_records() if r.get("stream_id") == stream_id and "generated_tokens" in r]
    assert lines and lines[-1]["attempts"] == 2
    assert lines[-1]["generated_tokens"] == sum(o["tokens"] for o in fake.outcomes_for(message))
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert f'chatwait_ledger_tokens_total{{kind="generated",model="{FAKE_MODEL}"}}' in metrics
    assert f'chatwait_ledger_tokens_total{{kind="resent",model="{FAKE_MODEL}"}}' in metrics


def test_a_responses_object_says_what_reached_clients_and_what_resumes_sent_again(server, fake) -> None:
    """A background response read as events to its end, then again after its third chunk, then
    fetched whole: the object counts every chunk delivered once and what the resume sent again;
    fetching it again is no replay."""
    message = _message("@tokens=6 @delay_ms=10")
    body = {"model": FAKE_MODEL, "input": message, "background": True}
    url = f"{server.url}/v1/responses/" + httpx.post(f"{server.url}/v1/responses", json=body, timeout=30).json()["id"]
    events = responses_events(httpx.get(f"{url}?stream=true", timeout=30).content)  # live, to its end
    deltas = [e.data["sequence_number"] for e in events if e.event == "response.output_text.delta"]
    again = responses_events(httpx.get(f"{url}?stream=true&starting_after={deltas[2]}", timeout=30).content)
    assert again[-1].event == "response.completed" and len(deltas) == 6
    fetched = [httpx.get(url, timeout=30).json()["usage"]["chatwait"] for _ in range(2)]
    # the 4th to 6th sent again; a worker that has not read the stream's layout yet resumes from
    # the frame holding the event named, and counts that one too
    assert fetched[0]["delivered_tokens"] == 6 and fetched[0]["replayed_tokens"] in (3, 4), fetched[0]
    assert fetched[1] == fetched[0], "a whole object fetched again is no replay"


def test_a_stored_response_keeps_its_ledger_for_any_worker(server, fake) -> None:
    message = _message("@tokens=6 @fault=reset@2 @fail_times=1")
    created = httpx.post(f"{server.url}/v1/responses", json={"model": FAKE_MODEL, "input": message}, timeout=30).json()
    for _ in range(4):  # with Redis, two workers: any of them answers from the stored record
        found = httpx.get(f"{server.url}/v1/responses/{created['id']}", timeout=30).json()
        assert found["usage"]["chatwait"] == created["usage"]["chatwait"]
    assert [a["outcome"] for a in created["usage"]["chatwait"]["attempts"]] == ["cut", "completed"]


def test_a_failed_generation_lists_its_failed_attempts_and_generated_nothing(server, fake) -> None:
    message = _message("@fault=500")
    events, _ = parse(httpx.post(f"{server.url}/v1/chat/streaming", json={"message": message}, timeout=30).content)
    error = events[-1]
    assert error.event == "error" and error.data["error_code"] == "upstream_unavailable"
    usage = error.data["usage"]
    assert usage["generated_tokens"] == 0 and len(usage["attempts"]) == len(fake.outcomes_for(message)) == 3
    assert {(a["outcome"], a["error_code"], a["input_tokens"]) for a in usage["attempts"]} == {
        ("failed", "upstream_unavailable", 0)
    }


def test_a_stream_whose_client_left_counts_what_was_generated_until_it_was_abandoned(server, fake) -> None:
    """A foreground OpenAI stream its client leaves stops after ABANDON_SECONDS: its completion
    line counts every token the upstream sent until then."""
    message = _message("@tokens=400 @delay_ms=20")
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": message}], "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as started:
        stream_id = started.headers["x-stream-id"]
        next(started.iter_lines())
    sent = fake.wait_for_outcome(message, "client_closed", timeout=20)
    for _ in range(100):
        lines = [r for r in server.log_records() if r.get("stream_id") == stream_id and "generated_tokens" in r]
        if lines:
            break
        time.sleep(0.1)
    assert lines and lines[-1]["finish_reason"] == "cancelled"
    assert sent["tokens"] - 1 <= lines[-1]["generated_tokens"] <= sent["tokens"] < 400  # one in flight, unread


def _completion_line(server: ChatWaitServer, stream_id: str, seconds: float = 20) -> dict:
    """The completion log line of a stream, once it is written."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lines = [r for r in server.log_records() if r.get("stream_id") == stream_id and "generated_tokens" in r]
        if lines:
            return lines[-1]
        time.sleep(0.1)
    raise AssertionError(f"no completion line for {stream_id}")


def test_a_stream_that_expired_unfollowed_counts_what_was_generated_until_it_expired(start_store_server, fake) -> None:
    """A native stream nobody follows for STREAM_TTL_SECONDS is cancelled by the store: its
    completion line counts every token the upstream sent until then."""
    server = start_store_server(STREAM_TTL_SECONDS="1")
    message = _message("@tokens=1000 @delay_ms=20")
    with httpx.stream("POST", f"{server.url}/v1/chat/streaming", json={"message": message}, timeout=30) as started:
        stream_id = started.headers["x-stream-id"]
        next(started.iter_lines())
    sent = fake.wait_for_outcome(message, "client_closed", timeout=20)
    line = _completion_line(server, stream_id)
    assert line["finish_reason"] == "cancelled"
    assert sent["tokens"] - 1 <= line["generated_tokens"] <= sent["tokens"] < 1000  # one in flight, unread
    assert any(r.get("stream_id") == stream_id and r.get("event") == "stream_expired" for r in server.log_records())


def _ledger_tokens(server: ChatWaitServer, kind: str) -> float:
    """chatwait_ledger_tokens_total of the fake's model and `kind`, summed over the workers."""
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "chatwait_ledger_tokens_total" and sample.labels == {"model": FAKE_MODEL, "kind": kind}:
                return sample.value
    return 0.0


def test_what_reached_the_client_is_delivered_and_what_resumes_sent_again_replayed(server, fake) -> None:
    """A stream cut after its fifth chunk, generated to its end, then resumed three times after
    chunk 2: delivered counts each chunk once (fewer than generated until the first resume),
    replayed the chunks each resume sent again."""
    kinds = ("generated", "delivered", "replayed")
    before = {kind: _ledger_tokens(server, kind) for kind in kinds}

    def moved(kind: str) -> float:
        return _ledger_tokens(server, kind) - before[kind]

    with httpx.stream("POST", f"{server.url}/v1/chat/streaming", json={"message": _message("@tokens=30 @delay_ms=20")},
                      timeout=30) as cut:  # fmt: skip
        stream_id = cut.headers["x-stream-id"]
        for line in cut.iter_lines():
            if line == "id: 5":
                break
    for _ in range(100):  # the stream runs on to its end without a client
        if moved("generated") == 30:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    first = moved("delivered")
    assert moved("generated") == 30 and 5 <= first < 30, "what its connection took before it closed"
    assert moved("replayed") == 0
    for _ in range(3):
        resumed = httpx.get(f"{server.url}/v1/chat/streaming/{stream_id}", headers={"Last-Event-ID": "2"}, timeout=30)
        done = parse(resumed.content)[0][-1]
        assert done.event == "done" and done.data["usage"]["delivered_tokens"] == 30, "its reader has every chunk"
    assert moved("delivered") == 30, "each chunk delivered once"
    assert moved("replayed") == (first - 2) + 28 + 28, "the chunks each resume sent that a client had been sent"
