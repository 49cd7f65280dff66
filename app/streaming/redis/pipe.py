"""How the journal's batches reach Redis.

`RedisPipe` (one server, or a Sentinel-managed primary): batches go out on one connection of
their own without waiting for the replies to earlier ones; `receive` later hands each batch's
replies back, in the order sent. Redis runs a connection's commands in order, so a batch sent
behind another (a stream's first token behind its admission) costs no extra round trip, and
replies that have long arrived are read in one call, without a wake-up of their own. When the
connection fails, every batch still in flight on it is handed back as failed, and the next
send opens a new one (to the new primary, after a failover).

`ClusterPipe` (Redis Cluster): each batch goes through redis-py's cluster pipeline, which sends
each command to the node of its slot and follows the slot map as it changes; a batch's replies
are read before the next is sent. One greenlet (the journal's writer) sends and receives.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import redis

from ...connect.redis import SlotMaps

Replies = Callable[[Any, list[object]], None]  # (the batch's context, its replies; an error reply as its exception)
Broken = Callable[[list[Any], Exception], None]  # (the contexts of the batches lost, why)


def _ignore(*_: object) -> None:
    return None


class RedisPipe:
    """Batches sent back to back on one connection of its own (out of `client`'s pool)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._on_replies: Replies = _ignore
        self._on_broken: Broken = _ignore
        self._connection: redis.Connection | None = None
        self._in_flight: collections.deque[tuple[redis.Connection, int, Any]] = collections.deque()
        self.oldest = 0.0  # when the oldest batch in flight was sent (time.monotonic)

    def bind(self, on_replies: Replies, on_broken: Broken) -> None:
        """Where replies go, and the batches lost with a connection."""
        self._on_replies, self._on_broken = on_replies, on_broken

    @property
    def in_flight(self) -> int:
        """How many batches await their replies."""
        return len(self._in_flight)

    def send(self, commands: list[tuple[object, ...]], context: Any) -> None:
        """Send `commands` in one write; their replies go to `on_replies` with `context`.
        Raises the RedisError of a failed send (the connection is then dropped)."""
        if self._connection is None:
            self._connection = self._client.connection_pool.make_connection()
        connection = self._connection
        try:
            if not connection.is_connected:
                connection.connect()  # a Sentinel-managed connection finds the primary here
            connection.send_packed_command(connection.pack_commands(commands))
        except BaseException:
            self._drop(connection)
            raise
        if not self._in_flight:
            self.oldest = time.monotonic()
        self._in_flight.append((connection, len(commands), context))

    def receive(self) -> None:
        """Hand back the replies of every batch in flight, waiting for those still due (each
        read is bounded by the client's socket timeout)."""
        while self._in_flight:
            connection, count, context = self._in_flight[0]
            try:
                replies = [_reply(connection) for _ in range(count)]
            except (redis.RedisError, OSError) as error:
                lost = []
                while self._in_flight and self._in_flight[0][0] is connection:
                    lost.append(self._in_flight.popleft()[2])
                self._drop(connection)
                self._on_broken(lost, error)
                continue
            self._in_flight.popleft()
            self._on_replies(context, replies)

    def close(self) -> None:
        """Close the connection (replies still due are not handed back)."""
        if self._connection is not None:
            self._drop(self._connection)
        self._in_flight.clear()

    def _drop(self, connection: redis.Connection) -> None:
        connection.disconnect()
        if self._connection is connection:
            self._connection = None


def _reply(connection: redis.Connection) -> object:
    """The next reply on `connection`; an error reply (a script's) as its exception."""
    try:
        return connection.read_response()
    except redis.ResponseError as error:
        return error


class ClusterPipe:
    """Each batch through redis-py's cluster pipeline; its replies are handed back at the next
    `receive` (the interface of RedisPipe)."""

    def __init__(self, cluster: Any, maps: SlotMaps) -> None:
        self._cluster = cluster
        self._maps = maps
        self._on_replies: Replies = _ignore
        self._done: collections.deque[tuple[Any, list[object]]] = collections.deque()
        self.oldest = 0.0

    def bind(self, on_replies: Replies, on_broken: Broken) -> None:
        self._on_replies = on_replies

    @property
    def in_flight(self) -> int:
        return len(self._done)

    def send(self, commands: list[tuple[object, ...]], context: Any) -> None:
        """Run `commands`, each on its slot's node; raises the RedisError of a batch that failed
        as a whole (a node unreachable); a command's own error comes back as its reply."""
        pipe = self._cluster.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        try:
            replies = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError):
            self._maps.refresh(self._cluster)
            raise
        if any(isinstance(reply, (redis.ConnectionError, redis.exceptions.ClusterDownError)) for reply in replies):
            self._maps.refresh(self._cluster)
        if not self._done:
            self.oldest = time.monotonic()
        self._done.append((context, replies))

    def receive(self) -> None:
        while self._done:
            context, replies = self._done.popleft()
            self._on_replies(context, replies)

    def close(self) -> None:
        self._done.clear()
