"""Fitting a Responses conversation (a stored chain, then the input) into the bounds of a direct
input: refused with truncation disabled, its oldest turns dropped with auto."""

from __future__ import annotations

import pytest

from app.apis.responses.fit import fit
from app.config import load_settings
from app.errors import ApiError

BOUNDS = {"MAX_HISTORY_MESSAGES": "4", "MAX_CONVERSATION_CHARS": "400", "MAX_INPUT_TOKENS": "60"}
SETTINGS = load_settings({"OPENAI_API_KEY": "sk-test", **BOUNDS})


class WordTokens:
    """A provider counting one token per word and two per message."""

    def input_token_limit(self, configured: int) -> int:
        return configured

    def prompt_tokens_bound(self, messages) -> None:
        return None

    def message_costs(self, messages) -> list[int]:
        return [2 + len(m["content"].split()) for m in messages]

    def prompt_tokens(self, messages) -> int:
        return sum(self.message_costs(messages))


def _turns(count: int, words: int = 1) -> list[dict[str, str]]:
    items = []
    for n in range(count):
        items += [{"role": "user", "content": " ".join([f"q{n}"] * words)}, {"role": "assistant", "content": f"a{n}"}]
    return items


def test_a_conversation_within_the_bounds_is_kept_whole() -> None:
    items = [*_turns(2), {"role": "user", "content": "now"}]
    fitted = fit([], items, 4, SETTINGS, WordTokens(), auto=False)
    assert fitted.items == items and fitted.dropped == 0 and fitted.prompt_tokens == 15


@pytest.mark.parametrize(
    "items,said",
    [
        ([*_turns(3), {"role": "user", "content": "now"}], "7 items; the limit is 6 (MAX_HISTORY_MESSAGES + 2)"),
        ([*_turns(1, 150), {"role": "user", "content": "now"}], "MAX_CONVERSATION_CHARS"),
        ([*_turns(2, 25), {"role": "user", "content": "now"}], "MAX_INPUT_TOKENS"),
    ],
    ids=["items", "characters", "tokens"],
)
def test_disabled_refuses_and_a_chain_is_told_of_truncation_auto(items, said) -> None:
    with pytest.raises(ApiError) as refused:
        fit([], items, len(items) - 1, SETTINGS, WordTokens(), auto=False)
    assert refused.value.error_code == "input_too_long" and said in refused.value.detail
    assert 'truncation "auto"' in refused.value.action and "previous_response_id" in refused.value.action
    with pytest.raises(ApiError) as direct:
        fit([], items, 0, SETTINGS, WordTokens(), auto=False)
    assert "truncation" not in direct.value.action, "a direct input drops its own items"


@pytest.mark.parametrize(
    "items,kept",
    [
        ([*_turns(3), {"role": "user", "content": "now"}], 5),
        ([*_turns(1, 150), *_turns(1), {"role": "user", "content": "now"}], 3),
        ([*_turns(2, 25), {"role": "user", "content": "now"}], 3),
    ],
    ids=["items", "characters", "tokens"],
)
def test_auto_drops_whole_turns_from_the_oldest_until_it_fits(items, kept) -> None:
    system = [{"role": "system", "content": "Be brief."}]
    fitted = fit(system, items, len(items) - 1, SETTINGS, WordTokens(), auto=True)
    assert fitted.items == items[-kept:] and fitted.dropped == len(items) - kept
    assert fitted.items[0]["role"] == "user", "cut at a turn"


def test_auto_still_refuses_what_does_not_fit_without_any_earlier_turn() -> None:
    items = [*_turns(1), {"role": "user", "content": " ".join(["w"] * 80)}]
    with pytest.raises(ApiError) as refused:
        fit([], items, 2, SETTINGS, WordTokens(), auto=True)
    assert refused.value.error_code == "input_too_long" and "Shorten" in refused.value.action
