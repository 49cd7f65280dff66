"""How the services' parts are built for a deployment's settings: the stream store (in memory,
or in Redis), the conversations beside it, the key limits' counters, and where Redis is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Settings
from ..conversations import Bounds, ConversationStore, MemoryConversations
from ..limits import Counters, Limits, MemoryCounters
from ..metrics.catalogue import Metrics, NoMetrics
from ..streaming.abandon import Abandon
from ..streaming.store import MemoryStreamStore, StreamStore

if TYPE_CHECKING:
    from ..connect.redis import Topology


def store(settings: Settings, abandon: Abandon) -> StreamStore:
    """The stream store STREAM_STORE names (Redis is imported only when used)."""
    if settings.stream_store == "redis":
        from ..streaming.redis.deferred import open_store
        from ..streaming.redis.store import RedisSettings, RedisStreamStore

        config = RedisSettings(
            topology(settings),
            settings.max_streams,
            settings.stream_ttl_seconds,
            settings.max_stream_seconds,
            settings.redis_outage_seconds,
            settings.max_stored_responses,
            settings.upstream_rescues,
            settings.upstream_takeovers,
        )
        return open_store(lambda: RedisStreamStore(config, abandon=abandon))  # boots whatever Redis does
    return MemoryStreamStore(
        settings.max_streams, settings.stream_ttl_seconds, abandon=abandon, max_stored=settings.max_stored_responses
    )


def conversations(settings: Settings) -> ConversationStore:
    """Conversations where the streams are: in Redis, or in this worker's memory."""
    bounds = Bounds(
        settings.max_conversations,
        settings.max_conversation_items,
        settings.conversation_ttl_seconds,
        key_bytes=settings.conversation_key_bytes,
        worker_bytes=settings.conversation_worker_bytes,
    )
    if settings.stream_store == "redis":
        from ..conversations.redis import RedisConversations

        return RedisConversations(topology(settings), bounds)
    return MemoryConversations(bounds)


def topology(settings: Settings) -> Topology:
    """Where Redis is: one server, a primary found through Sentinel, or a Cluster."""
    from ..connect.redis import Topology

    return Topology.of(
        settings.redis_url, settings.redis_sentinels, settings.redis_sentinel_master or "", settings.redis_cluster
    )


def limits(settings: Settings, metrics: Metrics | NoMetrics, shared: bool) -> Limits:
    """Per-key limits counted in Redis when `shared` (the Redis store, and some key has limits),
    shared by every worker and instance; else in this worker's memory."""
    counters: Counters = MemoryCounters()
    if shared:
        from ..limits.shared import RedisCounters

        counters = RedisCounters(topology(settings))
    return Limits(counters, metrics, fail_open=settings.key_limits_without_redis == "open")
