"""Conversations (OpenAI's Conversations API): items kept per client key, bounded and expiring.

A conversation is its id, creation time, metadata and items (JSON objects, each with an `id`),
oldest first. Each client key (without keys: the service) keeps at most MAX_CONVERSATIONS, the
least recently changed going first, within CONVERSATION_KEY_BYTES of items in all (the same
order); each keeps its newest MAX_CONVERSATION_ITEMS items within MAX_CONVERSATION_BYTES of JSON,
dropped from the oldest by whole turns: once an item goes, so does everything up to the next
message, so that no tool output ever stays without its call (an upstream that checks tool
pairing would refuse every later turn). Each lives for CONVERSATION_TTL_SECONDS after its last
change. `MemoryConversations` keeps them in this worker (within CONVERSATION_WORKER_BYTES for
every key, the least recently changed going first); `redis.RedisConversations` in Redis
(STREAM_STORE=redis), for every worker and instance.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import ApiError
from ..ids import random_id

PREFIX = "conv_"
MAX_CONVERSATION_BYTES = 8 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Bounds:
    """How many conversations a key keeps, how many items (and bytes of them) each, for how long,
    and the bytes of items all of a key's conversations hold (and all keys', in one worker)."""

    per_key: int
    items: int
    ttl_seconds: float
    bytes: int = MAX_CONVERSATION_BYTES
    key_bytes: int = 64 * 1024 * 1024
    worker_bytes: int = 512 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Conversation:
    """A conversation's own fields (its items are read apart: `ConversationStore.items`)."""

    id: str
    created_at: int
    metadata: dict[str, str]


def new_id() -> str:
    """A fresh conversation id."""
    return PREFIX + random_id()


def encoded(item: dict[str, Any]) -> bytes:
    """An item as it is kept (its size is what MAX_CONVERSATION_BYTES counts); validation_error
    for what JSON cannot keep here (an integer beyond 64 bits)."""
    try:
        return orjson.dumps(item)
    except orjson.JSONEncodeError:
        detail = "An item holds a value that cannot be kept (an integer beyond 64 bits)."
        raise ApiError("validation_error", detail, fields={"items": ["Send integers within 64 bits."]}) from None


def starts_turn(item: dict[str, Any]) -> bool:
    """Whether an item is a message (what a conversation may begin with once older items went):
    tool calls, their outputs and reasoning belong with the message before them."""
    kind = item.get("type")
    return kind == "message" or (kind is None and "role" in item)


def trimmed(items: collections.deque[tuple[dict[str, Any], int]], size: int, bounds: Bounds) -> int:
    """Drop the oldest `items` (each with its size) beyond the conversation's bounds, by whole
    turns; the bytes left."""
    dropped = False
    while len(items) > 1 and (len(items) > bounds.items or size > bounds.bytes):
        size -= items.popleft()[1]
        dropped = True
    while dropped and items and not starts_turn(items[0][0]):
        size -= items.popleft()[1]
    return size


