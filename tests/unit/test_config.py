"""Settings: typed, validated at start-up, with a message naming the variable and the fix."""

from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings
from app.config.rules import DEFAULT_OUTPUT_LIMIT

BASE = {"OPENAI_API_KEY": "sk-test"}


def test_defaults() -> None:
    settings = load_settings(environ=BASE)
    assert settings.upstream.llm_provider == "openai", "auto picks openai when a key is set"
    assert settings.requests.max_message_chars == 8000
    assert settings.upstream.timeout_seconds == 30
    assert settings.streams.keepalive_seconds == 15
    assert settings.streams.stream_ttl_seconds == 300
    assert settings.upstream.allowed_models == ("gpt-4o-mini",)
    assert settings.upstream.idle_timeout_seconds == 30


def test_values_are_parsed_and_overrides_win() -> None:
    settings = load_settings(
        {"MAX_TOKENS": 64, "TIMEOUT_SECONDS": "2.5"},
        environ={**BASE, "ALLOWED_MODELS": "a, b,a", "OPENAI_MODEL": "b", "LOG_LEVEL": "debug", "MAX_TOKENS": "9"},
    )
    assert settings.requests.max_tokens == 64
    assert settings.upstream.timeout_seconds == 2.5
    assert settings.upstream.idle_timeout_seconds == 2.5  # follows TIMEOUT_SECONDS unless set
    assert settings.upstream.allowed_models == ("a", "b")
    assert settings.operations.log_level == "DEBUG"


def test_blank_values_count_as_unset() -> None:
    settings = load_settings(environ={**BASE, "OPENAI_MODEL": "  ", "MAX_TOKENS": "", "OPENAI_BASE_URL": ""})
    assert settings.upstream.openai_model == "gpt-4o-mini" and settings.requests.max_tokens is None
    assert settings.upstream.openai_base_url is None


def test_the_key_is_not_in_the_repr() -> None:
    assert "sk-test" not in repr(load_settings(environ=BASE))


