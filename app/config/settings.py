"""The validated configuration of one ChatWait process, grouped by concern: where replies come
from, who may call, what a request may hold, streams, conversations, Redis, what operators see,
the embedded model, and the gunicorn shell (see the README's table)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .caching import CacheSettings
from .keys import ClientKey
from .models import ModelKnowledge
from .upstreams import ANTHROPIC_VERSIONS, UpstreamServer, UpstreamsFile


@dataclasses.dataclass(frozen=True)
class UpstreamSettings:
    """Where replies come from: the provider, its servers and models, and how attempts go."""

    llm_provider: str = "auto"
    openai_api_key: str | None = dataclasses.field(default=None, repr=False)
    openai_base_url: str | None = None  # one URL, or a comma-separated list (a pool)
    anthropic_api_key: str | None = dataclasses.field(default=None, repr=False)  # LLM_PROVIDER=anthropic's
    anthropic_base_url: str | None = None  # None: Anthropic's own API
    anthropic_model: str = "claude-sonnet-4-5"
    anthropic_version: str = ANTHROPIC_VERSIONS[-1]  # LLM_PROVIDER=anthropic's: what a translation is sent as
    upstreams_file: UpstreamsFile | None = None
    upstreams: tuple[UpstreamServer, ...] = ()  # resolved: the file's servers, else OPENAI_BASE_URL's
    upstream_rest_seconds: float = 5.0
    upstream_misconfigured_seconds: float = 60.0  # a server refusing every attempt since start this long: misconfigured
    upstream_breaker_failures: int = 3  # failures in a row that rest a server alone in serving a model (0: never)
    upstream_affinity: float = 1.25  # how much busier than the average a conversation's server may be (0: off)
    # None: 10 s when a fallback model could answer instead, else all of TIMEOUT_SECONDS; 0:
    # always all of it.
    upstream_attempt_seconds: float | None = None
    openai_model: str = "gpt-4o-mini"
    allowed_models: tuple[str, ...] = ()
    timeout_seconds: float = 30.0
    idle_timeout_seconds: float = 30.0
    upstream_retries: int = 2
    upstream_rescues: int = 2  # continuations of one reply an upstream cut mid-answer (0: none)
    upstream_takeovers: int = 2  # times one stream is continued after its worker died (Redis; 0: none)
    upstream_max_line_bytes: int = 1_048_576
    openai_ca_bundle: Path | None = None
    model_catalog: bool = True  # models priced from the catalog (`catalog`) where nobody priced them
    ready_check_models: bool = True  # /ready holds each configured model against its server's GET /models


@dataclasses.dataclass(frozen=True)
class AccessSettings:
    """Who may call: client keys, their default limits, fair admission, browsers' origins."""

    api_keys: tuple[ClientKey, ...] = ()  # ClientKey hides its key from repr
    api_keys_from_file: tuple[ClientKey, ...] = ()
    key_max_streams: int | None = None  # limits of a key that sets none of its own (None: unlimited)
    key_requests_per_minute: int | None = None
    key_tokens_per_minute: int | None = None
    key_max_sockets: int | None = 64  # a key's WebSockets open at once (its line's max_sockets= says otherwise)
    key_limits_without_redis: str = "open"  # Redis out of reach: admit (open) or refuse (closed)
    budget_min_tokens: int = 256  # a budget's last answers: max_tokens lowered to fit what is left, not below this
    admission_wait_seconds: float = 0.0  # MAX_STREAMS reached: how long a request waits for a slot
    admission_queue_size: int = 1000  # places in a worker's queue, shared fairly among keys when full
    cors_origins: tuple[str, ...] = ()  # () = same origin only; ("*",) = any
    admin_api_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)  # open /v1/admin/ (keys managed)
    data_dir: str = "data"  # where managed keys are kept without Redis (an SQLite file)


@dataclasses.dataclass(frozen=True)
class RequestSettings:
    """What a request may hold and how long it may take to arrive or be written."""

    max_tokens: int | None = None  # the operator's bound on a reply (None: each model's own output limit)
    max_message_chars: int = 8000
    max_history_messages: int = 200
    max_input_tokens: int = 16000
    max_body_bytes: int = 1_048_576
    max_conversation_chars: int | None = None  # None: 12 characters per input token allowed
    # A field the OpenAI and Anthropic families do not know: passed on or left out, and named (pass),
    # or a 400 (refuse). The native API always refuses one.
    unknown_fields: str = "pass"
    request_read_timeout_seconds: float = 10.0
    client_write_timeout_seconds: float = 30.0
    request_max_head_bytes: int = 65536


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """Streams: where they are kept, how many, how long, and when an unfollowed one goes."""

    max_streams: int = 5000
    stream_store: str = "memory"
    max_stream_seconds: float = 600.0
    keepalive_seconds: float = 15.0
    stream_ttl_seconds: float = 300.0
    response_ttl_seconds: float = 3600.0
    max_stored_responses: int = 1000  # finished stored responses kept per client key
    abandon_seconds: float = 30.0


