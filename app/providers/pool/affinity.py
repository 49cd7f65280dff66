"""Cache-affine routing: a conversation's requests go to the server that holds its prompt cache,
found by consistent hashing over the servers of its model, unless that server is busier than
UPSTREAM_AFFINITY times the average; then to the next one on the ring that is not (consistent
hashing with bounded loads: Mirrokni, Thorup and Zadimoghaddam, 2018)."""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..base import ChatCall
    from .server import Server

POINTS_PER_WEIGHT = 64  # a server's places on the ring per unit of weight: an even share of keys
MAX_START_CHARS = 65_536  # of the conversation's start, hashed (a longer one is told apart by its beginning)
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def key_of(call: ChatCall) -> str | None:
    """What names a conversation across its turns: the client's own key for its cache
    (`prompt_cache_key`), else the digest of its `user` (Claude Code's session) and its start: the
    system prompt, the first user message and the first reply, the same on every later turn. None
    before the first reply: a first turn has no history of its own in any cache, and first turns
    that begin alike ("Hi" after one system prompt) would all queue on one server."""
    named = call.options.get("prompt_cache_key")
    if isinstance(named, str) and named:
        return "key:" + named
    user = call.options.get("user")
    start: list[Any] = [user if isinstance(user, str) else None]
    asked = False
    for message in call.messages:
        start.append(message)
        asked = asked or message.get("role") == "user"
        if asked and message.get("role") == "assistant":
            text = _COMPACT(start)[:MAX_START_CHARS]
            return "start:" + hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).hexdigest()
    return None


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class Ring:
    """The servers of one model on a hash ring, each at POINTS_PER_WEIGHT times its weight places."""

    def __init__(self, servers: Sequence[Server]) -> None:
        places = sorted(
            (_point(f"{server.name}#{n}"), index)
            for index, server in enumerate(servers)
            for n in range(max(1, round(POINTS_PER_WEIGHT * server.config.weight)))
        )
        self._points = [point for point, _ in places]
        self._owners = [index for _, index in places]
        self._servers = list(servers)

    def order(self, key: str) -> list[Server]:
        """The servers in the order `key` meets them going round the ring from its place."""
        start = bisect.bisect(self._points, _point(key))
        seen: dict[int, None] = {}
        for step in range(len(self._owners)):
            seen.setdefault(self._owners[(start + step) % len(self._owners)], None)
            if len(seen) == len(self._servers):
                break
        return [self._servers[index] for index in seen]


def choose(ring: Ring, key: str, candidates: Sequence[Server], bound: float) -> Server | None:
    """The first of `candidates` round the ring from `key` that would hold, with this request, no
    more than `bound` times its weighted share of all their requests and this one, rounded up (so
    an idle server always takes its own conversations); None if none would. A server's requests
    are those it generates and those waiting here for its room (a server taking one at a time)."""
    allowed = set(candidates)
    total = sum(server.outstanding + server.waiting for server in candidates) + 1
    weights = sum(server.config.weight for server in candidates)
    for server in ring.order(key):
        held = server.outstanding + server.waiting
        if server in allowed and held + 1 <= math.ceil(bound * total * server.config.weight / weights):
            return server
    return None
