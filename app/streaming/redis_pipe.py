"""One connection to Redis on which batches of commands go out without waiting for the replies
to earlier ones; `receive` later hands each batch's replies back, in the order sent.

Redis runs a connection's commands in order, so a batch sent behind another (a stream's first
token behind its registration) costs no extra round trip, and replies that have long arrived
are read in one call, without a wake-up of their own. When the connection fails, every batch
still in flight on it is handed back as failed, and the next send opens a new one. One
greenlet (the journal's writer) sends and receives.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import redis

Replies = Callable[[object, list[object]], None]  # (the batch's context, its replies; an error reply as its exception)
Broken = Callable[[list[object], Exception], None]  # (the contexts of the batches lost, why)


class RedisPipe:
    """Batches sent back to back on one connection of its own (out of `client`'s pool)."""

    def __init__(self, client: redis.Redis, on_replies: Replies, on_broken: Broken) -> None:
        self._client = client
        self._on_replies = on_replies
        self._on_broken = on_broken
        self._connection: redis.Connection | None = None
        self._in_flight: collections.deque[tuple[redis.Connection, int, object]] = collections.deque()
        self.oldest = 0.0  # when the oldest batch in flight was sent (time.monotonic)

    @property
    def in_flight(self) -> int:
        """How many batches await their replies."""
        return len(self._in_flight)

    def send(self, commands: list[tuple[object, ...]], context: object) -> None:
        """Send `commands` in one write; their replies go to `on_replies` with `context`.
        Raises the RedisError of a failed send (the connection is then dropped)."""
        if self._connection is None:
            self._connection = self._client.connection_pool.make_connection()
        connection = self._connection
        try:
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