class ConversationStore(abc.ABC):
    """Conversations by client key (a digest, "" without keys) and id. Raises ApiError
    (store_unavailable) when the store cannot be reached."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds

    @abc.abstractmethod
    def create(self, client: str, metadata: dict[str, str], items: list[dict[str, Any]]) -> Conversation:
        """A new conversation holding `items` (the key's least recently changed beyond its bound go)."""

    @abc.abstractmethod
    def get(self, client: str, conversation_id: str) -> Conversation | None:
        """The conversation, None when the key has none by that id."""

    @abc.abstractmethod
    def update(self, client: str, conversation_id: str, metadata: dict[str, str]) -> Conversation | None:
        """Replace its metadata; None when there is no such conversation."""

    @abc.abstractmethod
    def delete(self, client: str, conversation_id: str) -> bool:
        """Forget the conversation; whether there was one."""

    @abc.abstractmethod
    def append(self, client: str, conversation_id: str, items: list[dict[str, Any]]) -> bool:
        """Add items at its end (the oldest beyond its bounds go); False when there is no such conversation."""

    @abc.abstractmethod
    def items(self, client: str, conversation_id: str) -> list[dict[str, Any]] | None:
        """Its items, oldest first; None when there is no such conversation."""

    @abc.abstractmethod
    def delete_item(self, client: str, conversation_id: str, item_id: str) -> bool | None:
        """Remove its first item with this id: whether there was one (None: no such conversation)."""

    def close(self) -> None:
        """Release connections."""


@dataclasses.dataclass
class _Kept:
    conversation: Conversation
    items: collections.deque[tuple[dict[str, Any], int]]  # each item, and its size
    size: int
    changed: float


class MemoryConversations(ConversationStore):
    """This worker's conversations; expired ones are dropped when met, and when their key makes a new one."""

    def __init__(self, bounds: Bounds, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(bounds)
        self._clock = clock
        self._by_client: dict[str, collections.OrderedDict[str, _Kept]] = {}
        self._held: dict[str, int] = {}  # bytes of items per key
        self._recent: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()  # all, by change
        self._total = 0

    def create(self, client: str, metadata: dict[str, str], items: list[dict[str, Any]]) -> Conversation:
        kept = self._by_client.setdefault(client, collections.OrderedDict())
        now = self._clock()
        for conversation_id in [cid for cid, found in kept.items() if self._expired(found, now)]:
            self._forget(client, conversation_id)
        while len(kept) >= self.bounds.per_key:
            self._forget(client, next(iter(kept)))
        conversation = Conversation(new_id(), int(time.time()), dict(metadata))
        kept[conversation.id] = _Kept(conversation, collections.deque(), 0, now)
        self._recent[(client, conversation.id)] = None
        self.append(client, conversation.id, items)
        return conversation

    def _forget(self, client: str, conversation_id: str) -> None:
        """Drop a conversation, and its bytes from its key's and the worker's."""
        found = self._by_client[client].pop(conversation_id)
        self._recent.pop((client, conversation_id), None)
        self._resize(client, -found.size)

    def _resize(self, client: str, delta: int) -> None:
        self._held[client] = self._held.get(client, 0) + delta
        self._total += delta
        if not self._held[client]:
            del self._held[client]

    def _within_bounds(self, client: str, keep: str) -> None:
        """Drop the least recently changed conversations (never `keep`) over the key's and the
        worker's bytes."""
        kept = self._by_client[client]
        while self._held.get(client, 0) > self.bounds.key_bytes and len(kept) > 1:
            self._forget(client, next(cid for cid in kept if cid != keep))
        while self._total > self.bounds.worker_bytes and len(self._recent) > 1:
            owner, oldest = next(pair for pair in self._recent if pair != (client, keep))
            self._forget(owner, oldest)

    def _find(self, client: str, conversation_id: str) -> _Kept | None:
        kept = self._by_client.get(client)
        found = kept.get(conversation_id) if kept is not None else None
        if found is not None and self._expired(found, self._clock()):
            self._forget(client, conversation_id)
            return None
        return found

    def _expired(self, found: _Kept, now: float) -> bool:
        return now - found.changed > self.bounds.ttl_seconds

    def _changed(self, client: str, found: _Kept) -> None:
        found.changed = self._clock()
        self._by_client[client].move_to_end(found.conversation.id)
        self._recent.move_to_end((client, found.conversation.id))

    def get(self, client: str, conversation_id: str) -> Conversation | None:
        found = self._find(client, conversation_id)
        return None if found is None else found.conversation

    def update(self, client: str, conversation_id: str, metadata: dict[str, str]) -> Conversation | None:
        found = self._find(client, conversation_id)
        if found is None:
            return None
        found.conversation = dataclasses.replace(found.conversation, metadata=dict(metadata))
        self._changed(client, found)
        return found.conversation

    def delete(self, client: str, conversation_id: str) -> bool:
        if self._find(client, conversation_id) is None:
            return False
        self._forget(client, conversation_id)
        return True

    def append(self, client: str, conversation_id: str, items: list[dict[str, Any]]) -> bool:
        found = self._find(client, conversation_id)
        if found is None:
            return False
        added = [(item, len(encoded(item))) for item in items]  # all or none: a refused item adds nothing
        found.items.extend(added)
        before, found.size = found.size, trimmed(found.items, found.size + sum(size for _, size in added), self.bounds)
        self._resize(client, found.size - before)
        self._changed(client, found)
        self._within_bounds(client, conversation_id)
        return True

    def items(self, client: str, conversation_id: str) -> list[dict[str, Any]] | None:
        found = self._find(client, conversation_id)
        return None if found is None else [item for item, _ in found.items]

    def delete_item(self, client: str, conversation_id: str, item_id: str) -> bool | None:
        found = self._find(client, conversation_id)
        if found is None:
            return None
        for entry in found.items:
            if entry[0].get("id") == item_id:
                found.items.remove(entry)
                found.size -= entry[1]
                self._resize(client, -entry[1])
                self._changed(client, found)
                return True
        return False
