"""How ChatWait reaches Redis: one server, a primary found through Sentinel, or a Cluster; and
whether that Redis can hold streams (version 7 or later, a policy that never evicts our keys).

Every client has bounded pools, deadlines on every wait and no retries of its own: the store's
parts decide what to do when Redis fails. Sentinel clients find the primary again after a
failover; Cluster clients route each key to its node and follow the slot map as it changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import urllib.parse
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.crc import key_slot
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from ..config.settings import RedisSettings

CONNECT_TIMEOUT_SECONDS = 1.0
POOL_WAIT_SECONDS = 2.0  # for a free connection when a pool is at its bound
MIN_VERSION = (7, 0)  # scripts declare their flags (allow-oom, no-writes)
SAFE_POLICY = "noeviction"

Client = redis.Redis | RedisCluster


class StoreUnusable(RuntimeError):
    """Redis cannot hold ChatWait's streams (unreachable, too old, or evicting); the message
    says what was found and what to do."""


@dataclasses.dataclass(frozen=True)
class Topology:
    """Where Redis is: `kind` is standalone, sentinel or cluster; `url` carries the credentials,
    database and TLS of the data nodes; `sentinels` and `master` name a Sentinel-managed primary;
    `seeds`, the Cluster's nodes named (the first is `url`'s)."""

    kind: str
    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    seeds: tuple[tuple[str, int], ...] = ()

    @classmethod
    def configured(cls, where: RedisSettings) -> Topology:
        """The topology the REDIS_* settings describe."""
        return cls.of(where.redis_url, where.redis_sentinels, where.redis_sentinel_master or "", where.redis_cluster)

    @classmethod
    def of(
        cls, url: str, sentinels: tuple[tuple[str, int], ...] = (), master: str = "", cluster: bool = False
    ) -> Topology:
        """The topology of REDIS_URL (redis+sentinel:// and redis+cluster:// URLs included),
        REDIS_SENTINELS with REDIS_SENTINEL_MASTER, or REDIS_CLUSTER."""
        scheme, _, rest = url.partition("://")
        base, _, mode = scheme.partition("+")
        if mode == "sentinel":
            return _sentinel_url(base, rest)
        if mode == "cluster" or cluster:
            return _cluster_url(base, rest)
        if sentinels:
            return cls("sentinel", url, sentinels, master)
        return cls("standalone", url)

    def describe(self) -> str:
        """Where Redis is, for messages and logs (no password)."""
        if self.kind == "sentinel":
            where = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"the primary {self.master!r} of the Sentinels {where}"
        return f"the Redis {'Cluster ' if self.kind == 'cluster' else ''}at {redacted(self.url)}"


def _sentinel_url(base: str, rest: str) -> Topology:
    """redis+sentinel://[user:password@]host:port[,host:port...]/master[/db][?options]."""
    credentials, _, hosts_and_path = rest.rpartition("@")
    hosts, _, path = hosts_and_path.partition("/")
    master, _, db = path.partition("?")[0].partition("/")
    sentinels = tuple(_host_port(item, 26379) for item in hosts.split(",") if item)
    auth = f"{credentials}@" if credentials else ""
    return Topology("sentinel", f"{base}://{auth}sentinel/{db or 0}", sentinels, master)


def _cluster_url(base: str, rest: str) -> Topology:
    """redis+cluster://[user:password@]host:port[,host:port...][/db][?options]: the first node's
    URL (credentials and TLS for every node), and every node named, as seeds: a worker that
    starts while some are down finds the Cluster through another."""
    credentials, at, hosts_and_path = rest.rpartition("@")
    hosts, slash, path = hosts_and_path.partition("/")
    named = [item for item in hosts.split(",") if item]
    auth = f"{credentials}{at}"
    seeds = tuple(_host_port(item, 6379) for item in named)
    return Topology("cluster", f"{base}://{auth}{named[0] if named else ''}{slash}{path}", seeds=seeds)


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    return host.strip("[]"), int(port) if port else default_port


def connect(topology: Topology, max_connections: int, socket_timeout: float) -> Client:
    """A client with bounded pools (a wait for a free connection is bounded too), deadlines on
    connecting and on every reply, and no retries of its own."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
    }
    if topology.kind == "cluster":
        return RedisCluster(
            url=topology.url,
            startup_nodes=[ClusterNode(host, port) for host, port in topology.seeds[1:]],
            require_full_coverage=False,  # a slot lost (a primary with no replica) fails alone
            connection_pool_class=redis.BlockingConnectionPool,
            max_connections=max_connections,
            timeout=POOL_WAIT_SECONDS,
            **options,
        )
    if topology.kind == "sentinel":
        return _sentinel_primary(topology, max_connections, options)
    pool = redis.BlockingConnectionPool.from_url(
        topology.url, max_connections=max_connections, timeout=POOL_WAIT_SECONDS, **options
    )
    return redis.Redis(connection_pool=pool)


class Later:
    """A client made at its first use: a Cluster's client connects as it is made, and a worker
    boots whatever Redis does. Until it can be made, each use raises redis.ConnectionError."""

    def __init__(self, topology: Topology, max_connections: int, socket_timeout: float) -> None:
        self._made: Client | None = None
        self._make = lambda: connect(topology, max_connections, socket_timeout)

    def __call__(self) -> Client:
        if self._made is None:
            try:
                self._made = self._make()
            except redis.exceptions.RedisClusterException as error:
                raise redis.ConnectionError(f"The Cluster did not answer ({type(error).__name__}).") from None
        return self._made

    def close(self) -> None:
        if self._made is not None:
            disconnect(self._made)


def on_slot(pipe: Any, key: str) -> dict[str, Any]:
    """The options that send a script call queued on `pipe` straight to the node of `key`'s slot:
    a Cluster's pipeline would otherwise ask its default node for the call's keys, and that node
    may be the one lost (nothing for one server)."""
    if not isinstance(pipe, ClusterPipeline):
        return {}
    return {"target_nodes": pipe.nodes_manager.get_node_from_slot(key_slot(key.encode()))}


def disconnect(client: Client) -> None:
    """Close every connection of `client` (a client made on its own pool does not on close(),
    nor do a Cluster's node clients, each on a pool of its own)."""
    if isinstance(client, RedisCluster):
        for node in client.get_nodes():
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()
    client.close()
    if not isinstance(client, RedisCluster):
        client.connection_pool.disconnect()


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """A Sentinel-managed pool that waits (a bounded time) for a free connection at its bound."""


def _sentinel_primary(topology: Topology, max_connections: int, options: dict[str, Any]) -> redis.Redis:
    parts = urllib.parse.urlsplit(topology.url)
    auth = {"username": parts.username, "password": parts.password}
    sentinel_options = {k: v for k, v in options.items() if k != "retry"}
    sentinel = Sentinel(list(topology.sentinels), sentinel_kwargs=sentinel_options, **sentinel_options)
    return sentinel.master_for(
        topology.master,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        db=int(parts.path.strip("/") or 0),
        ssl=parts.scheme == "rediss",
        **{k: v for k, v in auth.items() if v},
        **options,
    )


class SlotMaps:
    """After a failure, a Cluster client reads the cluster's slot map again (a failover moved a
    primary), at most once a second per client; other clients need nothing."""

    REFRESH_SECONDS = 1.0

    def __init__(self) -> None:
        self._refreshed: dict[int, float] = {}

    def refresh(self, client: Client) -> None:
        if not isinstance(client, RedisCluster):
            return
        now = time.monotonic()
        if now - self._refreshed.get(id(client), 0.0) < self.REFRESH_SECONDS:
            return
        self._refreshed[id(client)] = now
        with contextlib.suppress(redis.RedisError):
            client.nodes_manager.initialize()


def problems(client: Client, failing: list[str] | None = None) -> list[str]:
    """What makes this Redis unfit for ChatWait's streams, in words an operator can act on
    (empty when it is fit): a version before 7.0, or a policy that may evict keys. With
    `failing`, a Cluster's nodes that do not answer are added to it (raised when none answers)."""
    found = []
    for node, info in _nodes_info(client, failing).items():
        where = f" ({node})" if node else ""
        version = tuple(int(part) for part in str(info.get("redis_version", "0.0")).split(".")[:2])
        if version < MIN_VERSION:
            found.append(
                f"Redis{where} is version {info.get('redis_version')}: ChatWait needs 7.0 or later (its "
                "scripts declare how they may run when memory is full)."
            )
        policy = str(info.get("maxmemory_policy", SAFE_POLICY))
        if policy != SAFE_POLICY and int(info.get("maxmemory", 0) or 0) > 0:
            found.append(
                f"Redis{where} may evict keys (maxmemory-policy {policy}): streams would be cut. Set "
                "maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, or your provider's "
                "parameter group) and size maxmemory as docs/scaling.md says."
            )
    return found


def evicted_keys(client: Client) -> int:
    """How many keys Redis has evicted since it started (all primaries of a Cluster)."""
    if isinstance(client, RedisCluster):
        stats = client.info("stats", target_nodes=RedisCluster.PRIMARIES)
        return sum(int(fields.get("evicted_keys", 0)) for fields in stats.values())
    return int(client.info("stats").get("evicted_keys", 0))


def _nodes_info(client: Client, failing: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """INFO server and memory of every node that holds data: {node: fields} ('' for one server);
    with `failing`, a Cluster's primaries that do not answer are named there instead."""
    if not isinstance(client, RedisCluster):
        return {"": {**client.info("server"), **client.info("memory")}}
    if failing is None:
        server = client.info("server", target_nodes=RedisCluster.PRIMARIES)
        memory = client.info("memory", target_nodes=RedisCluster.PRIMARIES)
        return {node: {**server.get(node, {}), **fields} for node, fields in memory.items()}
    found = {}
    for node in client.get_primaries():
        try:
            found[node.name] = {**node.redis_connection.info("server"), **node.redis_connection.info("memory")}
        except (redis.ConnectionError, redis.TimeoutError):
            failing.append(node.name)
    if not found:
        raise redis.ConnectionError("no node of the Cluster answers")
    return found


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
