"""Stored responses (the Responses API's `store`) are bounded per client key: each key keeps at
most MAX_STORED_RESPONSES of them once finished (without client keys, the whole service does),
the oldest finished going first; a live one is never evicted (MAX_STREAMS bounds those). This is
the memory store's count; the Redis store keeps the same in Redis (`redis/stored`)."""

from __future__ import annotations

import collections


class StoredIndex:
    """The finished stored responses of each client key, in the order they finished."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._by_client: dict[str, collections.OrderedDict[str, None]] = {}

    def add(self, client: str, stream_id: str) -> list[str]:
        """Count a stored response that finished; the ids of the oldest it puts over the bound."""
        kept = self._by_client.setdefault(client, collections.OrderedDict())
        kept[stream_id] = None
        evicted = []
        while len(kept) > self.bound:
            evicted.append(kept.popitem(last=False)[0])
        return evicted

    def discard(self, client: str, stream_id: str) -> None:
        """A stored response is gone (deleted, expired or evicted otherwise)."""
        kept = self._by_client.get(client)
        if kept is not None:
            kept.pop(stream_id, None)
            if not kept:
                del self._by_client[client]

    def count(self, client: str) -> int:
        """How many finished stored responses `client` holds."""
        return len(self._by_client.get(client, ()))
