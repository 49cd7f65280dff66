"""Client keys (CHATWAIT_API_KEYS and its file) as the service keeps them: SHA-256 digests, each
with the key's name and limits; never the keys themselves."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable

from ..config import ClientKey
from ..errors import ApiError

_SCHEME = "bearer "


class ClientKeys:
    """The digests of the keys clients may present, and what each key is (its name and limits)."""

    def __init__(self, keys: Iterable[ClientKey]) -> None:
        # The key itself is dropped: an entry keeps its digest's place, its name and its limits.
        self._entries = {digest(entry.key): dataclasses.replace(entry, key="") for entry in keys}

    @property
    def enabled(self) -> bool:
        """Whether the API asks for a key."""
        return bool(self._entries)

    def identify(self, authorization: str | None) -> tuple[str, ClientKey]:
        """The digest of the key in an Authorization header and what that key is;
        ApiError(invalid_api_key) otherwise."""
        if authorization is None or not authorization.lower().startswith(_SCHEME):
            raise ApiError("invalid_api_key", "The request has no Authorization: Bearer header.")
        found = digest(authorization[len(_SCHEME) :].strip())
        entry = self._entries.get(found)  # a lookup by digest leaks nothing about the keys
        if entry is None:
            raise ApiError("invalid_api_key", "The key in the Authorization header is not one of this service's keys.")
        return found, entry


def digest(key: str) -> str:
    """What a stream records of the key that started it: SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
