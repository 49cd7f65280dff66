"""From validated fields to a ChatCall: the exact token count is made only when it is needed."""

from __future__ import annotations

import pytest

from app.api.intake import build_call
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
