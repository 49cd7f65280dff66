"""The admin API over an SQLite file (no Redis): keys created, listed, changed, rotated and
revoked by an admin key, working at once for clients; secrets shown once and never again (nor
in the log); the key file's keys read-only; an end user blocked or given limits of their own;
an admin key opens nothing else, and a client key not /v1/admin/."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
import respx

from app import build_app, close_app
from app.config import load_settings
from app.keystore import view as key_view

from ..conftest import CANARY_KEY, FAKE_MODEL, UNIT_UPSTREAM
from ..sse import upstream_reply

ADMIN = "admin-key-0123456789abcdef"
FILE_KEY = "file-key-0123456789abcdef"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def admin_app(tmp_path) -> Iterator:
    (tmp_path / "keys").write_text(f"{FILE_KEY} name=seeded rpm=5\n")
    settings = load_settings(environ={
        "OPENAI_BASE_URL": UNIT_UPSTREAM, "OPENAI_API_KEY": CANARY_KEY, "OPENAI_MODEL": FAKE_MODEL,
        "ALLOWED_MODELS": f"{FAKE_MODEL},other", "ADMIN_API_KEY": ADMIN, "DATA_DIR": str(tmp_path / "data"),
        "CHATWAIT_API_KEYS_FILE": str(tmp_path / "keys"),
    })  # fmt: skip
    application = build_app(settings)
    yield application
    close_app(application)


def _ask(client, key: str, user: str | None = None, model: str = FAKE_MODEL):
    headers = {"Authorization": f"Bearer {key}"} | ({"X-ChatWait-User": user} if user else {})
    return client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                       headers=headers)  # fmt: skip


@pytest.fixture
def upstream() -> Iterator[respx.MockRouter]:
    with respx.mock(using="httpx", assert_all_called=False) as router:
        router.post(f"{UNIT_UPSTREAM}/chat/completions").mock(
            side_effect=lambda request: httpx.Response(200, content=upstream_reply("Hello", " there."))
        )
        yield router


def test_a_key_made_by_the_admin_api_works_at_once_and_its_secret_is_shown_once(admin_app, upstream, caplog) -> None:
    client = admin_app.test_client()
    with caplog.at_level(logging.INFO):
        made = client.post("/v1/admin/keys", json={"name": "team", "rpm": 2, "users": {"rpm": 1}}, headers=AS_ADMIN)
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    secret, key_id = body["key"], body["id"]
    assert body["limits"] == {"rpm": 2} and body["users"] == {"rpm": 1} and body["source"] == "api"
    assert _ask(client, secret, "alice").status_code == 200
    refused = _ask(client, secret, "alice")
    assert refused.status_code == 429 and "(user_rpm)" in refused.get_json()["error"]["message"]
    listed = client.get("/v1/admin/keys", headers=AS_ADMIN).get_json()["data"]
    assert [(k["name"], k["source"]) for k in listed] == [("seeded", "file"), ("team", "api")]
    shown = json.dumps([listed, client.get(f"/v1/admin/keys/{key_id}", headers=AS_ADMIN).get_json()])
    assert secret not in shown and "digest" not in shown, "never a secret (nor its digest) after creation"
    audit = [r for r in caplog.records if r.getMessage() == "admin_action"]
    assert [(r.action, r.key_name, r.admin.startswith("admin-")) for r in audit] == [("create", "team", True)]
    assert secret not in caplog.text and ADMIN not in caplog.text


def test_changes_rotation_and_revocation_hold_at_once(admin_app, upstream, monkeypatch) -> None:
    client = admin_app.test_client()
    made = client.post("/v1/admin/keys", json={"name": "team", "models": ["other"]}, headers=AS_ADMIN).get_json()
    refused = _ask(client, made["key"])
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "model_not_allowed"
    changed = client.patch(f"/v1/admin/keys/{made['id']}", json={"models": None, "tpm": 1000}, headers=AS_ADMIN)
    assert changed.status_code == 200 and changed.get_json()["limits"] == {"tpm": 1000}
    assert _ask(client, made["key"]).status_code == 200, "the change holds at once"
    rotated = client.post(f"/v1/admin/keys/{made['id']}/rotate", json={"overlap_seconds": 60}, headers=AS_ADMIN)
    assert rotated.status_code == 200 and rotated.get_json()["rotating_until"] >= time.time() + 50
    new = rotated.get_json()["key"]
    assert _ask(client, new).status_code == 200 and _ask(client, made["key"]).status_code == 200, "both in the overlap"
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert _ask(client, made["key"]).status_code == 401, "the old secret ends with the overlap"
    assert _ask(client, new).status_code == 200
    monkeypatch.undo()
    assert client.delete(f"/v1/admin/keys/{made['id']}", headers=AS_ADMIN).get_json()["revoked_at"]
    assert _ask(client, new).status_code == 401, "revoked: no secret opens it"
    again = client.patch(f"/v1/admin/keys/{made['id']}", json={"rpm": 1}, headers=AS_ADMIN)
    assert again.status_code == 409 and "revoked" in again.get_json()["detail"]
    named = client.post("/v1/admin/keys", json={"name": made["name"]}, headers=AS_ADMIN)
    assert named.status_code == 409 and "revoked key is named" in named.get_json()["detail"], "the error says why"


def test_an_end_user_is_blocked_or_held_to_limits_of_their_own(admin_app, upstream) -> None:
    client = admin_app.test_client()
    made = client.post("/v1/admin/keys", json={"name": "team"}, headers=AS_ADMIN).get_json()
    path = f"/v1/admin/keys/{made['id']}/users/mallory@example.com"
    assert client.put(path, json={"blocked": True}, headers=AS_ADMIN).get_json()["overrides"] == 1
    blocked = _ask(client, made["key"], "mallory@example.com")
    assert blocked.status_code == 403 and blocked.get_json()["error"]["code"] == "end_user_blocked"
    assert _ask(client, made["key"], "alice").status_code == 200, "the key's other end users are served"
    client.put(path, json={"rpm": 1}, headers=AS_ADMIN)
    assert _ask(client, made["key"], "mallory@example.com").status_code == 200
    assert _ask(client, made["key"], "mallory@example.com").status_code == 429, "her own rpm"
    assert client.delete(path, headers=AS_ADMIN).get_json()["overrides"] == 0


def test_what_the_admin_api_refuses(admin_app) -> None:
    client = admin_app.test_client()
    assert client.get("/v1/admin/keys", headers={"Authorization": f"Bearer {FILE_KEY}"}).status_code == 401
    assert client.get("/v1/admin/keys").status_code == 401
    assert _ask(client, ADMIN).status_code == 401, "an admin key is not a client key"
    assert "admin key" in _ask(client, ADMIN).get_json()["error"]["message"]
    taken = client.post("/v1/admin/keys", json={"name": "seeded"}, headers=AS_ADMIN)
    assert taken.status_code == 409
    client.post("/v1/admin/keys", json={"name": "twice"}, headers=AS_ADMIN)
    assert client.post("/v1/admin/keys", json={"name": "twice"}, headers=AS_ADMIN).status_code == 409
    assert client.patch("/v1/admin/keys/file-seeded", json={"rpm": 1}, headers=AS_ADMIN).status_code == 409
    assert client.get("/v1/admin/keys/nope", headers=AS_ADMIN).status_code == 404
    for bad in ({"name": "x y"}, {"name": "ok", "rpm": 0}, {"name": "ok", "models": ["gpt-9"]}, {"name": "ok", "x": 1}):
        answer = client.post("/v1/admin/keys", json=bad, headers=AS_ADMIN)
        assert answer.status_code == 400 and answer.get_json()["error_code"] == "validation_error", bad


def test_keys_survive_a_restart_and_other_workers_see_changes_within_a_refresh(admin_app, tmp_path, upstream) -> None:
    client = admin_app.test_client()
    made = client.post("/v1/admin/keys", json={"name": "kept"}, headers=AS_ADMIN).get_json()
    settings = admin_app.extensions["chatwait"].settings
    other = build_app(settings)  # another worker (or the same one restarted) on the same file
    try:
        assert _ask(other.test_client(), made["key"]).status_code == 200, "kept in the file, read at start"
        client.delete(f"/v1/admin/keys/{made['id']}", headers=AS_ADMIN)
        view = other.extensions["chatwait"].client_keys.view
        assert view.find(_digest(made["key"])) is not None, "until it reads the store again"
        view.refresh()  # what its greenlet does every REFRESH_SECONDS
        assert _ask(other.test_client(), made["key"]).status_code == 401
        assert key_view.REFRESH_SECONDS <= 1.0
        rotated = client.post("/v1/admin/keys", json={"name": "fresh"}, headers=AS_ADMIN).get_json()["key"]
        time.sleep(key_view.MISS_SECONDS)
        assert _ask(other.test_client(), rotated).status_code == 200, "a new secret opens another worker at once"
    finally:
        close_app(other)


def _digest(secret: str) -> str:
    from app.config.keys import digest

    return digest(secret)


def test_managed_keys_and_end_users_of_their_own_are_bounded(admin_app, monkeypatch) -> None:
    from app.keystore import admin as key_admin

    monkeypatch.setattr(key_admin, "MAX_KEYS", 1)
    monkeypatch.setattr(key_admin, "MAX_OVERRIDES", 1)
    client = admin_app.test_client()
    made = client.post("/v1/admin/keys", json={"name": "one"}, headers=AS_ADMIN).get_json()
    refused = client.post("/v1/admin/keys", json={"name": "two"}, headers=AS_ADMIN)
    assert refused.status_code == 409 and "1 keys are kept" in refused.get_json()["detail"]
    users = f"/v1/admin/keys/{made['id']}/users"
    assert client.put(f"{users}/a", json={"rpm": 1}, headers=AS_ADMIN).status_code == 200
    assert client.put(f"{users}/a", json={"rpm": 2}, headers=AS_ADMIN).status_code == 200, "a change, not one more"
    assert client.put(f"{users}/b", json={"blocked": True}, headers=AS_ADMIN).status_code == 409


def test_a_record_the_view_cannot_read_leaves_the_last_view_and_it_reads_again_later(caplog) -> None:
    from app.keystore.record import StoredKey
    from app.keystore.view import KeyView

    good = StoredKey("k1", "one", "d" * 64, 1)

    class Store:
        def __init__(self) -> None:
            self.n, self.broken = 0, False

        def version(self) -> int:
            self.n += 1
            return self.n

        def all(self) -> list:
            if self.broken:
                raise ValueError("a record that is not JSON")
            return [good]

        def close(self) -> None:
            pass

    store = Store()
    view = KeyView(store, lambda key: key)
    assert view.find("d" * 64) is not None
    store.broken = True
    with caplog.at_level(logging.ERROR):
        view.refresh()
    assert view.find("d" * 64) is not None, "the last view stays"
    assert [r.getMessage() for r in caplog.records] == ["keys_unread"]
    store.broken = False
    view.refresh()
    assert view.record("k1") == good


def test_a_managed_keys_budget_over_unpriced_models_is_noted_in_ready(admin_app, upstream) -> None:
    """Issue 82: a budget counts only priced models (none is priced here); /ready's notes name a
    key made by the admin API with one, and forget it once it is revoked."""
    upstream.get(f"{UNIT_UPSTREAM}/models").mock(return_value=httpx.Response(200, json={"data": []}))
    client = admin_app.test_client()
    assert client.get("/ready").get_json()["notes"] == []
    made = client.post("/v1/admin/keys", json={"name": "spender", "budget_day": 1}, headers=AS_ADMIN).get_json()
    (note,) = client.get("/ready").get_json()["notes"]
    assert note.startswith("The key 'spender' has a budget, but fake-model, other have no price")
    assert client.delete(f"/v1/admin/keys/{made['id']}", headers=AS_ADMIN).get_json()["revoked_at"]
    assert client.get("/ready").get_json()["notes"] == []
