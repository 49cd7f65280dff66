"""Token counting for the OpenAI provider: the cheap bound never undercounts."""

from __future__ import annotations

import pytest

from app.providers.httpapi import tokens

CONVERSATIONS = [
    [{"role": "user", "content": ""}],
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "word " * 500}],
    [{"role": "user", "content": "Grüße aus Köln, ça va? Ελληνικά, русский, עברית"}],
    [{"role": "user", "content": "日本語のテキストと中文文本和한국어"}],
    [{"role": "assistant", "content": "🙂👍🏽🚀 " * 50}, {"role": "user", "content": "\u0000\t\n" * 30}],
    [{"role": "user", "content": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" * 40}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_the_bound_is_at_least_the_exact_count(messages) -> None:
    assert tokens.prompt_tokens_bound(messages) >= tokens.prompt_tokens(messages)


def test_the_bound_counts_utf8_bytes_plus_the_format_overhead() -> None:
    messages = [{"role": "user", "content": "héllo"}]  # 6 bytes of UTF-8 in 5 characters
    overhead = tokens.TOKENS_PER_MESSAGE + tokens.TOKENS_REPLY_PRIMING
    assert tokens.prompt_tokens_bound(messages) == overhead + len("user") + 6
