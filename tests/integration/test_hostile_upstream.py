"""A hostile or broken upstream cannot exhaust ChatWait's memory, block its loop, or turn into a
500: every case ends the stream with one clean terminal error (the partial reply kept), /health
answers throughout, and the worker's RSS stays within 50 MB of its idle value."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.providers.httpapi.stream import MAX_SKIPPED_CHUNKS
from harness.hostile_upstream import BROKEN_CHUNKS, HostileUpstream
from harness.processes import ChatWaitServer

from ..conftest import server_env
from ..rawhttp import HealthProbe, worker_rss_kb
from ..sse import content_of, parse

pytestmark = pytest.mark.integration

RSS_BOUND_KB = 50_000


@pytest.fixture(scope="module")
def hostile():
    upstream = HostileUpstream()
    yield upstream
    upstream.close()


@pytest.fixture(scope="module")
def exposed(hostile):
    """ChatWait in front of the hostile upstream: no retries, so each attack runs once."""
    running = ChatWaitServer(server_env(hostile.base_url, UPSTREAM_RETRIES="0", MAX_TOKENS="50"))
    yield running
    running.stop()


# (script, error code, whether the first token "ok " came before the fault)
CASES = [
    ("huge_chunk", "upstream_bad_response", True),
    ("long_line", "upstream_bad_response", True),
    ("gzip_bomb", "upstream_bad_response", False),
    ("bad_gzip", "upstream_bad_response", False),
    ("deep_json", "upstream_bad_response", True),
    ("not_text", "upstream_bad_response", True),
    ("redirect", "upstream_rejected", False),
]


@pytest.mark.parametrize("script,code,partial", CASES, ids=[c[0] for c in CASES])
def test_each_attack_ends_in_one_clean_error(exposed, script, code, partial) -> None:
    idle = worker_rss_kb(exposed.proc.pid)
    message = f"{uuid.uuid4().hex} @hostile={script}"
    with (
        HealthProbe(exposed.url, f"upstream {script}", master_pid=exposed.proc.pid) as probe,
        httpx.Client(base_url=exposed.url, timeout=60) as client,
    ):
        events, _ = parse(client.post("/v1/chat/streaming", json={"message": message}).content)
        wait = client.post("/v1/chat/wait", json={"message": message})
    terminal = [e for e in events if e.event in ("done", "error")]
    assert terminal == [events[-1]] and events[-1].event == "error"
    error = events[-1].data
    assert error["error_code"] == code
    assert content_of(events) == ("ok " if partial else "")
    assert error["last_sequence"] == len([e for e in events if e.event == "chunk"])
    assert wait.status_code == 502 and wait.json()["error_code"] == code
    assert probe.peak_rss_kb - min(idle, probe.idle_rss_kb) < RSS_BOUND_KB, f"RSS grew to {probe.peak_rss_kb} KB"
    records = exposed.log_records()
    assert not [r for r in records if r["level"] == "ERROR"], "no traceback, no internal_error"


def test_an_endless_reply_ends_at_max_tokens_as_its_length(exposed) -> None:
    """Tokens for ever, whatever max_tokens says: the reply is cut at the 50 reserved (MAX_TOKENS),
    counted on the stream, and ends as a model's that reached its length; the upstream is let go."""
    message = f"{uuid.uuid4().hex} @hostile=endless"
    with httpx.Client(base_url=exposed.url, timeout=60) as client:
        events, _ = parse(client.post("/v1/chat/streaming", json={"message": message}).content)
        wait = client.post("/v1/chat/wait", json={"message": message})
    assert [e.event for e in events if e.event in ("done", "error")] == ["done"]
    assert events[-1].data["finish_reason"] == "length" and events[-1].data["usage"]["completion_tokens"] == 50
    assert len([e for e in events if e.event == "chunk"]) == 50
    assert wait.status_code == 200 and wait.json()["finish_reason"] == "length"
    assert any(r["event"] == "reply_ceiling" and r["max_tokens"] == 50 for r in exposed.log_records())


def test_the_broken_replies_break_more_chunks_than_chatwait_skips() -> None:
    """The harness knows nothing of the app: its bound is held to the app's here."""
    assert BROKEN_CHUNKS > MAX_SKIPPED_CHUNKS


def test_a_redirect_is_logged_with_its_location(exposed) -> None:
    message = f"{uuid.uuid4().hex} @hostile=redirect"
    httpx.post(f"{exposed.url}/v1/chat/wait", json={"message": message}, timeout=30)
    failures = [r for r in exposed.log_records() if r["event"] == "error_occurred" and r.get("upstream_status") == 302]
    assert failures and failures[-1]["upstream_location"] == "http://collector.invalid/steal"


def test_a_reply_that_reached_done_is_complete_however_the_connection_ends(exposed) -> None:
    message = f"{uuid.uuid4().hex} @hostile=done_then_drop"
    events, _ = parse(httpx.post(f"{exposed.url}/v1/chat/streaming", json={"message": message}, timeout=30).content)
    assert events[-1].event == "done" and events[-1].data["finish_reason"] == "stop"
    assert content_of(events) == "ok "


def test_a_reply_in_one_big_chunk_is_read_as_it_arrives_up_to_max_tokens(exposed) -> None:
    """Chunk sizes are not bounded, lines and events are: 50,000 events in one 2.4 MB chunk, read
    until the 50 tokens reserved (the server ignored max_tokens)."""
    message = f"{uuid.uuid4().hex} @hostile=one_big_chunk"
    body = {"message": message, "max_tokens": 50}
    with httpx.Client(base_url=exposed.url, timeout=60) as client:
        events, _ = parse(client.post("/v1/chat/streaming", json=body).content)
    assert events[-1].event == "done" and events[-1].data["finish_reason"] == "length", events[-1].data
    assert content_of(events) == "x" * 50


@pytest.mark.parametrize("script,expected", [("rate_limited_litellm", "7"), ("rate_limited_silently", None)])
def test_rate_limits_always_say_when_to_retry(exposed, script, expected) -> None:
    """LiteLLM's forwarded delay is honoured; with none at all, ChatWait's own estimate is sent."""
    message = f"{uuid.uuid4().hex} @hostile={script}"
    response = httpx.post(f"{exposed.url}/v1/chat/wait", json={"message": message}, timeout=30)
    assert response.status_code == 429 and response.json()["error_code"] == "upstream_rate_limited"
    retry_after = response.headers["retry-after"]
    assert int(retry_after) >= 1 and (expected is None or retry_after == expected)
    assert response.json()["retry_after_seconds"] >= 0.25
    events, _ = parse(httpx.post(f"{exposed.url}/v1/chat/streaming", json={"message": message}, timeout=30).content)
    assert events[-1].data["error_code"] == "upstream_rate_limited" and events[-1].data["retry_after_seconds"] > 0
