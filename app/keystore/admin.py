"""What the admin API does to keys: create one (its secret shown once, kept only as a digest),
list and read them (never a secret), change limits, budgets, models and end-user defaults,
rotate (the old secret valid beside the new one for an overlap), revoke, and block or limit one
end user. Keys of the key file are listed, read-only. Every change is one `admin_action` line on
the audit log (who, what, which key: never a secret), and holds on this worker at once and on
every other within REFRESH_SECONDS."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from ..config import ClientKey
from ..config.keys import digest
from ..errors import ApiError
from ..ids import random_id
from .record import BLOCKED, KEY_LIMITS, StoredKey
from .view import KeyView

log = logging.getLogger("chatwait.audit")

MAX_KEYS = 1_000  # managed keys (a key's name is a metric label)
MAX_OVERRIDES = 10_000  # end users with limits of their own, per key
SECRET_PREFIX = "cw-"
WRITE_TRIES = 8  # a change read and made again when another came first


class KeyAdmin:
    """The admin API's operations over the keys (see the module)."""

    def __init__(self, view: KeyView, file_keys: tuple[ClientKey, ...]) -> None:
        self.view = view
        self._file = {key.name: key for key in file_keys}

    def create(self, fields: dict[str, Any], who: str) -> tuple[str, StoredKey]:
        """A new key from validated `fields` (name, limits, pays, cache, users, models): its secret (shown
        once) and its record. key_conflict when its name is taken or the keys are at MAX_KEYS."""
        name = fields["name"]
        if name in self._file or len(self.view.records()) >= MAX_KEYS:
            raise _conflict(f"A key is named {name!r} already." if name in self._file else f"{MAX_KEYS} keys are kept.")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        record = StoredKey(random_id(), name, digest(secret), int(time.time()), **_settings(fields))
        if not self.view.store.add(record):
            self.view.refresh()
            taken = self.view.named(name)
            if taken is not None and taken.revoked_at is not None:
                raise _conflict(
                    f"A revoked key is named {name!r}: a name stays with the spend it made (the spend report and "
                    "the budgets count by name), so it is not given again. Choose another name."
                )
            raise _conflict(f"A key is named {name!r} already.")
        return secret, self._done(who, "create", record)

    def listed(self) -> list[dict[str, Any]]:
        """Every key as the API shows it: the key file's first, then the managed ones."""
        return [*(_file_view(key) for key in self._file.values()), *(r.public() for r in self.view.records())]

    def shown(self, key_id: str) -> dict[str, Any]:
        """One key as the API shows it."""
        found = next((_file_view(key) for key in self._file.values() if _file_id(key) == key_id), None)
        return found if found is not None else self._found(key_id).public()

    def change(self, key_id: str, fields: dict[str, Any], who: str) -> StoredKey:
        """New limits, budgets, `pays`, `cache`, end-user defaults or models (those given; null clears one)."""
        changed = self._update(key_id, lambda record: record.revised(**_settings(fields, base=record)))
        return self._done(who, "change", changed, fields=sorted(fields))

    def rotate(self, key_id: str, overlap_seconds: float, who: str) -> tuple[str, StoredKey]:
        """A new secret; the current one opens the key too for `overlap_seconds` more."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        until = time.time() + overlap_seconds
        rotated = self._update(
            key_id, lambda record: record.revised(digest=digest(secret), previous=record.digest, previous_until=until)
        )
        return secret, self._done(who, "rotate", rotated, overlap_seconds=overlap_seconds)

    def revoke(self, key_id: str, who: str) -> StoredKey:
        """No secret opens the key any more (its record stays, for the spend it made)."""
        revoked = self._update(key_id, lambda record: record.revised(revoked_at=int(time.time()), previous=None))
        return self._done(who, "revoke", revoked)

    def end_user(self, key_id: str, user: str, override: dict[str, Any] | str | None, who: str) -> StoredKey:
        """Block one end user of the key (BLOCKED), hold them to limits of their own, or (None)
        give them back the key's end-user defaults."""

        def overridden(record: StoredKey) -> StoredKey:
            overrides = dict(record.overrides)
            if override is None:
                overrides.pop(user, None)
            else:
                if user not in overrides and len(overrides) >= MAX_OVERRIDES:
                    raise _conflict(f"The key holds {MAX_OVERRIDES} end users of its own already: clear one first.")
                overrides[user] = override
            return record.revised(overrides=overrides)

        action = "unblock" if override is None else "block" if override == BLOCKED else "limit_user"
        return self._done(who, action, self._update(key_id, overridden))

    def _update(self, key_id: str, revise: Callable[[StoredKey], StoredKey]) -> StoredKey:
        """The key's next revision, made by `revise` from the record the store holds and kept only
        if no other change came between (else read and made again, up to WRITE_TRIES times)."""
        for _ in range(WRITE_TRIES):
            revised = revise(self._found(key_id, changing=True))
            if self.view.store.replace(revised):
                return revised
        raise ApiError("key_busy", f"The key changed {WRITE_TRIES} times while this change was made.")

    def _found(self, key_id: str, changing: bool = False) -> StoredKey:
        """The key as the store holds it when `changing`, else as this worker's view has it."""
        if changing:
            found = self.view.store.get(key_id)
        else:
            self.view.refresh()
            found = self.view.record(key_id)
        if found is not None and not (changing and found.revoked_at is not None):
            return found
        if changing and any(_file_id(key) == key_id for key in self._file.values()):
            raise _conflict("This key comes from CHATWAIT_API_KEYS_FILE: change it there (and reload with SIGHUP).")
        if found is not None:
            raise _conflict("This key is revoked: create another.")
        raise ApiError("key_not_found", f"No key {key_id[:80]!r} is managed here.")

    def _done(self, who: str, action: str, record: StoredKey, **said: Any) -> StoredKey:
        """The change's audit line, and this worker's view of the keys read again."""
        log.info(
            "admin_action", extra={"admin": who, "action": action, "key_id": record.id, "key_name": record.name, **said}
        )
        self.view.refresh()
        return record


