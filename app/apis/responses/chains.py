"""A WebSocket's own `store: false` chains: each completed response's conversation (its input
and output items), by its id, for a later turn's `previous_response_id` on that socket; bounded
in number and bytes per socket, and in bytes per key and per worker over every socket (`HELD`:
the oldest chains dropped past them), and evicted by a continuation that fails (OpenAI's rule).
A socket's chains go when it closes."""

from __future__ import annotations

import collections
from typing import Any

import orjson

CHAIN_BODIES = 4  # a socket's chains take at most this many MAX_BODY_BYTES in all


class Held:
    """What every socket's chains hold in this worker, oldest first, by key: bounded in bytes per
    key and in all (the oldest chain of the key, or of the worker, is dropped past them)."""

    def __init__(self) -> None:
        self._chains: collections.OrderedDict[tuple[int, str], tuple[Chains, str, int]] = collections.OrderedDict()
        self._by_key: collections.Counter[str] = collections.Counter()
        self.total = 0

    def kept(self, chains: Chains, response_id: str, size: int) -> None:
        """Count a chain just kept, then drop the oldest past the key's and the worker's bounds."""
        self._chains[(id(chains), response_id)] = (chains, chains.key, size)
        self._by_key[chains.key] += size
        self.total += size
        while self._by_key[chains.key] > chains.key_bytes:
            self._drop(next(entry for entry, held in self._chains.items() if held[1] == chains.key))
        while self.total > chains.worker_bytes:
            self._drop(next(iter(self._chains)))

    def dropped(self, chains: Chains, response_id: str) -> None:
        """Stop counting a chain its socket dropped (or forgot, or closed with)."""
        found = self._chains.pop((id(chains), response_id), None)
        if found is not None:
            self._by_key[found[1]] -= found[2]
            self.total -= found[2]
            if not self._by_key[found[1]]:
                del self._by_key[found[1]]

    def of(self, key: str) -> int:
        """The bytes a key's chains hold."""
        return self._by_key.get(key, 0)

    def _drop(self, entry: tuple[int, str]) -> None:
        chains, _, _ = self._chains[entry]
        chains.forget(entry[1])


HELD = Held()  # this worker's


class Chains:
    """The conversations of a socket's `store: false` responses (input and output items), by
    response id, for a later turn's previous_response_id: the newest `bound` of them, within
    CHAIN_BODIES request bodies' worth of JSON (and the key's and the worker's bounds: `Held`);
    one longer than a request body may be (its continuation could not be sent) is not kept."""

    def __init__(
        self, bound: int, max_bytes: int, key: str = "", key_bytes: int = 1 << 62, worker_bytes: int = 1 << 62
    ) -> None:
        self.bound = bound
        self.max_bytes = max_bytes
        self.key, self.key_bytes, self.worker_bytes = key, key_bytes, worker_bytes
        self.items: collections.OrderedDict[str, list[Any]] = collections.OrderedDict()
        self.sizes: dict[str, int] = {}

    def expand(self, body: dict[str, Any]) -> tuple[list[Any], str | None]:
        """Put a kept chain's items before the turn's input (dropping previous_response_id); the
        items this turn adds to its chain before its output, and the id of the chain it continues
        (None: none kept here)."""
        given, previous = body.get("input", []), body.get("previous_response_id")
        if not isinstance(given, (str, list)):
            return [], None  # the request's validation names the field
        turn = [{"type": "message", "role": "user", "content": given}] if isinstance(given, str) else list(given)
        earlier = self.items.get(previous) if isinstance(previous, str) else None
        if earlier is None:
            return turn, None
        del body["previous_response_id"]
        body["input"] = [*earlier, *turn]
        return body["input"], previous

    def forget(self, response_id: str) -> None:
        """Evict a chain (its continuation failed: OpenAI's rule, so that no turn builds on it; or
        a bound dropped it)."""
        if self.items.pop(response_id, None) is not None:
            del self.sizes[response_id]
            HELD.dropped(self, response_id)

    def close(self) -> None:
        """The socket closed: every chain goes."""
        for response_id in list(self.items):
            self.forget(response_id)

    def remember(self, data: str, sent: list[Any]) -> None:
        """Keep a completed response's chain (`data`: one of its events; `sent`: what `expand` gave)."""
        if '"response.completed"' not in data[:64]:
            return
        response = orjson.loads(data).get("response") or {}
        if not response.get("id"):
            return
        items = [*sent, *response.get("output", [])]
        size = len(orjson.dumps(items))
        if size > self.max_bytes:
            return
        self.forget(response["id"])  # a response id comes once; kept again, it is counted once
        self.items[response["id"]], self.sizes[response["id"]] = items, size
        while len(self.items) > self.bound or sum(self.sizes.values()) > CHAIN_BODIES * self.max_bytes:
            self.forget(next(iter(self.items)))
        if response["id"] in self.items:
            HELD.kept(self, response["id"], size)
