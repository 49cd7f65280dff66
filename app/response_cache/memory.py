"""The response cache in this worker's memory (the memory stream store): entries by digest, the
least recently used first out, bounded in count and bytes (and each key in its bytes: a key that
churns its answers evicts its own), each for its TTL."""

from __future__ import annotations

import time
from collections import OrderedDict

from .terms import Bounds


class MemoryAnswers:
    """Kept answers (their stored form) in an ordered dict: digest -> (expiry, scope, blob)."""

    def __init__(self, bounds: Bounds, clock: type[time.monotonic] = time.monotonic) -> None:  # type: ignore[valid-type]
        self._bounds = bounds
        self._entries: OrderedDict[str, tuple[float, str, bytes]] = OrderedDict()
        self._bytes = 0
        self._keys: dict[str, OrderedDict[str, None]] = {}  # a key's entries, least recently used first
        self._key_bytes: dict[str, int] = {}
        self._clock = clock

    def get(self, digest: str) -> bytes | None:
        """An entry's stored form (None: none, or it expired), now the most recently used."""
        found = self._entries.get(digest)
        if found is None:
            return None
        if found[0] <= self._clock():
            self._drop(digest)
            return None
        self._entries.move_to_end(digest)
        if found[1]:
            self._keys[found[1]].move_to_end(digest)
        return found[2]

    def put(self, digest: str, scope: str, blob: bytes) -> None:
        """Keep an entry (replacing one under its digest), then evict the least recently used:
        the key's own while it holds more than its bytes, then anyone's while over the bounds."""
        if digest in self._entries:
            self._drop(digest)
        self._entries[digest] = (self._clock() + self._bounds.ttl_seconds, scope, blob)
        self._bytes += len(blob)
        if scope:
            own = self._keys.setdefault(scope, OrderedDict())
            own[digest] = None
            self._key_bytes[scope] = self._key_bytes.get(scope, 0) + len(blob)
            while self._key_bytes[scope] > self._bounds.per_key and len(own) > 1:
                self._drop(next(iter(own)))
        while len(self._entries) > self._bounds.entries or self._bytes > self._bounds.bytes:
            self._drop(next(iter(self._entries)))

    def clear(self, scope: str | None = None, digest: str | None = None) -> int:
        """Forget every entry, or `scope`'s, or the one under `digest` (of `scope` where given);
        how many went."""
        gone = [
            found
            for found, (_, owner, _) in self._entries.items()
            if (digest is None or found == digest) and (scope is None or owner == scope)
        ]
        for found in gone:
            self._drop(found)
        return len(gone)

    def claim(self, digest: str, token: str, seconds: float) -> bool:
        """One worker: its flights are every flight (`flights`)."""
        return True

    def claimed(self, digest: str) -> bool:
        return False

    def release(self, digest: str, token: str) -> None:
        pass

    def held(self) -> tuple[int, int]:
        """Entries and bytes held now."""
        return len(self._entries), self._bytes

    def close(self) -> None:
        self._entries.clear()
        self._keys.clear()
        self._key_bytes.clear()
        self._bytes = 0

    def _drop(self, digest: str) -> None:
        _, scope, blob = self._entries.pop(digest)
        self._bytes -= len(blob)
        if scope:
            own = self._keys[scope]
            del own[digest]
            self._key_bytes[scope] -= len(blob)
            if not own:
                del self._keys[scope], self._key_bytes[scope]
