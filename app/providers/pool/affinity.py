"""Cache-affine routing: a conversation's requests go to the server that holds its prompt cache:
the one that answered its latest turn (`remembered`), else the one consistent hashing places it
on among the servers of its model; unless that server is busier than UPSTREAM_AFFINITY times the
average, then the next one on the ring that is not (consistent hashing with bounded loads:
Mirrokni, Thorup and Zadimoghaddam, 2018)."""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..call import ChatCall
    from ..deltas import ToolCall
    from .server import Server

POINTS_PER_WEIGHT = 64  # a server's places on the ring per unit of weight: an even share of keys
MAX_START_CHARS = 65_536  # of the conversation's start, hashed (a longer one is told apart by its beginning)
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_SORTED = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str).encode


def key_of(call: ChatCall, reply: dict[str, Any] | None = None) -> str | None:
    """What names a conversation across its turns: the client's own key for its cache
    (`prompt_cache_key`), else the digest of its `user` (Claude Code's session) and its start: the
    system prompt, the first user message and the first reply, the same on every later turn, each
    by what the model reads of it (`said`: as every API sends it back). None before the first
    reply: first turns that begin alike ("Hi" after one system prompt) would all queue on one
    server. `reply`: the call's own reply after its messages (the key its next turn will have)."""
    named = call.options.get("prompt_cache_key")
    if isinstance(named, str) and named:
        return "key:" + named
    user = call.options.get("user")
    start: list[Any] = [user if isinstance(user, str) else None]
    asked = False
    for message in [*call.messages, reply] if reply is not None else call.messages:
        start.append(_said(message))
        asked = asked or message.get("role") == "user"
        if asked and message.get("role") == "assistant":
            text = _COMPACT(start)[:MAX_START_CHARS]
            return "start:" + hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).hexdigest()
    return None


def reply_message(text: str, calls: Sequence[ToolCall]) -> dict[str, Any]:
    """A reply as the assistant message its next turn sends back."""
    return {"role": "assistant", "content": text, "tool_calls": [call.as_openai() for call in calls]}


def _said(message: dict[str, Any]) -> list[Any]:
    """A message as its next turns send it back, whatever the API: its role, its text (parts
    joined, edges stripped), its tool calls' names and arguments (one JSON form), the call it
    answers."""
    called = message.get("tool_calls") or ()
    calls = [[call["function"]["name"], _arguments(call["function"]["arguments"])] for call in called]
    content = message.get("content")
    parts = content if isinstance(content, list) else ()
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in parts if isinstance(p, dict))
    return [message.get("role"), text.strip(), calls, message.get("tool_call_id")]


def _arguments(arguments: str) -> str:
    """A call's arguments in one JSON form (an API that parses them writes them back otherwise)."""
    try:
        return _SORTED(json.loads(arguments))
    except ValueError:
        return arguments


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


def choose(
    ring: Ring, key: str, candidates: Sequence[Server], bound: float, first: Server | None = None
) -> Server | None:
    """`first` (the server that answered the conversation's latest turn), else the first of
    `candidates` round the ring from `key`, that would hold, with this request, no more than
    `bound` times its weighted share of all their requests and this one, rounded up (so an idle
    server always takes its own conversations); None if none would. A server's requests are
    those it generates and those waiting here for its room (a server taking one at a time)."""
    allowed = set(candidates)
    total = sum(server.outstanding + server.waiting for server in candidates) + 1
    weights = sum(server.config.weight for server in candidates)
    for server in [first, *ring.order(key)] if first is not None else ring.order(key):
        held = server.outstanding + server.waiting
        if server in allowed and held + 1 <= math.ceil(bound * total * server.config.weight / weights):
            return server
    return None
