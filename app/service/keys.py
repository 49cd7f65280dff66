"""Client keys as the service keeps them: those of CHATWAIT_API_KEYS and its file, and (with
ADMIN_API_KEY) those managed by the admin API (`keystore`); SHA-256 digests, each with the key's
name and limits, never the keys themselves. An admin key opens none of the client's endpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from ..accounts.payer import Payer
from ..config import ClientKey
from ..config.keys import EndUserLimits, digest
from ..errors import ApiError
from ..keystore.admin import KeyAdmin
from ..keystore.record import BLOCKED
from ..keystore.view import KeyView

_SCHEME = "bearer "


class ClientKeys:
    """The digests of the keys clients may present, and what each key is (its name and limits)."""

    def __init__(self, keys: Iterable[ClientKey], view: KeyView | None = None, admin_keys: Iterable[str] = ()) -> None:
        # The key itself is dropped: an entry keeps its digest's place, its name and its limits.
        self._entries = {digest(entry.key): dataclasses.replace(entry, key="") for entry in keys}
        self._names = {entry.name: entry for entry in self._entries.values()}
        self.view = view  # the managed keys (None: no admin API)
        self.managed = None if view is None else KeyAdmin(view, tuple(self._entries.values()))
        self._admin = frozenset(digest(key) for key in admin_keys)

    def every_key(self) -> list[ClientKey]:
        """Every key clients may use now (the key file's and the environment's, the managed ones
        not revoked), without their secrets."""
        view, mine = self.view, list(self._entries.values())
        if view is None:
            return mine
        live = [view.key(record.id) for record in view.records() if record.revoked_at is None]
        return mine + [key for key in live if key is not None]

    @property
    def enabled(self) -> bool:
        """Whether the API asks for a key."""
        return bool(self._entries) or self.view is not None

    def admin(self, authorization: str | None) -> str:
        """The name of the admin key in an Authorization header (what the audit log says:
        `admin-` and the start of its digest); ApiError(invalid_api_key) otherwise."""
        found = _digest_of(authorization)
        if found not in self._admin:
            raise ApiError("invalid_api_key", "/v1/admin/ asks for an admin key (ADMIN_API_KEY) as a Bearer token.")
        return "admin-" + found[:8]

    def named(self, name: str) -> ClientKey | None:
        """A key by its name (None: none, or revoked)."""
        found = self._names.get(name)
        if found is None and self.view is not None:
            record = self.view.named(name)
            found = None if record is None or record.revoked_at is not None else self.view.key(record.id)
        return found

    def name_of(self, digest: str) -> str | None:
        """The name of the key whose secret has this digest (None: no key, or one no longer known)."""
        entry = self._entries.get(digest)
        if entry is not None:
            return entry.name
        return None if self.view is None else self.view.name_of(digest)

    @staticmethod
    def check_model(key: ClientKey, model: str) -> None:
        """ApiError(model_not_allowed) when `key` may not ask for `model`."""
        if key.models and model not in key.models:
            detail = f"The key {key.name!r} may use {', '.join(key.models)}; not {model[:80]!r}."
            raise ApiError("model_not_allowed", detail)

    def resolve(self, payer: Payer, refuse_blocked: bool = True) -> Payer:
        """Who pays for a request of `payer`'s key for its end user: the end user held to their own
        limits, else the key's defaults for its end users (none: the key alone is counted);
        ApiError(end_user_blocked) when the operator blocked them on the key (`refuse_blocked`;
        else the key's defaults)."""
        key, user = payer.key, payer.user
        if key is None or user is None:
            return payer
        record = None if self.view is None else self.view.named(key.name)
        override = None if record is None else record.override(user)
        if override == BLOCKED:
            if refuse_blocked:
                detail = f"The end user {user[:80]!r} is blocked on the key {key.name!r}."
                raise ApiError("end_user_blocked", detail)
            override = None
        return Payer(key, user, override if isinstance(override, EndUserLimits) else key.users)

    def revived(self, record: dict[str, Any]) -> Payer:
        """The payer a stream's revival record names (`Payer.record`), as it is now: its key's
        limits and its end user's, blocked since or not (what it generates was asked for)."""
        key = self.named(str(record.get("key")))
        user = record.get("user")
        return self.resolve(Payer(key, user if isinstance(user, str) else None), refuse_blocked=False)

    def start(self) -> None:
        """Follow the managed keys' changes."""
        if self.view is not None:
            self.view.start()

    def close(self) -> None:
        if self.view is not None:
            self.view.close()

    def identify(self, authorization: str | None) -> tuple[str, ClientKey]:
        """The digest of the key in an Authorization header and what that key is;
        ApiError(invalid_api_key) otherwise."""
        found = _digest_of(authorization)
        entry = self._entries.get(found)  # a lookup by digest leaks nothing about the keys
        if entry is None and self.view is not None:
            managed = self.view.find(found)
            entry = None if managed is None else managed[0]
        if entry is None:
            if found in self._admin:
                detail = "That is an admin key (ADMIN_API_KEY): it opens /v1/admin/ alone. Send a client key."
                raise ApiError("invalid_api_key", detail)
            raise ApiError("invalid_api_key", "The key in the Authorization header is not one of this service's keys.")
        return found, entry


def _digest_of(authorization: str | None) -> str:
    """The digest of the Bearer key in an Authorization header; ApiError(invalid_api_key) without one."""
    if authorization is None or not authorization.lower().startswith(_SCHEME):
        raise ApiError("invalid_api_key", "The request has no Authorization: Bearer header.")
    return digest(authorization[len(_SCHEME) :].strip())