def _settings(fields: dict[str, Any], base: StoredKey | None = None) -> dict[str, Any]:
    """A record's settings from validated fields, over `base`'s (null clears a limit)."""
    limits = dict(base.limits) if base is not None else {}
    for name in KEY_LIMITS:
        if name in fields:
            limits.pop(name, None)
            if fields[name] is not None:
                limits[name] = fields[name]
    found: dict[str, Any] = {"limits": limits}
    if "pays" in fields or base is None:
        found["pays"] = fields.get("pays") or "generated"
    for switch in ("cache", "cache_unsampled"):
        if switch in fields:
            found[switch] = fields[switch]
    if "users" in fields:
        found["users"] = fields["users"] or None
    if "models" in fields:
        found["models"] = tuple(fields["models"] or ())
    return found


def _file_id(key: ClientKey) -> str:
    return f"file-{key.name}"


def _file_view(key: ClientKey) -> dict[str, Any]:
    """A key of the key file as the API shows it (read-only)."""
    limits = {
        name: getattr(key, name) for name in ("max_streams", "rpm", "tpm", "max_sockets", "budget_day", "budget_month")
    }
    users = None if key.users is None else {k: v for k, v in dataclasses.asdict(key.users).items() if v is not None}
    return {
        "id": _file_id(key),
        "object": "key",
        "name": key.name,
        "source": "file",
        "created_at": None,
        "revoked_at": None,
        "rotating_until": None,
        "limits": {name: value for name, value in limits.items() if value is not None},
        "pays": key.pays,
        "cache": key.cache,
        "cache_unsampled": key.cache_unsampled,
        "users": users,
        "models": list(key.models),
        "overrides": 0,
    }


def _conflict(detail: str) -> ApiError:
    return ApiError("key_conflict", detail)