@dataclasses.dataclass(frozen=True)
class ConversationSettings:
    """Conversations and a socket's chains: how many, how big, how long."""

    conversation_ttl_seconds: float = 604800.0  # a conversation is kept this long after its last change
    max_conversations: int = 1000  # conversations kept per client key (the least recently changed go first)
    max_conversation_items: int = 1000  # items kept per conversation (the oldest go first)
    conversation_key_bytes: int = 64 * 1_048_576  # items all of a key's conversations hold
    conversation_worker_bytes: int = 512 * 1_048_576  # items all conversations hold in one worker (memory store)
    socket_chains_key_bytes: int = 64 * 1_048_576  # a key's WebSockets' store:false chains, in one worker
    socket_chains_worker_bytes: int = 256 * 1_048_576  # every WebSocket's store:false chains in one worker


@dataclasses.dataclass(frozen=True)
class RedisSettings:
    """Where Redis is, and what live streams wait through when it is away."""

    redis_url: str = dataclasses.field(default="redis://localhost:6379/0", repr=False)
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    redis_cluster: bool = False
    redis_outage_seconds: float = 10.0  # what live streams wait through a Redis outage before they end


@dataclasses.dataclass(frozen=True)
class OperationSettings:
    """What operators see: logs, metrics, /ready, traces."""

    log_level: str = "INFO"
    log_requests: bool = True  # false: no request lines for the probes (/health, /ready)
    metrics_enabled: bool = True
    # Guards /metrics and /ready's details (a bearer token; None: open, as for a private network).
    operator_token: str | None = dataclasses.field(default=None, repr=False)
    ready_cache_seconds: float = 5.0
    # Traces over OTLP/HTTP, where the standard variables point (None: no traces); the exporter
    # reads the rest of the standard OTEL_EXPORTER_OTLP_* variables itself.
    otel_endpoint: str | None = None
    otel_traces_endpoint: str | None = None
    otel_service_name: str = "chatwait"
    # Budget alerts: where they are POSTed (None: none), the secret that signs them, the thresholds.
    budget_alert_webhook: str | None = None
    budget_alert_secret: str | None = dataclasses.field(default=None, repr=False)
    budget_alert_thresholds: tuple[int, ...] = (50, 80, 100)  # percent of a budget


@dataclasses.dataclass(frozen=True)
class LocalSettings:
    """The embedded model."""

    local_model_path: Path | None = None
    local_context_tokens: int = 4096
    local_threads: int = dataclasses.field(default_factory=lambda: min(4, os.cpu_count() or 1))
    local_instances: int = 1
    local_max_tokens: int = 512
    local_repeat_penalty: float = 1.2  # against the loops a small model falls into (1.0: none)
    local_abandon_seconds: float = 10.0


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """The gunicorn shell: where it listens, its workers and their bounds."""

    port: int = 8000
    bind: str | None = None
    web_concurrency: int | None = None  # None: one per CPU core with Redis, else 1
    gunicorn_worker_connections: int = 4000
    gunicorn_timeout: int = 30
    gunicorn_graceful_timeout: int = 30
    gunicorn_keepalive: int = 5
    gunicorn_limit_request_line: int = 4094
    gunicorn_limit_request_fields: int = 50
    gunicorn_limit_request_field_size: int = 8190
    gunicorn_control_socket: bool = False


