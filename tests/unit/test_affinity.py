"""Cache-affine routing: a conversation's key, the ring, and the pool's bounded-load choice."""

from __future__ import annotations

import collections
import dataclasses

import gevent
import pytest

from app.config import ConfigError, load_settings
from app.providers.call import Route
from app.providers.pool.affinity import Ring, choose, key_of

from .test_pool import Clock, _ok, _pool
from .test_relay import CALL

SYSTEM = {"role": "system", "content": "You are terse."}


def _turns(first: str, n: int, reply: str = "answer") -> list[dict]:
    """The messages of turn `n` of a conversation that began with `first` (its replies `reply` N)."""
    messages = [SYSTEM, {"role": "user", "content": first}]
    for turn in range(1, n):
        messages += [{"role": "assistant", "content": f"{reply} {turn}"}, {"role": "user", "content": f"more {turn}"}]
    return messages


def _key(messages: list[dict], **options: str) -> str | None:
    return key_of(dataclasses.replace(CALL, messages=messages, options=options))


ONGOING = dataclasses.replace(CALL, messages=_turns("rivers", 2))  # a conversation at its second turn


def test_a_conversation_keeps_its_key_from_its_second_turn_and_another_has_its_own() -> None:
    keys = {_key(_turns("rivers", n)) for n in range(2, 7)}
    assert len(keys) == 1 and None not in keys
    assert _key(_turns("mountains", 2)) not in keys
    assert _key(_turns("rivers", 1)) is None, "a first turn: no history in any cache, least outstanding"
    assert _key(_turns("rivers", 1), prompt_cache_key="conv-7") == "key:conv-7"
    # Conversations that begin alike part at their first reply, and one user's two chats are two.
    assert _key(_turns("Hi", 3, "Hello!")) != _key(_turns("Hi", 3, "Hi there."))
    assert _key(_turns("rivers", 3), user="u1") not in (_key(_turns("rivers", 3), user="u2"), _key(_turns("rivers", 3)))
    assert _key(_turns("rivers", 2), prompt_cache_key="conv-7") == "key:conv-7"
    # Claude Code's session (Messages metadata.user_id): its turns keep one key.
    session = {"user": "user_x_account_y_session_z"}
    assert len({_key(_turns("fix the bug", n), **session) for n in range(2, 7)}) == 1
    greeting = [SYSTEM, {"role": "assistant", "content": "How can I help?"}, {"role": "user", "content": "rivers"}]
    assert _key(greeting) is None, "a greeting before the question is no reply"
    assert _key([*greeting, {"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]) is not None


def test_the_ring_spreads_keys_by_weight_and_moves_few_when_a_server_leaves() -> None:
    pool, _, _ = _pool(urls="http://a/v1,http://b/v1,http://c/v1")
    ring = Ring(pool.servers)
    firsts = {f"k{n}": ring.order(f"k{n}")[0].name for n in range(3000)}
    shares = collections.Counter(firsts.values())
    assert set(shares) == {"a", "b", "c"} and min(shares.values()) > 700, shares
    assert all(len(ring.order(key)) == 3 for key in list(firsts)[:50])
    smaller = Ring(pool.servers[:2])
    moved = sum(1 for key, name in firsts.items() if name != "c" and smaller.order(key)[0].name != name)
    assert moved == 0, "only the keys of the server that left move"


def test_a_busy_servers_keys_spill_to_the_next_on_the_ring_within_the_bound() -> None:
    """Its share rounded up: an idle server, or one a request ahead of the other, keeps its keys."""
    pool, _, _ = _pool()
    ring = Ring(pool.servers)
    home, second = ring.order("hot")
    for held, chosen in (
        ((0, 0), home),
        ((1, 0), home),
        ((2, 0), second),
        ((2, 1), home),
        ((3, 1), home),
        ((3, 0), second),
    ):
        home.outstanding, second.outstanding = held
        assert choose(ring, "hot", pool.servers, 1.25) is chosen, held
    home.outstanding, second.outstanding = 5, 4
    assert choose(ring, "hot", pool.servers, 1.25) is home, "6 of 10 within 1.25 times the half, rounded up"


def test_the_pool_keeps_a_conversation_on_one_server_and_spreads_a_hot_one() -> None:
    pool, providers, _ = _pool(urls="http://a/v1,http://b/v1,http://c/v1")
    for provider in providers.values():
        provider.script = [_ok() for _ in range(50)]
    calls = [dataclasses.replace(CALL, messages=_turns(f"topic {n}", 2)) for n in range(12)]
    homes = {pool.route(call.model, pool.affinity(call)).server for call in calls}
    assert len(homes) > 1, "conversations are spread"
    call = calls[0]
    key = pool.affinity(call)
    home = pool.route(call.model, key).server
    assert {pool.route(call.model, key).server for _ in range(20)} == {home}, "idle: always its server"
    held = [pool.open(call, None, pool.route(call.model, key)) for _ in range(9)]
    spread = collections.Counter(generation.server.name for generation in held)
    assert set(spread) == {"a", "b", "c"} and max(spread.values()) <= 4, spread  # ceil(1.25 times the average)
    for generation in held:
        generation.close()


def test_a_rescue_and_a_takeover_go_where_the_cache_is() -> None:
    pool, _, _ = _pool(urls="http://a/v1,http://b/v1,http://c/v1")
    key = pool.affinity(ONGOING)
    home = pool.route(ONGOING.model, key).server
    taken_over = Route(affinity=key)  # a worker that died: another continues, with no server yet
    pool.continuation(ONGOING.model, taken_over)
    assert taken_over.server == home
    cut = Route(home, affinity=key)  # its server broke the reply: the next one on the ring
    pool.continuation(ONGOING.model, cut)
    assert cut.server == Ring(pool.servers).order(key)[1].name


def test_affinity_off_or_a_lone_server_needs_no_key() -> None:
    pool, _, _ = _pool(UPSTREAM_AFFINITY="0")
    assert pool.affinity(ONGOING) is None
    pool, _, _ = _pool(urls="http://a/v1")
    assert pool.affinity(ONGOING) is None


def test_a_bound_under_the_average_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match=r"UPSTREAM_AFFINITY=0.5 is out of range: use 0 \(off\) or 1 to 100"):
        load_settings(environ={"UPSTREAM_AFFINITY": "0.5"})
    assert load_settings(environ={}).upstream.upstream_affinity == 1.25


def test_a_conversation_waits_for_its_busy_server_within_the_bound_then_spills() -> None:
    """Servers that take one request at a time: a request whose server is busy waits here for it
    (its cache is worth a short queue) while that server's running and waiting requests stay
    within the bound; past it, a free server takes it at once."""
    pool, providers, _ = _pool()
    for provider in providers.values():
        provider.script = [_ok() for _ in range(5)]
    for server in pool.servers:
        server.slots = 1
    key = pool.affinity(ONGOING)
    home, other = Ring(pool.servers).order(key)
    running = pool.open(ONGOING, None, pool.route(ONGOING.model, key))
    assert running.server is home
    route = pool.route(ONGOING.model, key)
    assert route.server is None, "its server is busy: admitted, to wait for room"
    waiting = gevent.spawn(pool.open, CALL, None, route)
    gevent.sleep(0.01)
    assert not waiting.ready() and home.waiting == 1 and other.outstanding == 0
    spilled = pool.open(ONGOING, None, pool.route(ONGOING.model, key))  # 2 of 3 would be home's: over ceil(1.25 x 1.5)
    assert spilled.server is other and home.waiting == 1
    running.close()
    assert waiting.get(timeout=1).server is home and home.waiting == 0
    for generation in (spilled, waiting.get()):
        generation.close()


def test_a_later_turn_goes_to_the_server_that_answered_the_first_whatever_the_ring_says() -> None:
    """The first turn goes to the least busy server; the pool remembers it under the key the next
    turn will have, so the second turn (and every later one) goes back there while it is usable
    and within the bound."""
    pool, _, clock = _pool(urls="http://a/v1,http://b/v1,http://c/v1")
    first = dataclasses.replace(CALL, messages=_turns("rivers", 1))
    assert pool.affinity(first) is None, "a first turn has no key: least outstanding"
    second = dataclasses.replace(CALL, messages=[*_turns("rivers", 1), *_turns("rivers", 2)[2:]])
    key = pool.affinity(second)
    ringed = Ring(pool.servers).order(key)
    answered_on = ringed[2].name  # the ring would send the second turn elsewhere
    pool.answered(first, Route(answered_on), "answer 1", [])
    assert pool.route(CALL.model, key).server == answered_on
    third = dataclasses.replace(CALL, messages=_turns("rivers", 3))
    assert pool.route(CALL.model, pool.affinity(third)).server == answered_on, "the same key on every turn"
    busy = pool._by_name[answered_on]
    busy.outstanding = 5  # over the bound: the ring's choice, within it
    assert pool.route(CALL.model, key).server != answered_on
    busy.outstanding = 0
    busy.health.state, busy.health.rest_until = "resting", clock.now + 5
    assert pool.route(CALL.model, key).server != answered_on, "a resting server is not waited for"
    busy.health.state = "healthy"
    pool.answered(third, Route(ringed[0].name), "answer 3", [])
    assert pool.route(CALL.model, key).server == ringed[0].name, "it follows where the latest turn ran"


def test_a_first_reply_with_tool_calls_is_known_again_however_its_api_sends_it_back() -> None:
    """The next turn sends the reply back as its API writes it: arguments parsed and written again
    (the Messages API), text with edges trimmed: the key is the same."""
    from app.providers.deltas import ToolCall

    pool, _, _ = _pool()
    asked = [SYSTEM, {"role": "user", "content": "Weather in Oslo?"}]
    sent_back = {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"a": "x", "b": 1}'}}],
    }
    result = {"role": "tool", "tool_call_id": "c1", "content": "5"}
    later = dataclasses.replace(CALL, messages=[*asked, sent_back, result])
    elsewhere = Ring(pool.servers).order(pool.affinity(later))[1].name  # not where the ring would send it
    calls = [ToolCall("c1", "w", '{"b":1,"a":"x"}')]
    pool.answered(dataclasses.replace(CALL, messages=asked), Route(elsewhere), "Let me look. ", calls)
    assert pool.route(CALL.model, pool.affinity(later)).server == elsewhere


def test_what_a_worker_remembers_is_bounded_and_expires() -> None:
    from app.providers.pool.remembered import TTL_SECONDS, Remembered

    clock = Clock()
    remembered = Remembered(clock, entries=3)
    for n in range(5):
        remembered.keep("m", f"k{n}", "a")
    assert [remembered.find("m", f"k{n}") for n in range(5)] == [None, None, "a", "a", "a"], "the oldest go"
    assert remembered.find("other-model", "k4") is None, "per model"
    clock.now += TTL_SECONDS
    assert remembered.find("m", "k4") is None, "expired"


def test_workers_share_where_conversations_ran_through_redis_and_route_without_it() -> None:
    """Two workers on one Redis: what one learns, the other finds. With Redis stopped, routing
    does not wait on it: each worker goes on with its own memory (and the ring)."""
    from app.connect.redis import Topology
    from app.providers.pool.remembered import SharedRemembered
    from harness.redis_servers import RedisServer

    server = RedisServer()
    try:
        topology = Topology.of(server.url, "", "", False)
        one, two = SharedRemembered(topology), SharedRemembered(topology)
        one.keep("m", "conversation", "b")
        assert two.find("m", "conversation") == "b" and two.find("m", "another") is None
        server.kill()
        one.keep("m", "later", "a")  # Redis gone: kept here, not shared
        assert one.find("m", "later") == "a" and two.find("m", "later") is None
        assert two.find("m", "conversation") == "b", "what a worker learned stays in its memory"
        for remembered in (one, two):
            remembered.close()
    finally:
        server.stop()
