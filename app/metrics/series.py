"""The series of the metrics catalogue, in groups (service, generations, recovery, servers, keys),
with their bounded label sets and buckets: what each one counts, declared in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MAX_FIELD_NAMES = 64  # distinct names of unknown fields a process labels (a client's keys are any text)
# First token and queue wait: 25 ms to a minute, fine enough to tell 50 ms from 75 ms and 20 s from 30 s.
LATENCY_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60)
# A whole generation: up to MAX_STREAM_SECONDS' default (10 minutes).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
RESCUE_CAUSES = tuple("interrupted preempted timeout bad_response continuation_failed takeover".split())
# What gives a request to a fallback model: its model's servers' retryable failures, or an input too long.
FALLBACK_ERRORS = tuple(
    (
        "upstream_unavailable upstream_rate_limited upstream_timeout upstream_interrupted "
        "upstream_bad_response upstream_tls_failed input_too_long upstream_misconfigured "
        "upstream_model_unknown"
    ).split()
)


class ServiceSeries:
    """Requests answered, the upstream's retries and errors, resumes and stops, what the store and
    the embedded model's line hold, the fields ChatWait does not know."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        count, gauge, histogram = _declarers(registry)
        self.requests = count(
            "http_requests", "HTTP requests answered, by route, method and status.", "route", "method", "status"
        )
        self.retries = count("upstream_retries", "Upstream attempts retried, by error.", "error_code")
        self.upstream_errors = count("upstream_errors", "Upstream failures that ended a generation.", "error_code")
        self.resumes = count("stream_resumes", "Stream resumes (api: chatwait, openai, responses or anthropic).", "api")
        self.stops = count("stream_stops", "Stop requests, by result.", "result")
        self.store_streams = gauge("store_streams", "Streams held in workers' memory.")
        self.queue_length = gauge("local_queue_length", "Replies waiting for the embedded model.")
        self.websockets = gauge("websockets_open", "Responses API WebSockets open now.")
        self.unknown_fields = count(
            "unknown_fields",
            "Fields of requests that ChatWait does not know, left out of "
            "validation (passed on, or left out), by API and name (the first "
            f"{MAX_FIELD_NAMES} names; then other).",
            "api",
            "field",
        )
        self.queue_wait = histogram(
            "local_queue_wait_seconds", "How long a reply waited for the embedded model.", LATENCY_BUCKETS
        )


class GenerationSeries:
    """How generations start, end and run, their latency and their tokens, by model."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        count, gauge, histogram = _declarers(registry)
        self.started = count(
            "streams_started", "Generations started (mode: streaming or wait).", "model", "provider", "mode"
        )
        self.completed = count(
            "streams_completed", "Generations that ended with a finish reason.", "model", "provider", "finish_reason"
        )
        self.cancelled = count("streams_cancelled", "Generations stopped before their end.", "model")
        self.failed = count("streams_failed", "Generations that ended with an error.", "model", "error_code")
        self.open = gauge("streams_open", "Generations running now.", "mode")
        self.followers = gauge("stream_followers", "Clients following a stream now.")
        self.first_token = histogram(
            "first_token_seconds",
            "From a generation's start to its first token (queue included).",
            LATENCY_BUCKETS,
            "model",
            "provider",
        )
        self.duration = histogram(
            "stream_duration_seconds", "From a generation's start to its end.", DURATION_BUCKETS, "model", "provider"
        )
        self.tokens = count(
            "tokens",
            "Tokens in and out (source: the upstream's usage, or estimated by ChatWait).",
            "model",
            "direction",
            "source",
        )
        self.cached = count("prompt_cached_tokens", "Prompt tokens the model's server read from its cache.", "model")
        self.cost = count("cost_usd", "What generations cost in USD, by model (those UPSTREAMS_FILE prices).", "model")
        self.ledger = count(
            "ledger_tokens",
            "Tokens in generations' ledgers, by model and kind (generated: over "
            "every attempt; resent: input continuations sent again; delivered: written to a "
            "client's connection; replayed: written again by a resume).",
            "model",
            "kind",
        )


class RecoverySeries:
    """The rescues and fallbacks, every series (bounded sets) present at zero for the dashboard."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        count = _declarers(registry)[0]
        self.rescues = count(
            "upstream_rescues",
            "Replies cut mid-answer (or whose worker died: takeover) continued "
            "on another route, by cause and strategy (prefill, message).",
            "cause",
            "strategy",
        )
        self.fallbacks = count(
            "upstream_fallbacks", "Requests given to a fallback model, by the error of the model before.", "error_code"
        )
        for cause in RESCUE_CAUSES:
            for strategy in ("prefill", "message"):
                self.rescues.labels(cause, strategy)
        for error_code in FALLBACK_ERRORS:
            self.fallbacks.labels(error_code)


