"""Client keys (CHATWAIT_API_KEYS) as the service keeps them: SHA-256 digests, never the keys."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ..errors import ApiError

_SCHEME = "bearer "


class ClientKeys:
    """The digests of the keys clients may present."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = frozenset(digest(key) for key in keys)

    @property
    def enabled(self) -> bool:
        """Whether the API asks for a key."""
        return bool(self._digests)

    def identify(self, authorization: str | None) -> str:
        """The digest of the key in an Authorization header; ApiError(invalid_api_key) otherwise."""
        if authorization is None or not authorization.lower().startswith(_SCHEME):
            raise ApiError("invalid_api_key", "The request has no Authorization: Bearer header.")
        found = digest(authorization[len(_SCHEME) :].strip())
        if found not in self._digests:  # a set lookup of a digest leaks nothing about the keys
            raise ApiError("invalid_api_key", "The key in the Authorization header is not one of this service's keys.")
        return found


def digest(key: str) -> str:
    """What a stream records of the key that started it: SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
