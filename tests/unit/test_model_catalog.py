"""The model catalog and rules: prices read from genai-prices (an operator's first, the base rate
of a tiered one), unknown models unpriced, each model's rules by name with UPSTREAMS_FILE's
description over them, the translation to the Messages API as each model and API version take
it, the response cache's rule for models whose sampling is fixed, Claude Code's end user."""

from __future__ import annotations

import pytest

from app.apis.messages.intake import stable_user
from app.config import ConfigError, load_settings
from app.config.catalog import CATALOG
from app.config.rules import DEFAULT_OUTPUT_LIMIT, described_table, rules_of
from app.providers.anthropic.request import adapted
from app.providers.call import ChatCall
from app.response_cache.keying import sampled

BASE = {"OPENAI_API_KEY": "sk-test-" + "k" * 24, "OPENAI_MODEL": "gpt-4o-mini"}


def test_the_catalog_prices_its_models_and_not_others() -> None:
    listed = CATALOG.find("gpt-4o-mini")
    assert listed is not None and listed.price is not None and listed.context_window == 128_000
    assert (listed.price.input, listed.price.cached_input, listed.price.output) == (0.15, 0.075, 0.6)
    claude = CATALOG.find("claude-sonnet-4-5-20250929")  # a dated name finds its model
    assert claude is not None and claude.price is not None and claude.price.cache_write_long is not None
    tiered = CATALOG.find("claude-sonnet-4-6")
    assert tiered is not None and tiered.price is not None and tiered.price.input > 0, "a tier's base rate"
    for unknown in ("fake-model", "llama-3.1-8b", "SmolLM2-360M-Instruct-Q8_0"):
        assert CATALOG.find(unknown) is None, unknown


def test_an_operators_price_comes_before_the_catalogs(tmp_path) -> None:
    listing = tmp_path / "upstreams.toml"
    listing.write_text('[[upstream]]\nurl = "http://127.0.0.1:9/v1"\n\n[prices."gpt-4o-mini"]\ninput = 1\noutput = 2\n')
    settings = load_settings(environ={"UPSTREAMS_FILE": str(listing), "OPENAI_MODEL": "gpt-4o-mini"})
    assert settings.price_of("gpt-4o-mini").input == 1 and settings.priced_by("gpt-4o-mini") == "operator"
    assert settings.priced_by("gpt-4o") == "genai-prices" and settings.priced_by("fake-model") is None
    off = load_settings(environ={**BASE, "MODEL_CATALOG": "false"})
    assert off.price_of("gpt-4o") is None, "MODEL_CATALOG=false: only the operator's prices"


def test_rules_come_by_name_and_upstreams_file_describes_over_them(tmp_path) -> None:
    assert rules_of("claude-fable-5-2", {}).forced_tools is False
    assert rules_of("anthropic/claude-sonnet-5", {}).sampling == "default"
    assert rules_of("gpt-4o-mini", {}).max_output_tokens == 16_384
    assert rules_of("fake-model", {}).described == "none"
    described = described_table("models", {"gpt-4o-mini": {"max_output_tokens": 4000, "sampling": "default"}})
    mini = described["gpt-4o-mini"]
    assert mini.max_output_tokens == 4000 and mini.context_window == 128_000 and mini.described == "operator"
    wrongs = (({"max_output_tokens": 0}, "whole number"), ({"thinking": "deep"}, "thinking must be"),
              ({"colour": 1}, "is not a rule"), ({"input_modalities": ["smell"]}, "input_modalities"))  # fmt: skip
    for wrong, said in wrongs:
        with pytest.raises(ConfigError, match=said):
            described_table("models", {"m": wrong})
    listing = tmp_path / "upstreams.toml"
    listing.write_text('[[upstream]]\nurl = "http://127.0.0.1:9/v1"\n\n[models."my-llama"]\nmax_output_tokens = 2048\n')
    settings = load_settings(environ={"UPSTREAMS_FILE": str(listing), "OPENAI_MODEL": "my-llama"})
    assert settings.output_limit("my-llama") == 2048 and settings.output_limit("other") == DEFAULT_OUTPUT_LIMIT


def _call(**fields) -> ChatCall:
    return ChatCall(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=8000, **fields)


def test_a_translation_says_each_change_it_makes() -> None:
    tools = {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}
    body, said = adapted(
        _call(temperature=0.5, options={"reasoning_effort": "high", **tools}), rules_of("claude-fable-5", {})
    )
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "high"}
    assert body["tool_choice"]["type"] == "auto" and "temperature" not in body
    assert said == ["reasoning_effort high sent as adaptive thinking (effort high)",
                    "tool_choice required sent as auto (the model cannot be forced to call a tool)",
                    "temperature dropped (Messages API version 2026-10-21 refuses it)"]  # fmt: skip
    body, said = adapted(_call(temperature=1.5), rules_of("claude-sonnet-4-5", {}), "2023-06-01")
    assert body["temperature"] == 1.0 and said == ["temperature 1.5 sent as 1 (the Messages API's most)"]
    body, said = adapted(_call(options={"reasoning_effort": "low"}), rules_of("claude-sonnet-4-5", {}), "2023-06-01")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024} and said == []
    native = _call(native={"api": "messages", "body": {"temperature": 0.3}})
    assert adapted(native, rules_of("claude-sonnet-5", {})) == ({}, []), "a client's own body is its own"


def test_a_request_naming_no_sampling_is_not_sampled_where_the_models_sampling_is_fixed() -> None:
    plain = _call()
    assert sampled(plain) and not sampled(plain, fixed=True)
    assert sampled(_call(temperature=0.7), fixed=True) and sampled(_call(options={"top_p": 0.5}), fixed=True)
    assert not sampled(_call(temperature=0))


def test_claude_codes_user_id_names_the_person_not_the_session() -> None:
    sent = '{"device_id":"d1","account_uuid":"","session_id":"s1"}'
    assert stable_user(sent) == "device:d1"
    assert stable_user('{"device_id":"d1","account_uuid":"a1","session_id":"s2"}') == "account:a1"
    assert stable_user("user_abc_account_a1_session_0f-9") == "user_abc_account_a1"
    assert stable_user("plain-id") == "plain-id" and stable_user("{not json") == "{not json"


def test_llm_provider_anthropic_translates_at_its_version() -> None:
    key = {"LLM_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": "sk-ant-" + "a" * 24}
    assert load_settings(environ=key).upstream.upstreams[0].anthropic_version == "2026-10-21"
    older = load_settings(environ={**key, "ANTHROPIC_VERSION": "2023-06-01"})
    assert older.upstream.upstreams[0].anthropic_version == "2023-06-01"
    with pytest.raises(ConfigError, match="ANTHROPIC_VERSION"):
        load_settings(environ={**key, "ANTHROPIC_VERSION": "2025-01-01"})
