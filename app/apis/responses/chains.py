"""A WebSocket's own `store: false` chains: each completed response's conversation (its input
and output items), by its id, for a later turn's `previous_response_id` on that socket; bounded
in number and bytes, and evicted by a continuation that fails (OpenAI's rule)."""

from __future__ import annotations

import collections
from typing import Any

import orjson

CHAIN_BODIES = 4  # a socket's chains take at most this many MAX_BODY_BYTES in all

class Chains:
    """The conversations of a socket's `store: false` responses (input and output items), by
    response id, for a later turn's previous_response_id: the newest `bound` of them, within
    CHAIN_BODIES request bodies' worth of JSON; one longer than a request body may be (its
    continuation could not be sent) is not kept."""

    def __init__(self, bound: int, max_bytes: int) -> None:
        self.bound = bound
        self.max_bytes = max_bytes
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
        """Evict a chain (its continuation failed: OpenAI's rule, so that no turn builds on it)."""
        if self.items.pop(response_id, None) is not None:
            del self.sizes[response_id]

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
        self.items[response["id"]], self.sizes[response["id"]] = items, size
        while len(self.items) > self.bound or sum(self.sizes.values()) > CHAIN_BODIES * self.max_bytes:
            oldest, _ = self.items.popitem(last=False)
            del self.sizes[oldest]
