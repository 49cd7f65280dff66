"""Conversations (OpenAI's Conversations API): items kept per client key, bounded and expiring.

A conversation is its id, creation time, metadata and items (JSON objects, each with an `id`),
oldest first. Each client key (without keys: the service) keeps at most MAX_CONVERSATIONS, the
least recently changed going first; each keeps its newest MAX_CONVERSATION_ITEMS items within
MAX_CONVERSATION_BYTES of JSON (the newest always stays), for CONVERSATION_TTL_SECONDS after its
last change. `MemoryConversations` keeps them in this worker; `redis.RedisConversations` in Redis
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

from ..ids import random_id

PREFIX = "conv_"
MAX_CONVERSATION_BYTES = 8 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Bounds:
    """How many conversations a key keeps, how many items (and bytes of them) each, for how long."""

    per_key: int
    items: int
    ttl_seconds: float
    bytes: int = MAX_CONVERSATION_BYTES


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
    """An item as it is kept (its size is what MAX_CONVERSATION_BYTES counts)."""
    return orjson.dumps(item)


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

    def create(self, client: str, metadata: dict[str, str], items: list[dict[str, Any]]) -> Conversation:
        kept = self._by_client.setdefault(client, collections.OrderedDict())
        now = self._clock()
        for conversation_id in [cid for cid, found in kept.items() if self._expired(found, now)]:
            del kept[conversation_id]
        while len(kept) >= self.bounds.per_key:
            kept.popitem(last=False)
        conversation = Conversation(new_id(), int(time.time()), dict(metadata))
        kept[conversation.id] = _Kept(conversation, collections.deque(), 0, now)
        self.append(client, conversation.id, items)
        return conversation

    def _find(self, client: str, conversation_id: str) -> _Kept | None:
        kept = self._by_client.get(client)
        found = kept.get(conversation_id) if kept is not None else None
        if found is not None and self._expired(found, self._clock()):
            del kept[conversation_id]  # type: ignore[union-attr]
            return None
        return found

    def _expired(self, found: _Kept, now: float) -> bool:
        return now - found.changed > self.bounds.ttl_seconds

    def _changed(self, client: str, found: _Kept) -> None:
        found.changed = self._clock()
        self._by_client[client].move_to_end(found.conversation.id)

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
        del self._by_client[client][conversation_id]
        return True

    def append(self, client: str, conversation_id: str, items: list[dict[str, Any]]) -> bool:
        found = self._find(client, conversation_id)
        if found is None:
            return False
        for item in items:
            size = len(encoded(item))
            found.items.append((item, size))
            found.size += size
        while len(found.items) > 1 and (len(found.items) > self.bounds.items or found.size > self.bounds.bytes):
            found.size -= found.items.popleft()[1]
        self._changed(client, found)
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
                self._changed(client, found)
                return True
        return False