class ServerSeries:
    """The series of the pool's model servers, by server name (at most MAX_UPSTREAMS)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        count, gauge, _ = _declarers(registry)
        self.requests = count("upstream_server_requests", "Requests sent to each model server of the pool.", "server")
        self.failures = count(
            "upstream_server_failures",
            "Failed requests to each model server, by kind "
            "(connection, unavailable, rate_limited, tls, timeout, interrupted, "
            "bad_response, rejected).",
            "server",
            "kind",
        )
        self.open = gauge("upstream_server_open", "Generations open on each model server now.", "server")
        self.rested = Gauge(
            "chatwait_upstream_server_resting",
            "1 while a worker rests a model server after failures.",
            ["server"],
            registry=registry,
            multiprocess_mode="livemax",
        )


class CacheSeries:
    """The response cache: what it made of requests, what it keeps."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        count, _, _ = _declarers(registry)
        self.requests = count(
            "response_cache_requests",
            "Requests the response cache answered (hit), looked "
            "for and did not (miss), or was not asked (bypass), by result.",
            "result",
        )
        self.kept = count("response_cache_kept_bytes", "Bytes of whole answers the response cache kept.")
        # The cache's own count (in Redis, the cluster's): the largest a running worker saw.
        self.entries = Gauge(
            "chatwait_response_cache_entries",
            "Answers the response cache keeps now.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.bytes = Gauge(
            "chatwait_response_cache_bytes",
            "Bytes of the answers the response cache keeps now.",
            registry=registry,
            multiprocess_mode="livemax",
        )


class KeySeries:
    """The series of client keys' limits, by key name (at most MAX_KEYS names)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        count, gauge, _ = _declarers(registry)
        self.refusals = count(
            "key_refusals",
            "Requests a client key's limit refused (limit: max_streams, rpm, "
            "tpm, max_sockets, budget_day, budget_month, queue_share; an end user's: user_...), "
            "by key name.",
            "key",
            "limit",
        )
        self.generations = gauge("key_generations", "Generations running now, by client key name.", "key")
        self.tokens = count(
            "key_tokens",
            "Tokens counted against client keys' limits (prompt at admission, completion as produced), by key name.",
            "key",
            "direction",
        )
        self.spend = count(
            "key_spend_usd",
            "What client keys with limits spent in USD (generations settled, "
            "their models priced in UPSTREAMS_FILE), by key name.",
            "key",
        )
        self.alerts = count(
            "budget_alerts",
            "Budget alerts, by outcome: sent, failed (after every try) or dropped (the queue full).",
            "outcome",
        )


def _declarers(registry: CollectorRegistry | None) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """How a group declares its counters, gauges (summed over the workers still running) and histograms."""

    def count(name: str, documentation: str, *labels: str) -> Counter:
        return Counter(f"chatwait_{name}", documentation, labels, registry=registry)

    def gauge(name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(f"chatwait_{name}", documentation, labels, registry=registry, multiprocess_mode="livesum")

    def histogram(name: str, documentation: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
        return Histogram(f"chatwait_{name}", documentation, labels, registry=registry, buckets=buckets)

    return count, gauge, histogram
