"""How the journal's batches reach Redis.

`RedisPipe` (one server, or a Sentinel-managed primary): batches go out on one connection of
their own without waiting for the replies to earlier ones; `receive` later hands each batch's
replies back, in the order sent. Redis runs a connection's commands in order, so a batch sent
behind another (a stream's first token behind its admission) costs no extra round trip, and
replies that have long arrived are read in one call, without a wake-up of their own. When the
connection fails, every batch still in flight on it is handed back as failed, and the next
send opens a new one (to the new primary, after a failover).

`ClusterPipe` (Redis Cluster): each batch is split by node by the slot map, each part sent on
that node's own client (a slot that moved answers MOVED: the map is read again, the journal sends
again); a batch's replies are read before the next is sent. One greenlet (the journal's writer)
sends and receives. A node that fails fails its own streams alone: the others' parts go on, and
new streams are placed in slots that answer.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import redis

from ...connect.redis import SlotMaps

Replies = Callable[[Any, list[object]], None]  # (the batch's context, its replies; an error reply as its exception)
Broken = Callable[[list[Any], Exception], None]  # (the contexts of the batches lost, why)

log = logging.getLogger("chatwait.journal")


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

    def place(self, make: Callable[[], str], slot_of: Callable[[str], int]) -> str:
        """A new id from `make` (one server holds every slot)."""
        return make()

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


class NodeFailing(redis.ConnectionError):
    """The reply to a command whose Cluster node (`node`: host:port, or the slots no node serves)
    fails: the command was not sent; its stream may go again at `retry_at` (time.monotonic)."""

    def __init__(self, node: str, retry_at: float) -> None:
        super().__init__(f"Redis Cluster node {node} fails")
        self.node, self.retry_at = node, retry_at


UNSERVED = "(slots no node serves)"
FAILURES = (redis.RedisError, redis.exceptions.RedisClusterException, OSError)  # a node's, or its slots' unserved
LOST = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError)  # a reply: its node failed
MOVING = (redis.exceptions.MovedError, redis.exceptions.AskError)  # a reply: its slot moves to another node
PROBE_FIRST_SECONDS = 0.2
PROBE_MAX_SECONDS = 2.0
WATCH_SECONDS = 1.0  # each primary is pinged this often: a worker learns of a lost node before placing a stream there


class ClusterPipe:
    """Each batch split by node, each part on that node's own client; a node that fails fails its
    own commands alone (`NodeFailing`) and is not sent to again until a probe of its own finds it
    answering, or its slots moved (a failover); a watch pings every primary each WATCH_SECONDS.
    Its replies are handed back at the next `receive` (the interface of RedisPipe)."""

    def __init__(self, cluster: Any, maps: SlotMaps) -> None:
        self._cluster = cluster
        self._maps = maps
        self._on_replies: Replies = _ignore
        self._done: collections.deque[tuple[Any, list[object]]] = collections.deque()
        self._down: dict[str, float] = {}  # failing node -> when its commands may go again
        self._watch: gevent.Greenlet | None = None
        self.oldest = 0.0

    def bind(self, on_replies: Replies, on_broken: Broken) -> None:
        self._on_replies = on_replies

    @property
    def in_flight(self) -> int:
        return len(self._done)

    def place(self, make: Callable[[], str], slot_of: Callable[[str], int]) -> str:
        """A new id from `make` whose slot (`slot_of`) a node that answers serves (a few tries;
        any id when every node fails)."""
        found = make()
        for _ in range(32):
            node = self._node_of_slot(slot_of(found))
            if node not in self._down and node != UNSERVED:
                return found
            found = make()
        return found

    def send(self, commands: list[tuple[object, ...]], context: Any) -> None:
        """Run `commands`, each on its slot's node; a failing node's commands come back as
        NodeFailing replies; raises the RedisError of a batch no node took (every node failing)."""
        if self._watch is None:
            self._watch = gevent.spawn(self._watching)
        groups: dict[str, list[int]] = {}
        for index, command in enumerate(commands):
            groups.setdefault(self._node_of(command), []).append(index)
        replies: list[object] = [None] * len(commands)
        for node, indexes in groups.items():
            for index, reply in zip(indexes, self._send_to(node, [commands[i] for i in indexes]), strict=True):
                replies[index] = reply
        if all(isinstance(reply, NodeFailing) for reply in replies) and self._all_down():
            raise replies[0]  # type: ignore[misc]
        if not self._done:
            self.oldest = time.monotonic()
        self._done.append((context, replies))

    def receive(self) -> None:
        while self._done:
            context, replies = self._done.popleft()
            self._on_replies(context, replies)

    def close(self) -> None:
        self._done.clear()
        self._down.clear()  # the probes end with it
        if self._watch is not None:
            self._watch.kill(block=False)
            self._watch = None

    def _watching(self) -> None:
        """Ping every primary not known to fail, each WATCH_SECONDS; one that does not answer fails."""
        while True:
            gevent.sleep(WATCH_SECONDS)
            for node in list(self._cluster.get_primaries()):
                if node.name not in self._down and not self._answers(node.name):
                    self._failed(node.name)

    def _send_to(self, node: str, commands: list[tuple[object, ...]]) -> list[object]:
        """One node's part of a batch, sent on that node's own client (a slot that moved answers
        MOVED: the slot map is read again and the journal sends it again); its replies
        (NodeFailing for each, the node failing)."""
        if node in self._down:
            return [NodeFailing(node, self._down[node])] * len(commands)
        try:
            pipe = self._client_of(node).pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            replies = pipe.execute(raise_on_error=False)
        except FAILURES:
            return [self._failed(node)] * len(commands)
        if any(isinstance(reply, MOVING) for reply in replies):
            self._maps.refresh(self._cluster)
        if not any(isinstance(reply, LOST) for reply in replies):
            return replies
        failing = self._failed(node)  # the node was lost under the batch: what it did not answer waits
        return [failing if isinstance(reply, LOST) else reply for reply in replies]

    def _client_of(self, node: str) -> Any:
        """The client of `node` ("": any primary that answers, for a command without keys)."""
        if node == "":
            node = next((found.name for found in self._cluster.get_primaries() if found.name not in self._down), node)
        found = self._cluster.get_node(node_name=node) if node != UNSERVED else None
        if found is None or found.redis_connection is None:
            raise redis.ConnectionError(f"{node} is not in the slot map")
        return found.redis_connection

    def _failed(self, node: str) -> NodeFailing:
        """`node` failed: its commands wait until a probe finds it answering, or its slots moved
        (unless it answers a ping now: a connection lost in passing, its commands go again)."""
        self._maps.refresh(self._cluster)
        if node not in self._down and self._answers(node):
            return NodeFailing(node, time.monotonic())
        if node not in self._down:
            log.warning("store_node_failed", extra={"node": node})
            gevent.spawn(self._probe, node)
        self._down[node] = time.monotonic() + PROBE_FIRST_SECONDS
        return NodeFailing(node, self._down[node])

    def _probe(self, node: str) -> None:
        """Ping a failing node, with backoff, until it answers or serves no slot any more."""
        delay = PROBE_FIRST_SECONDS
        while node in self._down:
            gevent.sleep(delay)
            self._maps.refresh(self._cluster)
            serving = {found.name for found in self._cluster.get_primaries()}
            if node != UNSERVED and node not in serving:
                break  # a failover moved its slots: their commands go to the new primary
            if self._answers(node):
                break
            delay = min(PROBE_MAX_SECONDS, delay * 2)
            self._down[node] = time.monotonic() + delay
        if self._down.pop(node, None) is not None:
            log.info("store_node_recovered", extra={"node": node})

    def _answers(self, node: str) -> bool:
        try:
            self._ping(node)
        except FAILURES:
            return False
        return True

    def _ping(self, node: str) -> None:
        if node == UNSERVED:  # served again once the slot map names a node for every slot
            if any(not self._cluster.nodes_manager.slots_cache.get(slot) for slot in range(16384)):
                raise redis.exceptions.SlotNotCoveredError(UNSERVED)
            return
        self._client_of(node).ping()

    def _node_of(self, command: tuple[object, ...]) -> str:
        """The node a command goes to ("" for one without keys: any primary that answers)."""
        if command[0] == "PING":
            return ""
        return self._node_of_slot(self._cluster.determine_slot(*command))

    def _node_of_slot(self, slot: int) -> str:
        try:
            return str(self._cluster.nodes_manager.get_node_from_slot(slot).name)
        except redis.exceptions.SlotNotCoveredError:
            return UNSERVED

    def _all_down(self) -> bool:
        """Whether every primary the slot map names fails (an outage of the whole Cluster)."""
        return all(node.name in self._down for node in self._cluster.get_primaries())
