"""The response cache's parts: the digest an answer is kept under, its stored form, the client's
Cache-Control, a worker's memory (bounded in entries, bytes and time, least recently used out),
a flight followed, and what the cache makes of a request."""

from __future__ import annotations

import gevent
import pytest

from app.accounts.payer import Payer
from app.config.caching import CacheSettings
from app.config.keys import ClientKey
from app.providers.base import Attempt, UpstreamError
from app.providers.call import ChatCall, Usage
from app.providers.deltas import LOGPROBS, REASONING, REFUSAL, TOOL_CALL, Delta
from app.response_cache import BYPASS, HIT, MISS, Bounds, Directives, ResponseCache, Times
from app.response_cache.flights import Flight
from app.response_cache.kept import Kept, Unreadable
from app.response_cache.keying import digest, sampled
from app.response_cache.memory import MemoryAnswers

CALL = ChatCall("m", [{"role": "user", "content": "Hi"}], 64, 0.0, {"top_p": 0.5, "user": "ann"})
TIMES = Times(idle_seconds=1.0, follow_seconds=0.2, claim_seconds=5.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Counted:
    def __init__(self) -> None:
        self.results: list[str] = []

    def response_cache(self, result: str) -> None:
        self.results.append(result)

    def response_cache_kept(self, size: int) -> None:
        pass


def test_the_digest_changes_with_what_changes_the_answer_and_with_whose_cache() -> None:
    same = ChatCall("m", [{"role": "user", "content": "Hi"}], 64, 0.0, {"user": "bob", "top_p": 0.5})
    assert digest(CALL, "k") == digest(same, "k"), "the end user and the options' order change nothing"
    assert digest(CALL, "k") != digest(CALL, "other"), "another key's cache"
    for changed in (
        ChatCall("n", CALL.messages, 64, 0.0, CALL.options),
        ChatCall("m", [{"role": "user", "content": "Hi!"}], 64, 0.0, CALL.options),
        ChatCall("m", CALL.messages, 65, 0.0, CALL.options),
        ChatCall("m", CALL.messages, 64, 0.1, CALL.options),
        ChatCall("m", CALL.messages, 64, 0.0, {**CALL.options, "tools": [{"type": "function"}]}),
        ChatCall("m", CALL.messages, 64, 0.0, CALL.options, typed=True),
        ChatCall("m", CALL.messages, 64, 0.0, CALL.options, native={"api": "messages", "body": {"system": "x"}}),
    ):
        assert digest(changed, "k") != digest(CALL, "k"), changed
    streamed = ChatCall("m", CALL.messages, 64, 0.0, CALL.options, native={"api": "messages", "body": {"stream": True}})
    waited = ChatCall("m", CALL.messages, 64, 0.0, CALL.options, native={"api": "messages", "body": {"stream": False}})
    assert digest(streamed, "k") == digest(waited, "k"), "how the answer is carried changes nothing"
    assert digest(ChatCall("m", [{"role": "user", "content": {1, 2}}], 64), "k") is None, "not written down: not kept"


def test_a_call_is_sampled_above_temperature_zero_without_a_seed() -> None:
    assert sampled(ChatCall("m", [], 8)) and sampled(ChatCall("m", [], 8, 0.7))
    assert not sampled(ChatCall("m", [], 8, 0.0)) and not sampled(ChatCall("m", [], 8, 1.0, {"seed": 3}))


def test_a_kept_answer_reads_back_as_it_was_written() -> None:
    reads = (
        ("Hello", Delta(REASONING, "think")),
        (Delta(REASONING, data="sig=="), Delta(TOOL_CALL, "", 0, "call_1", "get_weather")),
        (Delta(TOOL_CALL, '{"a":', 0),),
        (Delta(LOGPROBS, "x", data=[{"token": "x", "logprob": -0.1}]), "é ✓"),
    )
    kept = Kept(reads, "tool_calls", "tool_use", None, Usage(10, 4, cached_tokens=3, reasoning_tokens=1), "resp_1")
    again = Kept.decode(kept.encode())
    assert again == kept and not again.refused
    assert Kept(((Delta(REFUSAL, "no"),),), "stop").refused
    for broken in (b"", b"[2]", b'[9, [], "stop", null, null, null, null]', b'{"a": 1}'):
        with pytest.raises(Unreadable):
            Kept.decode(broken)


def test_cache_control_says_whether_to_look_and_whether_to_keep() -> None:
    assert Directives.of(None) == Directives(True, True) and Directives.of("max-age=60") == Directives(True, True)
    assert Directives.of("no-cache") == Directives(False, True) and Directives.of("No-Store") == Directives(True, False)
    assert Directives.of("no-cache, no-store") == Directives(False, False)
    # The red team's forms: max-age=0 asks for a fresh answer, a directive with a value is still it.
    assert Directives.of("max-age=0") == Directives(False, True) and Directives.of('max-age="0"').lookup is False
    assert Directives.of('no-store="x"') == Directives(True, False)
    assert Directives.of('no-cache="Set-Cookie"') == Directives(False, True)
    assert Directives.of("private, max-age=0 ,NO-STORE") == Directives(False, False)
    assert Directives.of("," * 100_000) == Directives(True, True), "a long header is read within its bound"


def test_memory_keeps_answers_within_count_bytes_and_time_least_recently_used_out() -> None:
    clock = _Clock()
    answers = MemoryAnswers(Bounds(entries=3, bytes=100, ttl_seconds=10), clock)
    for name in "abc":
        answers.put(name, "k", name.encode() * 10)
    assert answers.get("a") == b"a" * 10, "now the most recently used"
    answers.put("d", "k", b"d" * 10)
    assert answers.get("b") is None and answers.held() == (3, 30), "the least recently used went"
    answers.put("e", "other", b"e" * 80)
    assert answers.get("c") is None and answers.held() == (3, 100), "the bytes' bound: the least recently used out"
    answers.put("e", "other", b"e" * 90)
    assert answers.get("a") is None and answers.held() == (2, 100), "one replaced: its old bytes out first"
    clock.now += 10
    assert answers.get("d") is None and answers.get("e") is None, "each for its TTL"
    answers.put("f", "k", b"f")
    answers.put("g", "other", b"g")
    assert answers.clear(scope="k") == 1 and answers.get("g") == b"g"
    assert answers.clear(digest="g") == 1 and answers.clear() == 0 and answers.held() == (0, 0)


def test_a_flight_is_followed_from_its_first_read_to_its_end() -> None:
    flight = Flight()
    got: list[list[str]] = []

    def follow() -> None:
        got.extend(flight.follow(5))

    follower = gevent.spawn(follow)
    gevent.sleep(0)
    flight.add(["a"])
    flight.add(["b", "c"])
    late = gevent.spawn(lambda: list(flight.follow(5)))
    gevent.sleep(0)
    flight.end(Kept((("a",), ("b", "c")), "stop"))
    flight.end(None)  # the first end holds
    follower.join(5)
    assert got == [["a"], ["b", "c"]] and late.get(timeout=5) == [["a"], ["b", "c"]] and flight.kept is not None
    silent = Flight()
    with pytest.raises(TimeoutError):
        list(silent.follow(0.01))
    assert not silent.started(0.01)


class _Text(Attempt):
    def __init__(self, reads: list[list[str]], finish: str = "stop") -> None:
        self._reads, self._finish = reads, finish

    def __iter__(self):
        for read in self.reads():
            yield from read

    def reads(self):
        yield from self._reads
        self.finish(self._finish)
        self.usage = Usage(5, sum(len(read) for read in self._reads))

    def close(self) -> None:
        pass


class _Model:
    name, check_name, takes_turns = "fake", "upstream", True

    def __init__(self, attempt: Attempt) -> None:
        self.attempt, self.opened = attempt, 0

    def open(self, call, slot=None, route=None) -> Attempt:
        self.opened += 1
        return self.attempt


def _cache(**settings) -> tuple[ResponseCache, _Counted]:
    counted = _Counted()
    found = CacheSettings(response_cache=True, **settings)
    return ResponseCache(found, MemoryAnswers(Bounds(10, 10_000, 60)), TIMES, counted), counted


def _state(cache: ResponseCache, call: ChatCall = CALL, key: ClientKey | None = None, asked: str | None = None) -> str:
    """What the cache makes of a request that then never runs."""
    lookup = cache.lookup(call, Payer(key), asked)
    assert lookup is not None
    lookup.finish()
    return lookup.state


def _run(lookup, model: _Model) -> list[str]:
    """What a relay does with the provider a lookup gives: open, read to the end, close."""
    attempt = lookup.provider(model).open(CALL)
    with attempt:
        pieces = [piece for read in attempt.reads() for piece in read]
    lookup.finish()
    return pieces


def test_a_miss_records_its_answer_and_the_next_request_plays_it_back() -> None:
    cache, counted = _cache()
    model = _Model(_Text([["Hel"], ["lo"]]))
    miss = cache.lookup(CALL, Payer(), None)
    assert miss.state == MISS and _run(miss, model) == ["Hel", "lo"] and model.opened == 1
    hit = cache.lookup(CALL, Payer(), None)
    provider = hit.provider(model)
    replay = provider.open(CALL)
    assert hit.state == HIT and [piece for read in replay.reads() for piece in read] == ["Hel", "lo"]
    assert replay.replayed and replay.finish_reason == "stop" and replay.usage == Usage(5, 2)
    assert model.opened == 1 and not provider.takes_turns
    assert counted.results == [MISS, HIT]


def test_what_is_not_kept_and_who_is_not_asked() -> None:
    cache, _ = _cache()
    for attempt in (_Text([["x"]], "length"), _Text([["x"]], "content_filter")):
        model = _Model(attempt)
        _run(cache.lookup(CALL, Payer(), None), model)
        assert _state(cache) == MISS, attempt.finish_reason
    off = ClientKey("secret-0123456789abcdef", "off", cache=False)
    assert cache.lookup(CALL, Payer(off), None) is None, "off for the key: nothing looked up"
    assert _state(cache, ChatCall("m", [], 8, 0.5)) == BYPASS, "sampled"
    assert _state(cache, asked="no-cache, no-store") == BYPASS
    lengthy, _ = _cache(response_cache_length=True)
    _run(lengthy.lookup(CALL, Payer(), None), _Model(_Text([["x"]], "length")))
    assert _state(lengthy) == HIT, "kept where RESPONSE_CACHE_LENGTH says"


def test_a_follower_ends_with_its_leader_or_goes_to_the_model_when_the_leader_keeps_nothing() -> None:
    cache, _ = _cache()
    leader = cache.lookup(CALL, Payer(), None)
    follower = cache.lookup(CALL, Payer(), None)
    assert (leader.state, follower.state) == (MISS, HIT)
    followed = gevent.spawn(lambda: _run(follower, _Model(_Text([["never"]]))))
    assert _run(leader, _Model(_Text([["a"], ["b"]]))) == ["a", "b"]
    assert followed.get(timeout=5) == ["a", "b"]
    lost = cache.lookup(ChatCall("m", [{"role": "user", "content": "other"}], 8, 0.0), Payer(), None)
    behind = cache.lookup(ChatCall("m", [{"role": "user", "content": "other"}], 8, 0.0), Payer(), None)
    own = _Model(_Text([["own"]]))
    waiting = gevent.spawn(lambda: _run(behind, own))
    gevent.sleep(0)
    lost.finish()  # the leader never opened (its client left while it waited for a slot)
    assert waiting.get(timeout=5) == ["own"] and own.opened == 1


class _Cut(_Text):
    """An attempt the upstream cuts after its first read."""

    def reads(self):
        yield self._reads[0]
        raise UpstreamError("upstream_interrupted", "cut")


def test_a_cut_answer_and_its_rescue_are_not_kept_and_its_followers_are_told() -> None:
    cache, _ = _cache()
    leader = cache.lookup(CALL, Payer(), None)
    follower = cache.lookup(CALL, Payer(), None)
    provider = leader.provider(_Model(_Cut([["a"], ["b"]])))
    attempt = provider.open(CALL)
    with pytest.raises(UpstreamError), attempt:
        list(attempt.reads())
    continued = ChatCall("m", [*CALL.messages, {"role": "assistant", "content": "a"}], 64, 0.0, CALL.options)
    rescue = _Model(_Text([["b"]]))
    assert leader.provider(rescue).open(continued) is rescue.attempt, "a continuation is the model's, unrecorded"
    followed, got = follower.provider(_Model(_Text([["unused"]]))).open(CALL), []
    with pytest.raises(UpstreamError) as cut:
        got.extend(followed.reads())
    assert got == [["a"]] and cut.value.error_code == "upstream_interrupted", "what it had, then a cut reply"
    leader.finish()
    assert _state(cache) == MISS, "nothing kept"


def test_keys_share_one_cache_only_where_configured() -> None:
    first = ClientKey("first-secret-0123456789", "first")
    second = ClientKey("second-secret-0123456789", "second")
    for shared, expected in ((False, MISS), (True, HIT)):
        cache, _ = _cache(response_cache_shared=shared)
        _run(cache.lookup(CALL, Payer(first), None), _Model(_Text([["x"]])))
        assert _state(cache, key=second) == expected, shared


def test_a_key_that_churns_its_answers_evicts_its_own_not_the_others() -> None:
    answers = MemoryAnswers(Bounds(entries=100, bytes=1_000, ttl_seconds=60, key_bytes=300))
    answers.put("quiet", "other", b"q" * 100)
    for index in range(20):  # 100 bytes each: at most 3 of the busy key's at once
        answers.put(f"busy{index}", "busy", b"b" * 100)
    assert answers.get("quiet") == b"q" * 100, "the other key's answer stays"
    assert [answers.get(f"busy{index}") is not None for index in range(17, 20)] == [True] * 3
    assert answers.get("busy16") is None and answers.held() == (4, 400)
    assert answers.clear(scope="busy") == 3 and answers.held() == (1, 100)
    shared = MemoryAnswers(Bounds(entries=100, bytes=1_000, ttl_seconds=60, key_bytes=300))
    for index in range(5):
        shared.put(f"s{index}", "", b"s" * 100)
    assert shared.held() == (5, 500), "one cache shared across keys: only the whole is bounded"
