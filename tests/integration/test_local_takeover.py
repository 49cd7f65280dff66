"""The embedded model continues a reply from its own text (prefill, in-process): a reply cut at a
word goes on from there, and with Redis a stream whose worker is SIGKILLed is taken over by
another worker and ends whole."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.config import load_settings
from app.generation.continuation import continuation_call
from app.providers.call import ChatCall, Route
from app.providers.local.model import LocalProvider
from harness.processes import ChatWaitServer
from harness.redis_servers import RedisServer

from ..sse import content_of, read_events
from .test_scale_out import _follow_elsewhere, _worker_of

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # CPU-bound: run alone (scripts/test)

PROMPT = "Write a long story about a dragon who learns to bake bread, with many details."


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    running = LocalProvider(load_settings(environ={"LOCAL_CONTEXT_TOKENS": "1024"}))
    yield running
    running.close()


def _generated(provider: LocalProvider, call: ChatCall) -> str:
    with provider.reserve() as lease:
        return "".join(piece for piece in provider.open(call, lease) if type(piece) is str)


def test_a_reply_continued_from_its_own_text_goes_on_from_where_it_was_cut(provider) -> None:
    """How the seam is judged (llama.cpp's greedy decoding is not bit-reproducible across calls:
    its prompt cache changes the arithmetic, so the words after the cut may differ from an
    uninterrupted reply's): the continuation goes on at the cut (a space, or the punctuation that
    follows a word, first), never starts the answer again, and holds no chat-template marker."""
    assert provider.continuation(provider.model, Route()) == "prefill"
    call = ChatCall(model=provider.model, messages=[{"role": "user", "content": PROMPT}], max_tokens=80, temperature=0)
    whole = _generated(provider, call)
    opening = whole[:16]
    for words in (5, 17, 30):
        cut = " ".join(whole.split(" ")[:words])  # before a space: the next token starts a word
        left = call.max_tokens - provider.completion_tokens(cut)
        rest = _generated(provider, continuation_call(call, cut, "prefill", left))
        assert rest and (rest[0].isspace() or rest[0] in ",.;:!?'\"-)"), f"after {words} words: {rest[:40]!r}"
        assert opening not in rest and "<|im_" not in rest, f"after {words} words: not started again"
        assert provider.completion_tokens(cut + rest) <= call.max_tokens + 2, "within the reply's token budget"


@pytest.fixture
def local_cluster(redis_server: RedisServer) -> Iterator[ChatWaitServer]:
    """Two workers of the embedded model on the tests' Redis."""
    env = {
        "STREAM_STORE": "redis",
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "2",
        "LOCAL_CONTEXT_TOKENS": "1024",
        "KEEPALIVE_SECONDS": "0.5",
    }
    running = ChatWaitServer(env)
    yield running
    running.stop()


def test_the_embedded_models_stream_is_taken_over_after_its_worker_dies_and_ends_whole(local_cluster) -> None:
    server = local_cluster
    stream_id, owner = _start(server, {"message": PROMPT, "max_tokens": 200, "temperature": 0})
    following = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as pool:
        follower = pool.submit(_follow_elsewhere, server, stream_id, owner, following)
        assert following.wait(60)
        os.kill(owner, signal.SIGKILL)
        events = follower.result(timeout=120)
    assert [e.id for e in events] == list(range(len(events))), "contiguous ids, nothing twice"
    assert [e.event for e in events].count("done") == 1 and events[-1].event == "done"
    assert not [e for e in events if e.event == "error"]
    rescues = [r for r in server.log_records() if r.get("event") == "upstream_rescue"]
    assert [(r["cause"], r["strategy"]) for r in rescues] == [("takeover", "prefill")]
    text = content_of(events)
    assert text.count(text[:16]) == 1 and "<|im_" not in text, "continued from its text, not started again"
    assert events[-1].data["finish_reason"] in ("stop", "length")


def _start(server: ChatWaitServer, body: dict) -> tuple[str, int]:
    """Start a native stream and read its first events; its id and its worker's pid."""
    cid = f"local-taken-{uuid.uuid4().hex[:8]}"
    with (
        httpx.Client(base_url=server.url, timeout=60) as client,
        client.stream("POST", "/v1/chat/streaming", json=body, headers={"X-Correlation-Id": cid}) as response,
    ):
        stream_id = response.headers["x-stream-id"]
        read_events(response, 3)
    return stream_id, _worker_of(server, cid)
