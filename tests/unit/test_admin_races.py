"""Two admins change one managed key at the same moment, each through a store of its own (as two
workers on one SQLite file, or two instances on one Redis): every pair of operations raced 100
times, and no change answered 200 is lost: a revoke stays a revoke, a rotation's secret opens
the key unless a later revoke closed it, a change of limits and a blocked end user are in the
record the store keeps."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from app.config.keys import digest
from app.connect.redis import Topology
from app.errors import ApiError
from app.keystore.admin import KeyAdmin
from app.keystore.record import BLOCKED, StoredKey
from app.keystore.redis import RedisKeys
from app.keystore.store import KeyStore, SqliteKeys
from app.keystore.view import KeyView
from harness.redis_servers import RedisServer

RACES = 100  # per pair of operations
OPERATIONS = ("change", "rotate", "revoke", "block")


def _admins(make: Callable[[], KeyStore]) -> Iterator[tuple[KeyAdmin, KeyAdmin]]:
    views = [KeyView(make(), lambda key: key) for _ in range(2)]
    yield KeyAdmin(views[0], ()), KeyAdmin(views[1], ())
    for view in views:
        view.close()


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this module's own, emptied before each test (each makes hundreds of keys)."""
    running = RedisServer()
    yield running
    running.stop()


@pytest.fixture(params=["sqlite", "redis"])
def admins(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[KeyAdmin, KeyAdmin]]:
    if request.param == "sqlite":
        yield from _admins(lambda: SqliteKeys(tmp_path))
    else:
        server = request.getfixturevalue("own_redis")
        redis.Redis.from_url(server.url).flushall()
        yield from _admins(lambda: RedisKeys(Topology.of(server.url)))


def _apply(admin: KeyAdmin, operation: str, key_id: str, n: int) -> Any:
    """One operation of the admin API; what it answered (an ApiError is an answer too)."""
    try:
        if operation == "change":
            return admin.change(key_id, {"rpm": 100 + n}, "race")
        if operation == "rotate":
            return admin.rotate(key_id, 3600, "race")[0]
        if operation == "revoke":
            return admin.revoke(key_id, "race")
        return admin.end_user(key_id, f"user-{n}", BLOCKED, "race")
    except ApiError as error:
        return error


def _kept(final: StoredKey, operation: str, n: int, answer: Any) -> bool:
    """Whether an operation answered as done is in the key the store keeps."""
    if isinstance(answer, ApiError):
        return answer.error_code == "key_busy" or (answer.error_code == "key_conflict" and final.revoked_at is not None)
    if operation == "change":
        return final.limits.get("rpm") in (100 + n, 100 + 1 - n)  # the other of a pair of changes may be later
    if operation == "rotate":
        return final.revoked_at is not None or digest(answer) in (final.digest, final.previous)
    if operation == "revoke":
        return final.revoked_at is not None and not final.digests(time.time())
    return final.overrides.get(f"user-{n}") == BLOCKED


def _at_once(admins: tuple[KeyAdmin, KeyAdmin], pair: tuple[str, ...], key_id: str) -> list[Any]:
    """Both operations of `pair` started at one moment, each by its own admin: their answers."""
    answers: list[Any] = [None, None]
    start = threading.Barrier(2)

    def run(i: int) -> None:
        start.wait()
        answers[i] = _apply(admins[i], pair[i], key_id, i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


@pytest.mark.parametrize("pair", list(itertools.combinations_with_replacement(OPERATIONS, 2)))
def test_no_change_is_lost_when_two_admins_change_one_key_at_once(admins, pair) -> None:
    lost: list[str] = []
    for race in range(RACES):
        _, made = admins[0].create({"name": f"race-{'-'.join(pair)}-{race}"}, "race")
        answers = _at_once(admins, pair, made.id)
        final = admins[0].view.store.get(made.id)
        assert final is not None
        for i in range(2):
            if not _kept(final, pair[i], i, answers[i]):
                lost.append(f"race {race}: {pair[i]} answered {answers[i]!r}, the key kept {final!r}")
        assert not any(isinstance(answer, ApiError) and answer.error_code == "key_not_found" for answer in answers)
    assert lost == [], f"{len(lost)} of {RACES} races lost a change: {lost[:3]}"


def test_a_revoked_key_stays_revoked_whatever_follows(admins) -> None:
    _, made = admins[0].create({"name": "gone"}, "t")
    admins[0].revoke(made.id, "t")
    for operation in OPERATIONS:
        answer = _apply(admins[1], operation, made.id, 1)
        assert isinstance(answer, ApiError) and answer.error_code == "key_conflict", (operation, answer)
    final = admins[1].view.store.get(made.id)
    assert final is not None and final.revoked_at is not None and final.digests(time.time()) == ()


def test_a_change_that_keeps_losing_is_refused_not_lost(admins, monkeypatch) -> None:
    """A store that never takes the write (another change always first): 409 key_busy, nothing kept."""
    _, made = admins[0].create({"name": "busy"}, "t")
    store = admins[0].view.store
    monkeypatch.setattr(store, "replace", lambda key: False)
    with pytest.raises(ApiError) as refused:
        admins[0].change(made.id, {"rpm": 7}, "t")
    assert refused.value.error_code == "key_busy"
    assert store.get(made.id).limits == {}
