"""From validated fields to a ChatCall: the exact token count is made only when it is needed."""

from __future__ import annotations

import pytest

from app.apis.native.intake import build_call, refuse_oversized
from app.config import load_settings
from app.errors import ApiError


class CountingProvider:
    """Counts one token per character; its bound is whatever the test sets."""

    def __init__(self, bound: int | None) -> None:
        self.bound = bound
        self.exact_counts = 0

    def prompt_tokens_bound(self, messages) -> int | None:
        return self.bound

    def prompt_tokens(self, messages) -> int:
        self.exact_counts += 1
        return sum(len(m["content"]) for m in messages)

    def message_costs(self, messages) -> list[int]:
        return [len(m["content"]) for m in messages]

    def input_token_limit(self, configured: int) -> int:
        return configured

    def takes(self, option: str, options: dict) -> bool:
        return True


SETTINGS = load_settings({"MAX_INPUT_TOKENS": "100"}, environ={"OPENAI_API_KEY": "sk-x"})
FIELDS = {"message": "x" * 60, "history": []}


def test_a_bound_within_the_limit_skips_the_exact_count() -> None:
    provider = CountingProvider(bound=100)
    call, prompt_tokens = build_call(FIELDS, SETTINGS, provider)
    assert prompt_tokens is None and provider.exact_counts == 0
    assert call.messages == [{"role": "user", "content": "x" * 60}]


@pytest.mark.parametrize("bound", [101, None])
def test_a_bound_over_the_limit_or_none_is_checked_exactly(bound) -> None:
    provider = CountingProvider(bound=bound)
    _, prompt_tokens = build_call(FIELDS, SETTINGS, provider)
    assert prompt_tokens == 60 and provider.exact_counts == 1


def test_an_exact_count_over_the_limit_is_refused() -> None:
    provider = CountingProvider(bound=500)
    with pytest.raises(ApiError) as refused:
        build_call({"message": "x" * 101, "history": []}, SETTINGS, provider)
    assert refused.value.error_code == "input_too_long"


def _oversized(data: object, **settings: str) -> ApiError | None:
    config = load_settings({"MAX_INPUT_TOKENS": "100", **settings}, environ={"OPENAI_API_KEY": "sk-x"})
    try:
        refuse_oversized(data, config, CountingProvider(bound=None))
    except ApiError as error:
        return error
    return None


def test_a_history_over_the_limit_is_refused_from_its_length_alone() -> None:
    """Not one entry is looked at: 10,000 of them cost what 10 do."""
    history = [object()] * 10_000  # not even valid entries: their validation would come later
    error = _oversized({"message": "hi", "history": history})
    assert error.error_code == "validation_error" and "10000 messages; at most 200" in error.fields["history"][0]


def test_a_conversation_over_the_character_bound_is_refused_with_what_to_drop() -> None:
    """MAX_INPUT_TOKENS=100: 1,200 characters at 12 per token; the 2 oldest of 3 entries must go."""
    history = [{"role": "user", "content": "a" * 500}] * 3
    error = _oversized({"message": "m" * 100, "history": history})
    assert error.error_code == "input_too_long" and "1600 characters; the limit is 1200" in error.detail
    assert error.action.startswith("Drop the 1 oldest")
    error = _oversized({"message": "m" * 100, "history": history}, MAX_CONVERSATION_CHARS="700")
    assert error.action.startswith("Drop the 2 oldest")
    error = _oversized({"message": "m" * 800, "system": "s", "history": []}, MAX_CONVERSATION_CHARS="700")
    assert "still 101 characters over" in error.action


@pytest.mark.parametrize(
    "data",
    [
        {"message": "m" * 1000, "history": []},
        {"message": "m" * 9000},  # over MAX_MESSAGE_CHARS: the schema names the field
        {"message": 5, "history": "no", "system": None},  # the schema refuses these
        {"message": "hi", "history": -264, "system": 0.1},  # not iterable: the schema's too (found by schemathesis)
        [1, 2],
    ],
)
def test_what_fits_or_what_the_schema_refuses_passes_through(data) -> None:
    assert _oversized(data) is None


def _completion(messages: list, provider: CountingProvider, **extra):
    from flask import Flask

    from app.apis.chat_completions.intake import prepare_completion
    from app.apis.chat_completions.schemas import CompletionRequestSchema

    settings = load_settings({"MAX_INPUT_TOKENS": "100", "MAX_HISTORY_MESSAGES": "4"}, environ={"OPENAI_API_KEY": "x"})
    schema = CompletionRequestSchema(max_messages=6, allowed_models=settings.upstream.allowed_models)
    with Flask(__name__).test_request_context(json={"messages": messages, **extra}):
        from flask import request

        return prepare_completion(request, schema, settings, provider)  # type: ignore[arg-type]


def test_a_completion_drops_the_oldest_messages_after_the_system_prompt() -> None:
    messages = [{"role": "developer", "content": "s" * 10}, *({"role": "user", "content": "x" * 40} for _ in range(3))]
    with pytest.raises(ApiError) as raised:
        _completion(messages, CountingProvider(bound=None))
    assert raised.value.error_code == "input_too_long"
    assert raised.value.action.startswith("Drop the 1 oldest message(s) after the system prompt")


def test_a_completion_is_refused_from_its_sizes_before_any_message_is_read() -> None:
    too_many = [{"role": "user", "content": "x"}] * 7
    with pytest.raises(ApiError) as raised:
        _completion(too_many, CountingProvider(bound=0))
    expected = "7 messages; at most 6 (MAX_HISTORY_MESSAGES + 2): drop the oldest ones."
    assert raised.value.fields == {"messages": [expected]}
    parts = [{"type": "text", "text": "x" * 700}, {"type": "text", "text": "y" * 700}]
    long_parts = [{"role": "user", "content": parts}]
    with pytest.raises(ApiError) as raised:
        _completion(long_parts, CountingProvider(bound=0))  # 1400 characters: 12 a token allowed, 100 tokens
    assert raised.value.error_code == "input_too_long" and "MAX_CONVERSATION_CHARS" in raised.value.detail


def test_a_completion_becomes_a_call() -> None:
    text_parts = [{"type": "text", "text": "a"}]
    messages = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": text_parts}]
    completion = _completion(messages, CountingProvider(bound=10), max_tokens=30, max_completion_tokens=20, seed=3)
    assert completion.call.messages == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a"}]
    assert completion.call.max_tokens == 20 and completion.call.options == {"seed": 3}
    assert completion.call.model == "gpt-4o-mini" and not completion.stream and completion.prompt_tokens is None
