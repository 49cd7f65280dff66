"""The environment variables Settings reads, each with its field and the parser that checks it
(a bad value stops start-up naming the variable and what to put)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import keys, upstreams
from . import values as read

PROVIDERS = ("auto", "openai", "local")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STREAM_STORES = ("memory", "redis")
FAILURE_MODES = ("open", "closed")
UNKNOWN_FIELD_MODES = ("pass", "refuse")

# Environment variable -> (Settings field, parser).
VARIABLES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "LLM_PROVIDER": ("llm_provider", read.choice(PROVIDERS)),
    "OPENAI_API_KEY": ("openai_api_key", read.text),
    "OPENAI_BASE_URL": ("openai_base_url", read.urls),
    "UPSTREAMS_FILE": ("upstreams_file", upstreams.upstreams_file),
    "UPSTREAM_REST_SECONDS": ("upstream_rest_seconds", read.seconds(0.1, 3600)),
    "UPSTREAM_BREAKER_FAILURES": ("upstream_breaker_failures", read.integer(0, 100)),
    "UPSTREAM_AFFINITY": ("upstream_affinity", read.bound),
    "UPSTREAM_ATTEMPT_SECONDS": ("upstream_attempt_seconds", read.seconds(0, 3600)),
    "OPENAI_MODEL": ("openai_model", read.text),
    "ALLOWED_MODELS": ("allowed_models", read.models),
    "CHATWAIT_API_KEYS": ("api_keys", keys.client_keys),
    "CHATWAIT_API_KEYS_FILE": ("api_keys_from_file", keys.client_key_file),
    "KEY_MAX_STREAMS": ("key_max_streams", read.integer(1, keys.MAX_LIMIT)),
    "KEY_REQUESTS_PER_MINUTE": ("key_requests_per_minute", read.integer(1, keys.MAX_LIMIT)),
    "KEY_TOKENS_PER_MINUTE": ("key_tokens_per_minute", read.integer(1, keys.MAX_LIMIT)),
    "KEY_MAX_SOCKETS": ("key_max_sockets", read.integer(1, keys.MAX_LIMIT)),
    "KEY_LIMITS_WITHOUT_REDIS": ("key_limits_without_redis", read.choice(FAILURE_MODES)),
    "ADMISSION_WAIT_SECONDS": ("admission_wait_seconds", read.seconds(0, 300)),
    "ADMISSION_QUEUE_SIZE": ("admission_queue_size", read.integer(1, 100_000)),
    "CORS_ORIGINS": ("cors_origins", read.origins),
    "MAX_TOKENS": ("max_tokens", read.integer(1, 1_000_000)),
    "MAX_MESSAGE_CHARS": ("max_message_chars", read.integer(1, 10_000_000)),
    "MAX_HISTORY_MESSAGES": ("max_history_messages", read.integer(0, 100_000)),
    "MAX_INPUT_TOKENS": ("max_input_tokens", read.integer(1, 10_000_000)),
    "TIMEOUT_SECONDS": ("timeout_seconds", read.seconds(0.05, 3600)),
    "IDLE_TIMEOUT_SECONDS": ("idle_timeout_seconds", read.seconds(0.05, 3600)),
    "MAX_STREAM_SECONDS": ("max_stream_seconds", read.seconds(0.1, 86400)),
    "UPSTREAM_RETRIES": ("upstream_retries", read.integer(0, 10)),
    "UPSTREAM_RESCUES": ("upstream_rescues", read.integer(0, 10)),
    "UPSTREAM_TAKEOVERS": ("upstream_takeovers", read.integer(0, 10)),
    "KEEPALIVE_SECONDS": ("keepalive_seconds", read.seconds(0.05, 3600)),
    "STREAM_TTL_SECONDS": ("stream_ttl_seconds", read.seconds(0.1, 86400)),
    "RESPONSE_TTL_SECONDS": ("response_ttl_seconds", read.seconds(0.1, 7 * 86400)),
    "MAX_STORED_RESPONSES": ("max_stored_responses", read.integer(1, 1_000_000)),
    "CONVERSATION_TTL_SECONDS": ("conversation_ttl_seconds", read.seconds(1, 365 * 86400)),
    "MAX_CONVERSATIONS": ("max_conversations", read.integer(1, 1_000_000)),
    "MAX_CONVERSATION_ITEMS": ("max_conversation_items", read.integer(2, 100_000)),
    "CONVERSATION_KEY_BYTES": ("conversation_key_bytes", read.integer(65_536, 1 << 40)),
    "CONVERSATION_WORKER_BYTES": ("conversation_worker_bytes", read.integer(65_536, 1 << 40)),
    "SOCKET_CHAINS_KEY_BYTES": ("socket_chains_key_bytes", read.integer(65_536, 1 << 40)),
    "SOCKET_CHAINS_WORKER_BYTES": ("socket_chains_worker_bytes", read.integer(65_536, 1 << 40)),
    "MAX_STREAMS": ("max_streams", read.integer(1, 1_000_000)),
    "STREAM_STORE": ("stream_store", read.choice(STREAM_STORES)),
    "REDIS_URL": ("redis_url", read.redis_url),
    "REDIS_SENTINELS": ("redis_sentinels", read.host_ports(26379)),
    "REDIS_SENTINEL_MASTER": ("redis_sentinel_master", read.text),
    "REDIS_CLUSTER": ("redis_cluster", read.flag),
    "REDIS_OUTAGE_SECONDS": ("redis_outage_seconds", read.seconds(0.5, 3600)),
    "LOG_LEVEL": ("log_level", read.choice(LOG_LEVELS, upper=True)),
    "LOG_REQUESTS": ("log_requests", read.flag),
    "METRICS_ENABLED": ("metrics_enabled", read.flag),
    "OPERATOR_TOKEN": ("operator_token", read.text),
    "READY_CACHE_SECONDS": ("ready_cache_seconds", read.seconds(0, 3600)),
    "READY_CHECK_MODELS": ("ready_check_models", read.flag),
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("otel_endpoint", read.url),
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ("otel_traces_endpoint", read.url),
    "OTEL_SERVICE_NAME": ("otel_service_name", read.text),
    "UNKNOWN_FIELDS": ("unknown_fields", read.choice(UNKNOWN_FIELD_MODES)),
    "MAX_BODY_BYTES": ("max_body_bytes", read.integer(1024, 100_000_000)),
    "MAX_CONVERSATION_CHARS": ("max_conversation_chars", read.integer(1, 100_000_000)),
    "REQUEST_READ_TIMEOUT_SECONDS": ("request_read_timeout_seconds", read.seconds(0.1, 3600)),
    "CLIENT_WRITE_TIMEOUT_SECONDS": ("client_write_timeout_seconds", read.seconds(0.1, 3600)),
    "REQUEST_MAX_HEAD_BYTES": ("request_max_head_bytes", read.integer(1024, 1_048_576)),
    "UPSTREAM_MAX_LINE_BYTES": ("upstream_max_line_bytes", read.integer(1024, 64 * 1_048_576)),
    "OPENAI_CA_BUNDLE": ("openai_ca_bundle", read.file("a PEM file of CA certificates")),
    "LOCAL_MODEL_PATH": ("local_model_path", read.file("a chat model in GGUF format")),
    "LOCAL_CONTEXT_TOKENS": ("local_context_tokens", read.integer(256, 1_048_576)),
    "LOCAL_THREADS": ("local_threads", read.integer(1, 256)),
    "LOCAL_INSTANCES": ("local_instances", read.integer(1, 16)),
    "LOCAL_MAX_TOKENS": ("local_max_tokens", read.integer(1, 1_000_000)),
    "LOCAL_REPEAT_PENALTY": ("local_repeat_penalty", read.number(1.0, 2.0)),
    "LOCAL_ABANDON_SECONDS": ("local_abandon_seconds", read.seconds(0.1, 86400)),
    "ABANDON_SECONDS": ("abandon_seconds", read.seconds(0.1, 86400)),
    "PORT": ("port", read.port),
    "BIND": ("bind", read.text),
    "WEB_CONCURRENCY": ("web_concurrency", read.integer(1, 256)),
    "GUNICORN_WORKER_CONNECTIONS": ("gunicorn_worker_connections", read.integer(2000, 1_000_000)),
    "GUNICORN_TIMEOUT": ("gunicorn_timeout", read.integer(1, 86400)),
    "GUNICORN_GRACEFUL_TIMEOUT": ("gunicorn_graceful_timeout", read.integer(0, 86400)),
    "GUNICORN_KEEPALIVE": ("gunicorn_keepalive", read.integer(0, 3600)),
    "GUNICORN_LIMIT_REQUEST_LINE": ("gunicorn_limit_request_line", read.integer(256, 8190)),
    "GUNICORN_LIMIT_REQUEST_FIELDS": ("gunicorn_limit_request_fields", read.integer(8, 1000)),
    "GUNICORN_LIMIT_REQUEST_FIELD_SIZE": ("gunicorn_limit_request_field_size", read.integer(256, 65536)),
    "GUNICORN_CONTROL_SOCKET": ("gunicorn_control_socket", read.flag),
}
