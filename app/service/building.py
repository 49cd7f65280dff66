"""How the services' parts are built for a deployment's settings: the stream store (in memory,
or in Redis), the conversations beside it, the key limits' counters, the managed keys, and where
Redis is."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings, unpriced_notes
from ..conversations import Bounds, ConversationStore, MemoryConversations
from ..limits import Counters, Limits, MemoryCounters, reload
from ..metrics.catalogue import Metrics, NoMetrics
from ..streaming.abandon import Abandon
from ..streaming.store import MemoryStreamStore, StreamStore

log = logging.getLogger("chatwait.spend")

if TYPE_CHECKING:
    from ..alerts.thresholds import Alerts
    from ..connect.redis import Topology
    from ..generation.waiting import WaitGenerations
    from ..keystore.redis import RedisKeys
    from ..keystore.view import KeyView
    from ..providers.base import Provider
    from ..response_cache import ResponseCache
    from ..spend.store import SqliteSpend
    from ..spend.tally import SpendTally
    from .admission import AdmissionQueue
    from .keys import ClientKeys
    from .readiness import Readiness


def store(settings: Settings, abandon: Abandon) -> StreamStore:
    """The stream store STREAM_STORE names (Redis is imported only when used)."""
    if settings.streams.stream_store == "redis":
        from ..streaming.redis.deferred import open_store
        from ..streaming.redis.store import RedisStoreSettings, RedisStreamStore

        config = RedisStoreSettings(
            topology(settings),
            settings.streams.max_streams,
            settings.streams.stream_ttl_seconds,
            settings.streams.max_stream_seconds,
            settings.redis.redis_outage_seconds,
            settings.streams.max_stored_responses,
            settings.upstream.upstream_rescues,
            settings.upstream.upstream_takeovers,
        )
        return open_store(lambda: RedisStreamStore(config, abandon=abandon))  # boots whatever Redis does
    streams = settings.streams
    return MemoryStreamStore(
        streams.max_streams, streams.stream_ttl_seconds, abandon=abandon, max_stored=streams.max_stored_responses
    )


def conversations(settings: Settings) -> ConversationStore:
    """Conversations where the streams are: in Redis, or in this worker's memory."""
    bounds = Bounds(
        settings.conversations.max_conversations,
        settings.conversations.max_conversation_items,
        settings.conversations.conversation_ttl_seconds,
        key_bytes=settings.conversations.conversation_key_bytes,
        worker_bytes=settings.conversations.conversation_worker_bytes,
    )
    if settings.streams.stream_store == "redis":
        from ..conversations.redis import RedisConversations

        return RedisConversations(topology(settings), bounds)
    return MemoryConversations(bounds)


def topology(settings: Settings) -> Topology:
    """Where Redis is: one server, a primary found through Sentinel, or a Cluster."""
    from ..connect.redis import Topology

    return Topology.configured(settings.redis)


def limits(settings: Settings, metrics: Metrics | NoMetrics, counting: bool) -> Limits:
    """Per-key limits, where some key has limits (`counting`): in Redis with the streams, shared by
    every worker and instance; else in this worker's memory."""
    counters: Counters = MemoryCounters()
    if counting and settings.streams.stream_store == "redis":
        from ..limits.shared import RedisCounters

        counters = RedisCounters(topology(settings))
    return Limits(counters, metrics, settings.access.key_limits_without_redis == "open", counting)


def key_view(settings: Settings) -> KeyView | None:
    """The managed keys (with ADMIN_API_KEY): in Redis with the streams, else in DATA_DIR's file."""
    if not settings.access.admin_api_keys:
        return None
    from ..keystore.view import KeyView

    if settings.streams.stream_store == "redis":
        from ..keystore.redis import RedisKeys

        keys = RedisKeys(topology(settings))
        _moved(settings, keys)
        return KeyView(keys, settings.with_key_defaults)
    from ..keystore.store import SqliteKeys

    return KeyView(SqliteKeys(Path(settings.access.data_dir).resolve()), settings.with_key_defaults)


def _moved(settings: Settings, keys: RedisKeys) -> None:
    """Move into Redis the managed keys and the spend DATA_DIR's files hold from before (once)."""
    from ..keystore.store import StoreUnavailable
    from ..limits.shared import RedisCounters
    from ..spend.store import RedisSpend, SpendUnavailable
    from .moving import to_redis

    spend, counters = RedisSpend(topology(settings)), RedisCounters(topology(settings))
    try:
        to_redis(Path(settings.access.data_dir).resolve(), keys, spend, counters, settings.keys)
    except (StoreUnavailable, SpendUnavailable) as error:
        action = "Check Redis and DATA_DIR; the next start moves them."
        log.error("keys_not_moved", extra={"error_type": str(error), "action": action})
    finally:
        spend.close()
        counters.close()


