"""Keys managed by the admin API on two instances x two workers sharing Redis: a key made on one
instance opens every worker of both, a change and a revocation hold everywhere, a rotation keeps
both secrets for its overlap only, an end user blocked on one instance is blocked on the other,
a revoke raced by a change on another instance (or worker, on SQLite) stays a revoke;
no answer and no log line ever shows a secret after its creation. Spend in Redis (one server, a
Cluster) adds up as in SQLite."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from app.connect.redis import Topology
from app.spend import store as spend_store
from app.spend.store import RedisSpend, Row, SqliteSpend
from harness.processes import ROOT, ChatWaitServer, FakeUpstream
from harness.redis_servers import Cluster

from ..conftest import FAKE_MODEL, admin_instances, server_env

pytestmark = pytest.mark.integration

ADMIN = "admin-redis-key-0123456789abcdef"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
TRIES = 8  # requests per instance: its two workers both answer some


@pytest.fixture(scope="module")
def instances(fake: FakeUpstream, redis_server) -> Iterator[list[ChatWaitServer]]:
    yield from admin_instances(fake, redis_server, ADMIN)


def _ask(url: str, key: str, user: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key}"} | ({"X-ChatWait-User": user} if user else {})
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "Hello @tokens=2"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30).status_code


def _everywhere(instances: list[ChatWaitServer], check: Callable[[str], bool], seconds: float = 10.0) -> None:
    """Wait until `check` holds for every request to every instance (each worker's view reads the
    store again within half a second of a change)."""
    deadline = time.monotonic() + seconds
    while not all(check(server.url) for server in instances for _ in range(TRIES)):
        assert time.monotonic() < deadline, "the change did not reach every worker"
        time.sleep(0.1)


def test_a_managed_key_holds_on_every_worker_of_every_instance(instances) -> None:
    first, second = (server.url for server in instances)
    made = httpx.post(f"{first}/v1/admin/keys", json={"name": "shared"}, headers=AS_ADMIN, timeout=10)
    assert made.status_code == 201, made.text
    secret, key_id = made.json()["key"], made.json()["id"]
    _everywhere(instances, lambda url: _ask(url, secret) == 200)
    listed = httpx.get(f"{second}/v1/admin/keys", headers=AS_ADMIN).json()["data"]
    assert "shared" in [k["name"] for k in listed], "made on one instance, listed on the other (Redis is shared)"
    blocked = httpx.put(f"{second}/v1/admin/keys/{key_id}/users/eve", json={"blocked": True}, headers=AS_ADMIN)
    assert blocked.status_code == 200
    _everywhere(instances, lambda url: _ask(url, secret, "eve") == 403 and _ask(url, secret, "bob") == 200)
    rotated = httpx.post(f"{second}/v1/admin/keys/{key_id}/rotate", json={"overlap_seconds": 2}, headers=AS_ADMIN)
    new = rotated.json()["key"]
    _everywhere(instances, lambda url: _ask(url, new) == 200)
    _everywhere(instances, lambda url: _ask(url, secret) == 401 and _ask(url, new) == 200)
    assert httpx.delete(f"{first}/v1/admin/keys/{key_id}", headers=AS_ADMIN).status_code == 200
    _everywhere(instances, lambda url: _ask(url, new) == 401)
    for server in instances:
        text = server.log_text()
        assert secret not in text and new not in text and ADMIN not in text
        assert '"event":"admin_action"' in text, "each instance made changes: each logged them"


def _rows() -> list[Row]:
    """Rows of days long past (the tests' Redis holds today's spend of other tests)."""
    return [
        Row("2001-01-27", "app", "alice@example.com", "m", 5, 1, 10, 2),
        Row("2001-01-28", "app", "", "m", 7, 1, 3, 4),
        Row("2001-01-27", "app", "alice@example.com", "m", 5, 1, 10, 2),
        Row("2001-01-28", "other", "bob", "n", 1, 1, 1, 1),
    ]


@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_spend_in_redis_adds_up_as_in_sqlite_on_one_server_and_a_cluster(
    kind: str, redis_server, tmp_path, monkeypatch
) -> None:
    cluster = Cluster() if kind == "cluster" else None
    url = cluster.env["REDIS_URL"] if cluster is not None else redis_server.url
    store = RedisSpend(Topology.of(url, (), "", cluster is not None))
    try:
        local = SqliteSpend(tmp_path)
        for found in (store, local):
            found.add(_rows()[:2])
            found.add(_rows()[2:])
        assert store.rows("2001-01-27", "2001-01-28") == local.rows("2001-01-27", "2001-01-28")
        assert len(store.rows("2001-01-27", "2001-01-28")) == 3, "alice's two rows are one"
        assert store.rows("2001-01-28", "2001-01-28", "other") == local.rows("2001-01-28", "2001-01-28", "other")
        assert store.rows("2001-01-01", "2001-01-26") == []
        monkeypatch.setattr(spend_store, "MAX_ROWS_A_DAY", 1)
        for found in (store, local):
            found.add([Row("2001-02-01", "app", user, "m", 1, 1, 1, 1) for user in ("a", "b", "c", "a")])
        capped = store.rows("2001-02-01", "2001-02-01")
        assert capped == local.rows("2001-02-01", "2001-02-01")
        assert [(row.user, row.requests) for row in capped] == [("(other end users)", 2), ("a", 2)]
    finally:
        store.close()
        if cluster is not None:
            cluster.stop()


HTTP_RACES = 25  # per pair, over HTTP (the unit test races every pair 100 times through two stores)


def _race(urls: tuple[str, str], other: str, n: int) -> tuple[str, httpx.Response, httpx.Response]:
    """A revoke on one instance (or worker) at the moment of `other` on the other: the new key's
    secret and both answers."""
    made = httpx.post(f"{urls[0]}/v1/admin/keys", json={"name": f"race-{other}-{n}"}, headers=AS_ADMIN, timeout=10)
    assert made.status_code == 201, made.text
    key = f"/v1/admin/keys/{made.json()['id']}"
    sent = {"headers": AS_ADMIN, "timeout": 10}
    requests = {
        "change": lambda url: httpx.patch(f"{url}{key}", json={"rpm": 77}, **sent),
        "rotate": lambda url: httpx.post(f"{url}{key}/rotate", json={"overlap_seconds": 60}, **sent),
        "block": lambda url: httpx.put(f"{url}{key}/users/eve", json={"blocked": True}, **sent),
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        revoked = pool.submit(lambda: httpx.delete(f"{urls[0]}{key}", headers=AS_ADMIN, timeout=10))
        changed = pool.submit(requests[other], urls[1])
        return made.json()["key"], revoked.result(), changed.result()


def _races_lose_no_revoke(urls: tuple[str, str]) -> None:
    secrets_out: list[str] = []
    for other in ("change", "rotate", "block"):
        for n in range(HTTP_RACES):
            secret, revoked, changed = _race(urls, other, n)
            assert revoked.status_code == 200, revoked.text
            assert changed.status_code == 200 or changed.json()["error_code"] == "key_conflict", changed.text
            rotated = other == "rotate" and changed.status_code == 200
            secrets_out += [secret, *([changed.json()["key"]] if rotated else [])]
    time.sleep(1.0)  # every worker's view read again
    tries = [(url, s) for s in secrets_out for url in urls for _ in range(2)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        opened = [s for (_, s), status in zip(tries, pool.map(lambda t: _ask(*t), tries), strict=True) if status != 401]
    assert opened == [], f"{len(opened)} secrets of revoked keys still open them"


def test_a_revoke_raced_by_any_change_stays_a_revoke_across_instances(instances) -> None:
    _races_lose_no_revoke((instances[0].url, instances[1].url))


def test_a_revoke_raced_by_any_change_stays_a_revoke_across_workers_on_sqlite(fake: FakeUpstream, tmp_path) -> None:
    server = ChatWaitServer(server_env(fake.base_url, ADMIN_API_KEY=ADMIN, DATA_DIR=str(tmp_path), WEB_CONCURRENCY="2"))
    try:
        _races_lose_no_revoke((server.url, server.url))
    finally:
        server.stop()


def test_a_move_to_redis_and_back_keeps_managed_keys_and_spend(fake: FakeUpstream, redis_server, tmp_path) -> None:
    """The operator's finding: STREAM_STORE=redis on an instance whose keys were made through the
    admin API answered 401 to all of them, and the spend history was gone. The first start on
    Redis moves DATA_DIR's keys and spend into it (once); `python -m app.service.moving to-file`
    moves them back. The budgets' counters start from the moved spend, the key's and its end
    user's."""
    (tmp_path / "upstreams.yaml").write_text(
        f"upstreams:\n  - {{name: fake, url: {fake.base_url!r}}}\n"
        f"prices: {{{FAKE_MODEL}: {{input: 100, output: 1000}}}}\n"
    )
    env = server_env(
        "", ADMIN_API_KEY=ADMIN, DATA_DIR=str(tmp_path / "data"), UPSTREAMS_FILE=str(tmp_path / "upstreams.yaml")
    )
    on_file = ChatWaitServer(env)
    try:
        asked = {"name": f"moved-{time.time_ns()}", "budget_day": 5, "users": {"budget_month": 1}}
        made = httpx.post(f"{on_file.url}/v1/admin/keys", json=asked, headers=AS_ADMIN)
        secret, name = made.json()["key"], made.json()["name"]
        assert [_ask(on_file.url, secret, "alice") for _ in range(3)] == [200] * 3
        time.sleep(1.5)  # the spend is written once a second
        spent = _budget(on_file.url, secret)
        assert spent > 0
    finally:
        on_file.stop()

    def requests_of(url: str) -> int:
        report = httpx.get(f"{url}/v1/admin/spend", params={"key": name}, headers=AS_ADMIN, timeout=10).json()
        return sum(entry["requests"] for entry in report["data"])

    on_redis = {**env, "STREAM_STORE": "redis", "REDIS_URL": redis_server.url, "WEB_CONCURRENCY": "2"}
    alices = spent  # all of it was alice's
    for _ in range(2):  # moved once: a second start adds nothing again
        moved = ChatWaitServer(on_redis)
        try:
            assert _budget(moved.url, secret) == pytest.approx(spent, abs=1e-9), "the budget spent as before"
            month = time.strftime("%Y-%m", time.gmtime())
            alice = redis_server.client().get(f"chatwait:limits:{{{name}}}:u:alice:spent:{month}")
            assert int(alice) == round(alices * 1e9), "and the end user's, held to a month's budget"
            assert [_ask(moved.url, secret) for _ in range(4)] == [200] * 4, "every worker opens the moved key"
            assert requests_of(moved.url) >= 3, "the spend came along"
            moves = [r for r in moved.log_records() if r.get("event") in ("keys_moved", "spend_moved")]
            spent = _budget(moved.url, secret)  # a second start moves nothing again: it finds this
        finally:
            moved.stop()
    assert moves == [], "the second start moved nothing"
    assert requests_of_file(tmp_path, on_redis, name) >= 7


