"""The pool's configuration: OPENAI_BASE_URL lists, UPSTREAMS_FILE (TOML and YAML), and errors
that name the entry and field without ever echoing a key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings

KEY = "sk-secret-0123456789abcdefghij"


def _settings(**env: str):
    return load_settings(environ=env)


def test_a_comma_list_is_a_pool_of_servers_with_one_key_or_one_each() -> None:
    one_key = _settings(OPENAI_BASE_URL="http://a:8000/v1, http://b:8000/v1/", OPENAI_API_KEY=KEY)
    assert [(s.name, s.url, s.api_key) for s in one_key.upstream.upstreams] == [
        ("a:8000", "http://a:8000/v1", KEY),
        ("b:8000", "http://b:8000/v1", KEY),
    ]
    each = _settings(OPENAI_BASE_URL="http://a/v1,http://a/v2", OPENAI_API_KEY=f"{KEY}1,{KEY}2")
    assert [(s.name, s.api_key) for s in each.upstream.upstreams] == [("a", f"{KEY}1"), ("a#2", f"{KEY}2")]
    assert {f"{KEY}1", f"{KEY}2"} <= set(each.secrets)  # each key is redacted from the logs


def test_one_server_or_openai_itself_is_a_pool_of_one() -> None:
    assert [(s.name, s.url) for s in _settings(OPENAI_API_KEY=KEY).upstream.upstreams] == [("api.openai.com", None)]
    listed = _settings(OPENAI_BASE_URL="http://localhost:11434/v1").upstream.upstreams
    assert [s.name for s in listed] == ["localhost:11434"]


def test_keys_that_do_not_match_the_servers_stop_start_up_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as raised:
        _settings(OPENAI_BASE_URL="http://a/v1,http://b/v1,http://c/v1", OPENAI_API_KEY=f"{KEY}1,{KEY}2")
    assert "2 keys for 3 servers" in str(raised.value) and KEY not in str(raised.value)
    with pytest.raises(ConfigError, match=r"OPENAI_BASE_URL.*not an http"):
        _settings(OPENAI_BASE_URL="http://a/v1,ftp://b")


def test_a_toml_file_lists_servers_with_models_weights_and_keys(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LOCAL_KEY", KEY)
    listing = tmp_path / "upstreams.toml"
    listing.write_text(
        '[[upstream]]\nname = "openai"\nurl = "https://api.openai.com/v1"\napi_key_env = "LOCAL_KEY"\n'
        'models = ["gpt-4o-mini", "gpt-4o"]\nweight = 3\n\n'
        '[[upstream]]\nurl = "http://10.0.0.5:8000/v1"\nmodels = ["gpt-4o-mini", "llama"]\n'
    )
    settings = _settings(UPSTREAMS_FILE=str(listing))
    assert settings.upstream.llm_provider == "openai"
    assert [(s.name, s.models, s.weight, s.api_key) for s in settings.upstream.upstreams] == [
        ("openai", ("gpt-4o-mini", "gpt-4o"), 3.0, KEY),
        ("10.0.0.5:8000", ("gpt-4o-mini", "llama"), 1.0, None),
    ]
    assert settings.upstream.allowed_models == ("gpt-4o-mini", "gpt-4o", "llama")  # the default model, then the file's
    assert KEY in settings.secrets and KEY not in repr(settings)


def test_a_yaml_file_works_the_same(tmp_path: Path) -> None:
    listing = tmp_path / "upstreams.yaml"
    listing.write_text(
        "upstreams:\n  - name: vllm-1\n    url: http://10.0.0.5:8000/v1\n    models: [llama]\n"
        "  - name: vllm-2\n    url: http://10.0.0.6:8000/v1\n    models: [llama]\n    weight: 0.5\n"
    )
    settings = _settings(UPSTREAMS_FILE=str(listing))
    assert [(s.name, s.weight) for s in settings.upstream.upstreams] == [("vllm-1", 1.0), ("vllm-2", 0.5)]
    assert settings.default_model == "llama" and settings.upstream.allowed_models == ("llama",)


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ('url = "http://a/v1"\nweight = -1', "entry 1 (a): weight must be a number above 0"),
        ('url = "http://a/v1"\nmodels = "llama"', "entry 1 (a): models must be a list"),
        ('url = "http://a/v1"\nkey = "x"', "entry 1: 'key' is not a field"),
        ('name = "a"', "entry 1: url is missing"),
        ('url = "gopher://a"', "entry 1: url"),
        ('url = "http://a/v1"\nname = "has space"', "entry 1: name must be"),
        ('url = "http://a/v1"\napi_key_env = "NOT_SET_ANYWHERE"', "names 'NOT_SET_ANYWHERE', which is not set"),
        (f'url = "http://a/v1"\napi_key = "{KEY}"\napi_key_env = "X"', "give api_key or api_key_env, not both"),
        ('url = "http://a/v1"\nconcurrency = 0', "entry 1 (a): concurrency must be a whole number from 1"),
        ('url = "http://a/v1"\nconcurrency = 1.5', "entry 1 (a): concurrency must be a whole number from 1"),
        ('url = "http://a/v1"\ncontinuation = "maybe"', "entry 1 (a): continuation must be one of prefill"),
        ('url = "http://a/v1"\nkind = "gemini"', "entry 1 (a): kind must be one of openai, anthropic"),
        ('url = "http://a/v1"\nallow_fields = "grammar"', "entry 1 (a): allow_fields must be a list of field names"),
        ('url = "http://a/v1"\nallow_fields = ["top_k"]', "allow_fields names 'top_k', which ChatWait never holds"),
    ],
)
def test_a_bad_entry_stops_start_up_naming_entry_and_field(tmp_path: Path, entry: str, said: str) -> None:
    listing = tmp_path / "upstreams.toml"
    listing.write_text(f"[[upstream]]\n{entry}\n")
    with pytest.raises(ConfigError) as raised:
        _settings(UPSTREAMS_FILE=str(listing))
    assert str(raised.value).startswith("UPSTREAMS_FILE") and said in str(raised.value)
    assert KEY not in str(raised.value)


def test_files_that_are_not_pools_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(f'[[upstream]\nurl = "http://a/v1"\napi_key = "{KEY}"\n')
    with pytest.raises(ConfigError, match="cannot be read as TOML") as raised:
        _settings(UPSTREAMS_FILE=str(broken))
    assert KEY not in str(raised.value)
    assert "(line 1, column 11: Expected" in str(raised.value), "where, and what the parser found there"
    deeper = tmp_path / "deeper.toml"
    deeper.write_text(f'[[upstream]]\nurl = "http://a/v1"\napi_key = = "{KEY}"\n')
    with pytest.raises(ConfigError, match=r"\(line 3, column 11: Invalid value\)") as raised:
        _settings(UPSTREAMS_FILE=str(deeper))
    assert KEY not in str(raised.value)
    yaml_broken = tmp_path / "broken.yaml"
    yaml_broken.write_text("upstreams:\n  - {name: a\n")
    with pytest.raises(ConfigError, match="line 3, column 1"):
        _settings(UPSTREAMS_FILE=str(yaml_broken))
    empty = tmp_path / "empty.yaml"
    empty.write_text("servers: []\n")
    with pytest.raises(ConfigError, match="lists no server"):
        _settings(UPSTREAMS_FILE=str(empty))
    twice = tmp_path / "twice.toml"
    twice.write_text('[[upstream]]\nurl = "http://a/v1"\n[[upstream]]\nurl = "http://a/v1"\n')
    with pytest.raises(ConfigError, match="two servers are named 'a'"):
        _settings(UPSTREAMS_FILE=str(twice))


def test_the_file_and_the_list_do_not_mix_and_every_allowed_model_needs_a_server(tmp_path: Path) -> None:
    listing = tmp_path / "upstreams.toml"
    listing.write_text('[[upstream]]\nurl = "http://a/v1"\nmodels = ["llama"]\n')
    with pytest.raises(ConfigError, match="both list servers"):
        _settings(UPSTREAMS_FILE=str(listing), OPENAI_BASE_URL="http://b/v1")
    with pytest.raises(ConfigError, match="No server in UPSTREAMS_FILE serves 'gpt-4o'"):
        _settings(UPSTREAMS_FILE=str(listing), ALLOWED_MODELS="llama,gpt-4o")


@pytest.mark.parametrize(
    ("document", "language", "suffix"), [("README.md", "toml", ".toml"), ("docs/scaling.md", "yaml", ".yaml")]
)
def test_the_documented_examples_are_valid_pools(
    tmp_path: Path, monkeypatch, document: str, language: str, suffix: str
) -> None:
    text = (Path(__file__).resolve().parents[2] / document).read_text(encoding="utf-8")
    fence = "`" * 3
    examples = [b for b in re.findall(rf"{fence}{language}\n(.*?){fence}", text, re.DOTALL) if "upstream" in b]
    monkeypatch.setenv("OPENAI_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_KEY", KEY + "a")
    assert examples
    for number, example in enumerate(examples):
        listing = tmp_path / f"upstreams{number}{suffix}"
        listing.write_text(example)
        settings = _settings(UPSTREAMS_FILE=str(listing))
        assert settings.upstream.upstreams[0].name == "openai" and settings.upstream.upstreams[0].api_key == KEY
        if "anthropic" in example:  # a server that speaks the Messages API
            others = [(s.name, s.kind) for s in settings.upstream.upstreams if s.kind != "openai"]
            assert others == [("claude", "anthropic")]
        if "context_window_fallbacks" in example:  # the fallbacks example
            assert settings.fallbacks_of("gpt-4o-mini") == ("llama-8b",)
            assert settings.fallbacks_of("llama-8b", too_long=True) == ("llama-70b",)
            assert settings.upstream.upstreams[1].continuation == "prefill"