@pytest.mark.parametrize(
    "env,fragment",
    [
        ({"MAX_TOKENS": "many"}, "MAX_TOKENS='many' is not a whole number"),
        ({"MAX_TOKENS": "0"}, "MAX_TOKENS=0 is out of range"),
        ({"TIMEOUT_SECONDS": "nan"}, "TIMEOUT_SECONDS=nan is out of range"),
        ({"TIMEOUT_SECONDS": "soon"}, "is not a number of seconds"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD' is not supported"),
        ({"LLM_PROVIDER": "magic"}, "LLM_PROVIDER='magic' is not supported"),
        ({"OPENAI_BASE_URL": "localhost:11434"}, "is not an http(s) URL"),
        ({"ALLOWED_MODELS": " , "}, "ALLOWED_MODELS lists no model"),
        ({"ALLOWED_MODELS": "x,y"}, "OPENAI_MODEL='gpt-4o-mini' is not in ALLOWED_MODELS"),
        ({"METRICS_ENABLED": "maybe"}, "METRICS_ENABLED='maybe' is not a boolean"),
        ({"PORT": "http"}, "PORT='http' is not valid"),
        ({"PORT": "65536"}, "PORT='65536' is not valid"),
        ({"PORT": "٨٠"}, "is not valid: use a port number"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY=0 is out of range"),
        ({"GUNICORN_WORKER_CONNECTIONS": "100"}, "GUNICORN_WORKER_CONNECTIONS=100 is out of range"),
        ({"GUNICORN_KEEPALIVE": "-1"}, "GUNICORN_KEEPALIVE=-1 is out of range"),
        ({"GUNICORN_CONTROL_SOCKET": "on"}, "GUNICORN_CONTROL_SOCKET='on' is not a boolean"),
        ({"CORS_ORIGINS": "https://app.example.com/chat"}, "'https://app.example.com/chat', which is not a web origin"),
        ({"CORS_ORIGINS": "app.example.com"}, "list origins such as https://app.example.com"),
        ({"CORS_ORIGINS": "*,https://a.example"}, "'*', which is not a web origin"),
        ({"LOCAL_ABANDON_SECONDS": "0"}, "LOCAL_ABANDON_SECONDS=0 is out of range"),
        ({"LOCAL_REPEAT_PENALTY": "3"}, "LOCAL_REPEAT_PENALTY=3 is out of range: use 1 to 2"),
        ({"LOCAL_REPEAT_PENALTY": "strong"}, "LOCAL_REPEAT_PENALTY='strong' is not a number"),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(env, fragment) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={**BASE, **env})
    assert fragment in str(raised.value)


def test_openai_needs_a_key_or_a_base_url() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load_settings(environ={"LLM_PROVIDER": "openai"})
    settings = load_settings(environ={"OPENAI_BASE_URL": "http://localhost:11434/v1"})
    assert settings.upstream.llm_provider == "openai" and settings.upstream.openai_api_key is None


def test_auto_without_upstream_is_the_embedded_model() -> None:
    settings = load_settings(environ={})
    assert settings.upstream.llm_provider == "local"
    assert settings.local.local_model_path is not None and settings.local.local_model_path.name.endswith(".gguf")
    assert settings.default_model == "SmolLM2-135M-Instruct.Q4_1"
    assert settings.upstream.allowed_models == ("SmolLM2-135M-Instruct.Q4_1",)
    assert load_settings(environ={"LLM_PROVIDER": "local", "OPENAI_API_KEY": "sk-x"}).upstream.llm_provider == "local"


def test_cors_origins_are_normalised() -> None:
    assert load_settings(environ=BASE).access.cors_origins == ()
    listed = load_settings(environ={**BASE, "CORS_ORIGINS": " https://App.example.com/, http://localhost:3000 "})
    assert listed.access.cors_origins == ("https://app.example.com", "http://localhost:3000")
    assert load_settings(environ={**BASE, "CORS_ORIGINS": "*"}).access.cors_origins == ("*",)
    assert load_settings(environ={**BASE, "CORS_ORIGINS": "http://[::1]:8080"}).access.cors_origins == (
        "http://[::1]:8080",
    )


def test_the_embedded_model_has_its_own_reply_limit() -> None:
    local = load_settings(environ={})
    assert local.requests.max_tokens == 512 and local.local.local_abandon_seconds == 10
    assert load_settings(environ={"LOCAL_MAX_TOKENS": "64", "MAX_TOKENS": "2000"}).requests.max_tokens == 64
    others = load_settings(environ={**BASE, "LOCAL_MAX_TOKENS": "64"})
    assert others.requests.max_tokens is None, "others: each model's own output limit"
    assert others.output_limit("gpt-4o-mini") == 16_384 and others.output_limit("fake-model") == DEFAULT_OUTPUT_LIMIT
    assert load_settings(environ={**BASE, "MAX_TOKENS": "20000"}).output_limit("gpt-4o-mini") == 16_384
    assert load_settings(environ={**BASE, "MAX_TOKENS": "9000"}).output_limit("claude-sonnet-5") == 9000
    bounded = load_settings(environ={"MAX_TOKENS": "64"})
    assert bounded.requests.max_tokens == 64, "MAX_TOKENS bounds the embedded model too (issue 82)"


def test_local_model_path_must_be_a_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"LOCAL_MODEL_PATH='/nowhere/model\.gguf' is not a file"):
        load_settings(environ={"LOCAL_MODEL_PATH": "/nowhere/model.gguf"})
    model = tmp_path / "tiny-chat.gguf"
    model.write_bytes(b"GGUF")
    settings = load_settings(environ={"LOCAL_MODEL_PATH": str(model)})
    assert settings.local.local_model_path == model and settings.default_model == "tiny-chat"


def test_missing_bundled_model_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr("app.config.bundled_model_path", lambda: None)
    with pytest.raises(ConfigError, match="embedded model file was not found"):
        load_settings(environ={})


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="MAX_TOKEN is not a ChatWait setting"):
        load_settings({"MAX_TOKEN": 1}, environ=BASE)


def test_workers_default_to_one_per_core_with_redis_and_one_with_memory(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert load_settings(environ=BASE).workers == 1
    shared = load_settings(environ={**BASE, "STREAM_STORE": "redis", "REDIS_URL": "redis://cache:6379/2"})
    assert (shared.streams.stream_store, shared.redis.redis_url, shared.workers) == ("redis", "redis://cache:6379/2", 6)
    assert load_settings(environ={**BASE, "STREAM_STORE": "Redis", "WEB_CONCURRENCY": "3"}).workers == 3
    assert "redis_url" not in repr(shared), "a Redis URL may hold a password"
    with pytest.raises(ConfigError, match="STREAM_STORE='disk' is not supported: use one of memory, redis"):
        load_settings(environ={**BASE, "STREAM_STORE": "disk"})
    with pytest.raises(ConfigError, match="REDIS_URL is not a Redis URL"):
        load_settings(environ={**BASE, "REDIS_URL": "http://cache:6379"})


def test_the_server_settings_gunicorn_reads() -> None:
    settings = load_settings(environ=BASE)
    assert settings.bind_address == "0.0.0.0:8000"
    assert (settings.workers, settings.server.gunicorn_worker_connections) == (1, 4000)
    server = settings.server
    assert (server.gunicorn_timeout, server.gunicorn_graceful_timeout, server.gunicorn_keepalive) == (30, 30, 5)
    assert settings.server.gunicorn_control_socket is False
    custom = load_settings(environ={**BASE, "PORT": "9000", "GUNICORN_KEEPALIVE": "0", "GUNICORN_CONTROL_SOCKET": "1"})
    assert custom.bind_address == "0.0.0.0:9000"
    assert custom.server.gunicorn_keepalive == 0 and custom.server.gunicorn_control_socket
    assert load_settings(environ={**BASE, "PORT": "9000", "BIND": "127.0.0.1:7000"}).bind_address == "127.0.0.1:7000"


KEY = "k" * 16


def test_client_keys_from_the_variable_and_the_file(tmp_path) -> None:
    assert load_settings(environ=BASE).client_keys == ()
    key_file = tmp_path / "keys"
    key_file.write_text(f"# comment\n\n  {KEY}b  \n{KEY}a\n", encoding="utf-8")
    both = {"CHATWAIT_API_KEYS": f" {KEY}a, ,{KEY}c", "CHATWAIT_API_KEYS_FILE": str(key_file)}
    settings = load_settings(environ={**BASE, **both})
    assert settings.client_keys == (f"{KEY}a", f"{KEY}c", f"{KEY}b")
    assert settings.secrets == ("sk-test", f"{KEY}a", f"{KEY}c", f"{KEY}b")
    assert KEY not in repr(settings)


@pytest.mark.parametrize(
    "raw,words",
    [
        ("short-key", "key number 1"),
        (f"{KEY},with space{KEY}", "key number 2"),
        (f"{KEY}é", "key number 1"),
        (" , ", "holds no key"),
        (",".join(f"{KEY}{index}" for index in range(101)), "at most 100"),
    ],
)
def test_bad_client_keys_stop_the_start(raw: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={**BASE, "CHATWAIT_API_KEYS": raw})
    assert "CHATWAIT_API_KEYS" in str(raised.value) and words in str(raised.value)
    assert KEY not in str(raised.value), "the message never shows a key"


def test_a_key_file_that_is_missing_or_empty_stops_the_start(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not a file"):
        load_settings(environ={**BASE, "CHATWAIT_API_KEYS_FILE": str(tmp_path / "nope")})
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="holds no key"):
        load_settings(environ={**BASE, "CHATWAIT_API_KEYS_FILE": str(empty)})


ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"


def test_llm_provider_anthropic_is_one_variable_away_and_says_what_it_needs() -> None:
    """Issue 82: LLM_PROVIDER=anthropic with ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL, a model)."""
    with pytest.raises(ConfigError, match="LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY"):
        load_settings(environ={"LLM_PROVIDER": "anthropic"})
    found = load_settings(environ={"LLM_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    (server,) = found.upstream.upstreams
    assert (server.kind, server.url, server.api_key) == ("anthropic", "https://api.anthropic.com/v1", ANTHROPIC_KEY)
    assert (server.url_setting, server.key_setting) == ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")
    assert found.upstream.llm_provider == "anthropic" and found.default_model == "claude-sonnet-4-5"
    assert found.upstream.allowed_models == ("claude-sonnet-4-5",) and ANTHROPIC_KEY in found.secrets
    alone = load_settings(environ={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_MODEL": "claude-haiku-4-5"})
    assert alone.upstream.llm_provider == "anthropic" and alone.default_model == "claude-haiku-4-5", "auto"
    for base in ("http://10.0.0.7:9000", "http://10.0.0.7:9000/v1/"):  # as the SDK takes it, or with /v1
        elsewhere = load_settings(environ={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": base})
        assert elsewhere.upstream.upstreams[0].url == "http://10.0.0.7:9000/v1"
    with pytest.raises(ConfigError, match='kind = "anthropic"'):
        load_settings(environ={"LLM_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                               "OPENAI_BASE_URL": "http://10.0.0.5:8000/v1"})  # fmt: skip
    with pytest.raises(ConfigError, match="use one of auto, openai, anthropic, local"):
        load_settings(environ={"LLM_PROVIDER": "claude"})


def test_a_budget_over_models_without_a_price_is_named_at_start_up(tmp_path, caplog) -> None:
    """Issue 82: a budget counts only priced models; a key whose models have none is named once."""
    from app import _warn_of_unpriced_budgets

    keys = tmp_path / "keys.txt"
    keys.write_text("budget-key-0123456789abcdef name=spender budget_day=1\nplain-key-0123456789abcdef name=free\n")
    listing = tmp_path / "upstreams.toml"
    listing.write_text(
        '[[upstream]]\nurl = "http://10.0.0.5:8000/v1"\nmodels = ["priced", "free"]\n'
        "[prices.priced]\ninput = 1.0\noutput = 2.0\n"
    )
    settings = load_settings(environ={"UPSTREAMS_FILE": str(listing), "CHATWAIT_API_KEYS_FILE": str(keys)})
    with caplog.at_level("WARNING", logger="chatwait"):
        _warn_of_unpriced_budgets(settings)
    (said,) = [record for record in caplog.records if record.msg == "budget_without_price"]
    assert said.key_name == "spender" and said.models == ["free"] and "prices" in said.detail