def spending(settings: Settings, limits: Limits) -> SpendTally | None:
    """Where spend is summed: in Redis with the streams, else beside the managed keys in
    DATA_DIR (none without either: the budgets' counters alone), where the memory store's
    counters start from this month's spend."""
    from ..spend.tally import SpendTally

    if settings.streams.stream_store == "redis":
        from ..spend.store import RedisSpend

        return SpendTally(RedisSpend(topology(settings)))
    if settings.access.admin_api_keys:
        from ..spend.store import SqliteSpend

        found = SqliteSpend(Path(settings.access.data_dir).resolve())
        if isinstance(limits.counters, MemoryCounters) and not reload.reloaded():
            _resume(limits.counters, found)
        return SpendTally(found)
    return None


def _resume(counters: MemoryCounters, spend: SqliteSpend) -> None:
    """Start the budgets' counters from what the spend report holds this month (a restart, a
    crash or a deploy spends no budget twice); without it, from nothing, and that is logged."""
    from ..spend.store import SpendUnavailable

    try:
        found = spend.month_so_far(time.time())
    except SpendUnavailable as error:
        log.warning("spend_not_resumed", extra={"error_type": str(error)})
        return
    counters.resume(found)
    log.info("spend_resumed", extra={"rows": len(found)})


def alerts(settings: Settings, metrics: Metrics | NoMetrics) -> Alerts | None:
    """Budget alerts (with BUDGET_ALERT_WEBHOOK), marked where the keys are."""
    operations = settings.operations
    if operations.budget_alert_webhook is None or operations.budget_alert_secret is None:
        return None
    from ..alerts import thresholds
    from ..alerts.webhook import Webhook

    marks: thresholds.Marks = thresholds.MemoryMarks()
    if settings.streams.stream_store == "redis":
        marks = thresholds.RedisMarks(topology(settings))
    elif settings.access.admin_api_keys:
        marks = thresholds.SqliteMarks(Path(settings.access.data_dir).resolve())
    webhook = Webhook(operations.budget_alert_webhook, operations.budget_alert_secret, metrics)
    found = thresholds.Thresholds(operations.budget_alert_thresholds, marks)
    return thresholds.Alerts(found, webhook)


def queue(settings: Settings, metrics: Metrics | NoMetrics) -> AdmissionQueue:
    """The admission queue: for a slot (MAX_STREAMS), fair across keys."""
    from .admission import AdmissionQueue

    return AdmissionQueue(
        settings.access.admission_wait_seconds,
        places=settings.access.admission_queue_size,
        over_share=lambda name: metrics.key_refused(name, "queue_share") if name else None,
    )


def caches(settings: Settings) -> bool:
    """Whether the response cache is on for the deployment or for a key of the key file."""
    return settings.caching.response_cache or any(key.cache for key in settings.keys)


def response_cache(settings: Settings, metrics: Metrics | NoMetrics) -> ResponseCache:
    """The response cache where the streams are: in Redis, or in this worker's memory (used only
    for the keys it is on for: RESPONSE_CACHE, a key's cache=)."""
    from ..response_cache import Bounds, ResponseCache, Times

    caching = settings.caching
    bounds = Bounds(
        caching.response_cache_max_entries,
        caching.response_cache_max_bytes,
        caching.response_cache_ttl_seconds,
        caching.response_cache_key_bytes,
    )
    upstream = settings.upstream
    times = Times(
        upstream.timeout_seconds + upstream.idle_timeout_seconds,
        upstream.timeout_seconds / 2,
        settings.streams.max_stream_seconds,
    )
    if settings.streams.stream_store == "redis":
        from ..response_cache.redis import RedisAnswers

        return ResponseCache(caching, RedisAnswers(topology(settings), bounds), times, metrics)
    from ..response_cache.memory import MemoryAnswers

    return ResponseCache(caching, MemoryAnswers(bounds), times, metrics)


def readiness(
    settings: Settings,
    provider: Provider,
    store: StreamStore,
    waits: WaitGenerations,
    limits: Limits | None,
    client_keys: ClientKeys,
) -> Readiness:
    """What /ready checks: the provider, the store, whether the worker accepts generations, the
    key limits where any key has some (None: none has), and the notes on unpriced budgets."""
    from .readiness import Readiness

    shared = settings.streams.stream_store == "redis"
    return Readiness(
        provider,
        store,
        settings.operations.ready_cache_seconds,
        accepting=lambda: waits.accepting,
        key_limits=None if limits is None else (lambda: limits.check(shared)),
        notes=lambda: unpriced_notes(settings, client_keys.every_key()),
    )
