"""Cache-affine routing: a conversation's key, the ring, and the pool's bounded-load choice."""

from __future__ import annotations

import collections
import dataclasses

import gevent
import pytest

from app.config import ConfigError, load_settings
from app.providers.base import Route
from app.providers.pool.affinity import Ring, choose, key_of

from .test_pool import _ok, _pool
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
    assert load_settings(environ={}).upstream_affinity == 1.25


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
