"""A managed key as the store keeps it: its id and name, the digest of its secret (and, after a
rotation, the old one's until the overlap ends), its limits, budgets, allowed models and end-user
defaults, whether the response cache keeps its answers, each end user's override (other limits,
or blocked), when it was made and revoked."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import orjson

from ..config import ClientKey
from ..config.keys import EndUserLimits

KEY_LIMITS = ("max_streams", "rpm", "tpm", "max_sockets", "budget_day", "budget_month")
USER_LIMITS = ("max_streams", "rpm", "tpm", "budget_day", "budget_month")
BLOCKED = "blocked"  # an override that refuses the end user


@dataclasses.dataclass(frozen=True)
class StoredKey:
    """One managed key (see the module)."""

    id: str
    name: str
    digest: str
    created_at: int
    limits: dict[str, Any] = dataclasses.field(default_factory=dict)  # of KEY_LIMITS
    pays: str = "generated"
    cache: bool | None = None  # its answers kept by the response cache (None: RESPONSE_CACHE says)
    cache_unsampled: bool | None = None  # requests naming no sampling replayed (None: the setting says)
    users: dict[str, Any] | None = None  # of USER_LIMITS: what each end user is held to
    models: tuple[str, ...] = ()  # the models it may ask for (none: every allowed model)
    previous: str | None = None  # a rotated-out secret's digest, valid until `previous_until`
    previous_until: float = 0.0
    revoked_at: int | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # end user -> USER_LIMITS, or BLOCKED
    revision: int = 0  # one more with each change: a write applies only to the revision it read

    def client_key(self) -> ClientKey:
        """What the limits and the views read of it."""
        users = None if self.users is None else EndUserLimits(**self.users)
        found = {"pays": self.pays, "users": users, "models": self.models, "cache": self.cache}
        found["cache_unsampled"] = self.cache_unsampled
        return ClientKey("", self.name, **found, **self.limits)

    def digests(self, now: float) -> tuple[str, ...]:
        """The digests of the secrets that open it now (none once revoked)."""
        if self.revoked_at is not None:
            return ()
        return (self.digest, self.previous) if self.previous and now < self.previous_until else (self.digest,)

    def override(self, user: str) -> EndUserLimits | str | None:
        """The end user `user`'s own limits, BLOCKED, or None (the key's defaults)."""
        found = self.overrides.get(user)
        if found is None or found == BLOCKED:
            return found
        return EndUserLimits(**found)

    def public(self, now: float | None = None) -> dict[str, Any]:
        """As the admin API shows it: never a secret or a digest."""
        now = time.time() if now is None else now
        return {
            "id": self.id,
            "object": "key",
            "name": self.name,
            "source": "api",
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "rotating_until": round(self.previous_until) if self.previous and now < self.previous_until else None,
            "limits": dict(self.limits),
            "pays": self.pays,
            "cache": self.cache,
            "cache_unsampled": self.cache_unsampled,
            "users": self.users,
            "models": list(self.models),
            "overrides": len(self.overrides),
        }

    def revised(self, **changes: Any) -> StoredKey:
        """This record with `changes`, one revision on."""
        return dataclasses.replace(self, **changes, revision=self.revision + 1)

    def encoded(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def decoded(cls, raw: bytes | str) -> StoredKey:
        found = orjson.loads(raw)
        found["models"] = tuple(found.get("models") or ())
        return cls(**found)