def _budget(url: str, secret: str) -> float:
    """What the key spent today, by its budget, once nothing it ran holds a reservation."""
    deadline = time.monotonic() + 10
    while True:
        found = httpx.get(f"{url}/v1/spend", headers={"Authorization": f"Bearer {secret}"}, timeout=10).json()
        if found["budgets"]["budget_day"]["reserved_usd"] == 0:
            return found["budgets"]["budget_day"]["spent_usd"]
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def requests_of_file(tmp_path, on_redis: dict[str, str], name: str) -> int:
    """Move Redis's keys and spend into a new DATA_DIR, start there on the memory store: the key's requests."""
    back = {**on_redis, "DATA_DIR": str(tmp_path / "back")}
    done = subprocess.run([sys.executable, "-m", "app.service.moving", "to-file"], env={**os.environ, **back},
                          capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    on_file = ChatWaitServer({**back, "STREAM_STORE": "memory", "WEB_CONCURRENCY": "1"})
    try:
        report = httpx.get(f"{on_file.url}/v1/admin/spend", params={"key": name}, headers=AS_ADMIN, timeout=10)
        keys = httpx.get(f"{on_file.url}/v1/admin/keys", headers=AS_ADMIN, timeout=10).json()["data"]
        assert name in [key["name"] for key in keys], "the key came back"
        return sum(entry["requests"] for entry in report.json()["data"])
    finally:
        on_file.stop()
