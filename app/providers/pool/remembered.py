"""Where each conversation last ran: the server that answered its latest turn, by its affinity
key (`affinity.key_of`), so that its next turn goes back to the prompt cache it left there.

A worker remembers in its memory (bounded: the MEMORY_ENTRIES most recent, each for TTL_SECONDS);
on the Redis store, every worker and instance also shares what it learns (a key per conversation
that expires with TTL_SECONDS). Routing must not wait on it: Redis is asked with a short deadline,
and after an error not asked again for PAUSE_SECONDS (the ring places the turn meanwhile). What a
worker learns is written before the turn's terminal event: a client may send the next turn to
another instance the moment it has the reply.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import time
from collections.abc import Callable

import redis

from ...connect.redis import Later, Topology

log = logging.getLogger("chatwait.pool")

MEMORY_ENTRIES = 100_000  # conversations a worker remembers (about 150 bytes each)
TTL_SECONDS = 3600.0  # how long a conversation's server is remembered after its latest turn
PREFIX = "chatwait:affinity:"
TIMEOUT_SECONDS = 0.25  # a lookup on the request's path: never longer
PAUSE_SECONDS = 10.0  # after a Redis error, the memory alone for this long
CONNECTIONS = 8


class Remembered:
    """This worker's memory of where conversations ran: `find` and `keep` by model and key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, entries: int = MEMORY_ENTRIES) -> None:
        self.clock = clock
        self.entries = entries
        self._kept: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()

    def find(self, model: str, key: str) -> str | None:
        """The server that answered this conversation's latest turn (None: none remembered)."""
        found = self._kept.get(_name(model, key))
        if found is None or found[1] <= self.clock():
            return None
        return found[0]

    def keep(self, model: str, key: str, server: str) -> None:
        """Remember that `server` answered this conversation's latest turn."""
        name = _name(model, key)
        self._kept[name] = (server, self.clock() + TTL_SECONDS)
        self._kept.move_to_end(name)
        while len(self._kept) > self.entries:
            self._kept.popitem(last=False)

    def close(self) -> None:
        """Nothing held beyond memory."""


class SharedRemembered(Remembered):
    """This worker's memory, and Redis's for every worker and instance."""

    def __init__(self, topology: Topology, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self._client = Later(topology, CONNECTIONS, TIMEOUT_SECONDS)
        self._paused_until = 0.0

    def find(self, model: str, key: str) -> str | None:
        found = super().find(model, key)
        if found is not None or not self._usable():
            return found
        try:
            shared = self._client().get(PREFIX + _name(model, key))
        except redis.RedisError as error:
            self._pause(error)
            return None
        if shared is None:
            return None
        server = shared.decode("utf-8", "replace")
        super().keep(model, key, server)
        return server

    def keep(self, model: str, key: str, server: str) -> None:
        super().keep(model, key, server)
        if not self._usable():
            return
        try:
            self._client().set(PREFIX + _name(model, key), server, ex=int(TTL_SECONDS))
        except redis.RedisError as error:
            self._pause(error)

    def _usable(self) -> bool:
        return self.clock() >= self._paused_until

    def _pause(self, error: Exception) -> None:
        self._paused_until = self.clock() + PAUSE_SECONDS
        log.warning("affinity_unshared", extra={"error_type": type(error).__name__, "pause_seconds": PAUSE_SECONDS})

    def close(self) -> None:
        self._client.close()


def _name(model: str, key: str) -> str:
    """A conversation's name in memory and in Redis: a digest of its model and key (bounded size)."""
    return hashlib.blake2b(f"{model}\n{key}".encode("utf-8", "replace"), digest_size=12).hexdigest()
