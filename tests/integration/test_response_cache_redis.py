"""The response cache in Redis, through its failures, each on a redis-server of the test's own:
its bounds (entries, bytes, TTL; the least recently used out), one key's answers cleared, a
claim; a Redis restarted empty loses its answers honestly (a miss, then kept again) and one that
persists keeps them; paused, out of memory or evicting, a lookup is a miss, an answer is kept
whole or not at all, and every request is answered once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app.connect.redis import Topology
from app.response_cache import Bounds
from app.response_cache.kept import Kept
from app.response_cache.redis import PREFIX, RedisAnswers
from harness.processes import ChatWaitServer, FakeUpstream
from harness.redis_servers import RedisServer

from ..conftest import server_env

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_alone() -> Iterator[RedisServer]:
    running = RedisServer()
    yield running
    running.stop()


def _answers(
    redis: RedisServer, entries: int = 100, size: int = 1_000_000, ttl: float = 60, key_bytes: int | None = None
) -> RedisAnswers:
    return RedisAnswers(Topology.of(redis.url), Bounds(entries, size, ttl, key_bytes))


def test_redis_keeps_answers_within_count_bytes_and_time_least_recently_used_out(redis_alone) -> None:
    answers = _answers(redis_alone, entries=3, size=100)
    try:
        for name in ("a", "b", "c"):
            answers.put(name * 64, "k", name.encode() * 10)
            time.sleep(0.002)  # distinct last uses (ms)
        assert answers.get("a" * 64) == b"a" * 10, "now the most recently used"
        time.sleep(0.002)
        answers.put("d" * 64, "k", b"d" * 10)
        assert answers.get("b" * 64) is None and answers.held() == (3, 30)
        answers.put("e" * 64, "other", b"e" * 80)
        assert answers.get("c" * 64) is None and answers.held() == (3, 100), "the bytes' bound"
        assert redis_alone.client().exists(f"{PREFIX}:e:{'c' * 64}") == 0, "an evicted answer's string goes too"
        assert answers.clear(scope="k") == 2 and answers.get("e" * 64) == b"e" * 80
        assert answers.clear(digest="e" * 64) == 1 and answers.held() == (0, 0)
        assert redis_alone.client().keys(f"{PREFIX}:e:*") == []
    finally:
        answers.close()


def test_in_redis_a_key_that_churns_its_answers_evicts_its_own(redis_alone) -> None:
    answers = _answers(redis_alone, size=1_000, key_bytes=300)
    try:
        answers.put("q" * 64, "other", b"q" * 100)
        for index in range(20):
            answers.put(f"{index:02d}" * 32, "busy", b"b" * 100)
            time.sleep(0.002)
        assert answers.get("q" * 64) == b"q" * 100, "the other key's answer stays"
        assert all(answers.get(f"{index:02d}" * 32) for index in range(17, 20)) and answers.get("16" * 32) is None
        assert answers.held() == (4, 400) and len(redis_alone.client().keys(f"{PREFIX}:e:*")) == 4
        meta = redis_alone.client().hgetall(f"{PREFIX}:meta")
        assert meta[b"_key:busy"] == b"300" and meta[b"_key:other"] == b"100"
        assert answers.clear(scope="busy") == 3 and b"_key:busy" not in redis_alone.client().hgetall(f"{PREFIX}:meta")
    finally:
        answers.close()


def test_redis_answers_expire_and_a_claim_leads_until_released(redis_alone) -> None:
    answers = _answers(redis_alone, ttl=1)
    try:
        answers.put("f" * 64, "k", b"kept")
        assert answers.get("f" * 64) == b"kept"
        time.sleep(1.1)
        assert answers.get("f" * 64) is None, "kept for its TTL"
        answers.put("g" * 64, "k", b"new")
        assert answers.held() == (1, 3), "what expired left the bounds' count"
        assert answers.claim("h" * 64, "one", 5) and not answers.claim("h" * 64, "two", 5)
        assert answers.claimed("h" * 64)
        answers.release("h" * 64, "two")
        assert answers.claimed("h" * 64), "only its holder releases a claim"
        answers.release("h" * 64, "one")
        assert not answers.claimed("h" * 64) and answers.claim("h" * 64, "two", 5)
    finally:
        answers.close()


def test_paused_out_of_memory_or_gone_a_lookup_is_a_miss_and_nothing_is_kept_in_part(redis_alone) -> None:
    answers = _answers(redis_alone)
    blob = Kept((("whole answer",),), "stop").encode()
    try:
        client = redis_alone.client()
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", max(1, int(client.info("memory")["used_memory"]) // 2))
        answers.put("i" * 64, "k", blob)  # refused whole: logged, not raised
        client.config_set("maxmemory", 0)
        assert answers.get("i" * 64) is None and answers.held() == (0, 0), "nothing of it was written"
        answers.put("j" * 64, "k", blob)
        redis_alone.pause()
        started = time.monotonic()
        assert answers.get("j" * 64) is None, "a Redis that does not answer is a miss"
        assert time.monotonic() - started < 5
        redis_alone.resume()
        assert Kept.decode(answers.get("j" * 64) or b"") == Kept.decode(blob), "whole, once Redis answers"
        redis_alone.kill()
        assert answers.get("j" * 64) is None and answers.claim("k" * 64, "t", 5), "gone: a miss, and a lead"
    finally:
        answers.close()


@pytest.mark.parametrize("persisted", [False, True], ids=["restarted-empty", "persisted"])
def test_a_redis_restart_keeps_or_honestly_loses_the_answers(fake: FakeUpstream, tmp_path, persisted) -> None:
    args = ["--appendonly", "yes", "--appendfsync", "always", "--save", ""] if persisted else None
    redis = RedisServer(tmp_path / "redis" if persisted else None, args=args)
    server = ChatWaitServer(server_env(fake.base_url, STREAM_STORE="redis", REDIS_URL=redis.url, WEB_CONCURRENCY="1",
                                      RESPONSE_CACHE="true"))  # fmt: skip
    message = f"Kept through a restart @tokens=6 {uuid.uuid4().hex[:8]}"
    body = {"message": message, "temperature": 0}
    try:
        answers = [httpx.post(f"{server.url}/v1/chat/wait", json=body, timeout=30) for _ in range(2)]
        assert [answer.headers["x-chatwait-cache"] for answer in answers] == ["miss", "hit"]
        redis.kill()
        redis.start()
        deadline = time.monotonic() + 20
        while (again := httpx.post(f"{server.url}/v1/chat/wait", json=body, timeout=30)).status_code != 200:
            assert time.monotonic() < deadline, again.text  # the stream store finds Redis again
            time.sleep(0.2)
        assert again.headers["x-chatwait-cache"] == ("hit" if persisted else "miss")
        assert again.json()["content"] == answers[0].json()["content"], "a whole answer either way"
        last = httpx.post(f"{server.url}/v1/chat/wait", json=body, timeout=30)
        assert last.headers["x-chatwait-cache"] == "hit" and last.json()["content"] == answers[0].json()["content"]
        assert len(fake.outcomes_for(message)) == (1 if persisted else 2)
    finally:
        server.stop()
        redis.stop()