@dataclasses.dataclass(frozen=True)
class Settings(ModelKnowledge):
    """Validated configuration of one ChatWait process: a group per concern."""

    upstream: UpstreamSettings = dataclasses.field(default_factory=UpstreamSettings)
    access: AccessSettings = dataclasses.field(default_factory=AccessSettings)
    requests: RequestSettings = dataclasses.field(default_factory=RequestSettings)
    streams: StreamSettings = dataclasses.field(default_factory=StreamSettings)
    conversations: ConversationSettings = dataclasses.field(default_factory=ConversationSettings)
    redis: RedisSettings = dataclasses.field(default_factory=RedisSettings)
    operations: OperationSettings = dataclasses.field(default_factory=OperationSettings)
    local: LocalSettings = dataclasses.field(default_factory=LocalSettings)
    server: ServerSettings = dataclasses.field(default_factory=ServerSettings)
    caching: CacheSettings = dataclasses.field(default_factory=CacheSettings)

    @classmethod
    def of(cls, values: dict[str, Any]) -> Settings:
        """Settings from flat field values (each field belongs to one group)."""
        grouped: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            grouped.setdefault(FIELD_GROUP[name], {})[name] = value
        return cls(**{group: GROUP_TYPES[group](**fields) for group, fields in grouped.items()})

    def but(self, **changes: Any) -> Settings:
        """These settings with some fields changed (flat names, as `of` takes them)."""
        grouped: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            grouped.setdefault(FIELD_GROUP[name], {})[name] = value
        changed = {group: dataclasses.replace(getattr(self, group), **fields) for group, fields in grouped.items()}
        return dataclasses.replace(self, **changed)

    @property
    def default_model(self) -> str:
        """The model used when a request names none."""
        if self.upstream.llm_provider == "local" and self.local.local_model_path is not None:
            return local_model_name(self.local.local_model_path)
        return self.upstream.openai_model

    @property
    def client_keys(self) -> tuple[str, ...]:
        """The keys clients must present (CHATWAIT_API_KEYS and its file); none: the API is open."""
        return tuple(entry.key for entry in self.keys)

    @property
    def keys(self) -> tuple[ClientKey, ...]:
        """Every client key with its name and limits (the defaults where it sets none); a key in
        both CHATWAIT_API_KEYS and its file is the file's."""
        listed = {entry.key: entry for entry in self.access.api_keys}
        listed.update((entry.key, entry) for entry in self.access.api_keys_from_file)
        return tuple(self.with_key_defaults(entry) for entry in listed.values())

    def with_key_defaults(self, entry: ClientKey) -> ClientKey:
        """`entry` with each limit it leaves out taken from KEY_MAX_STREAMS and the like."""
        access = self.access
        defaults = (access.key_max_streams, access.key_requests_per_minute, access.key_tokens_per_minute)
        return entry.with_defaults(*defaults, access.key_max_sockets)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every configured secret, redacted from the logs wherever it appears."""
        upstream_keys = (server.api_key for server in self.upstream.upstreams)
        found = (
            self.upstream.openai_api_key,
            self.upstream.anthropic_api_key,
            self.operations.operator_token,
            self.operations.budget_alert_secret,
            *upstream_keys,
            *self.client_keys,
            *self.access.admin_api_keys,
        )
        return tuple(dict.fromkeys(key for key in found if key))

    def fallbacks_of(self, model: str, too_long: bool = False) -> tuple[str, ...]:
        """The models UPSTREAMS_FILE names to answer instead of `model` when its servers fail
        (`too_long`: when the input is over its context window), in order."""
        found = self.upstream.upstreams_file
        if found is None:
            return ()
        return (found.context_window if too_long else found.fallbacks).get(model, ())

    @property
    def traced(self) -> bool:
        """Whether traces are exported (an OTLP endpoint is set)."""
        return self.operations.otel_endpoint is not None or self.operations.otel_traces_endpoint is not None

    @property
    def workers(self) -> int:
        """gunicorn workers: WEB_CONCURRENCY, else one per core with a shared store (Redis), else 1."""
        if self.server.web_concurrency is not None:
            return self.server.web_concurrency
        return (os.cpu_count() or 1) if self.streams.stream_store == "redis" else 1

    @property
    def bind_address(self) -> str:
        """Where gunicorn listens: BIND, else every interface on PORT (so a container is reachable)."""
        return self.server.bind or f"0.0.0.0:{self.server.port}"


GROUP_TYPES: dict[str, Callable[..., Any]] = {
    "upstream": UpstreamSettings,
    "access": AccessSettings,
    "requests": RequestSettings,
    "streams": StreamSettings,
    "conversations": ConversationSettings,
    "redis": RedisSettings,
    "operations": OperationSettings,
    "local": LocalSettings,
    "server": ServerSettings,
    "caching": CacheSettings,
}
FIELD_GROUP = {field.name: group for group, kind in GROUP_TYPES.items() for field in dataclasses.fields(kind)}  # type: ignore[arg-type]


def local_model_name(path: Path) -> str:
    """The model name clients see for a GGUF file: its file name without the extension."""
    return path.name.removesuffix(".gguf")
