"""A `compaction` item: a conversation's summary that stands for it (of POST
/v1/responses/compact, or of a server-side compaction).

Its `encrypted_content` is opaque to clients, as OpenAI's is, but not a secret: it is the summary
after a version mark (`seal`; nothing to decode, so any text after the mark is a summary), and a
later input that sends the item back gives the model that summary as an assistant message
(`unseal`). An item ChatWait did not make (another provider's ciphertext) is refused by name: its
summary cannot be read here. A server-side compaction's item (`windowed`) stands for the whole
conversation before it: the messages before it in a later input are not sent again (but system
ones), as OpenAI's server-side compaction lets a client drop them.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

COMPACTION = "compaction"
SEAL_MARK = "chatwait.compaction.v1:"
WINDOW_MARK = "chatwait.compaction.v1+window:"  # a server-side compaction's: nothing before it is sent again
SUMMARY_PREFIX = "Summary of the conversation so far:\n"


def seal(summary: str, window: bool = False) -> str:
    """The `encrypted_content` of a compaction item that carries `summary` (`window`: a
    server-side compaction's, which stands for everything before it)."""
    return (WINDOW_MARK if window else SEAL_MARK) + summary


def unseal(content: str) -> str:
    """The summary a compaction item carries; ValidationError when ChatWait did not seal it."""
    for mark in (SEAL_MARK, WINDOW_MARK):
        if content.startswith(mark):
            return content[len(mark) :]
    raise ValidationError(
        "Not a compaction ChatWait made (another provider's cannot be read here): send the item "
        "/v1/responses/compact answered here, or the conversation's messages."
    )


def windowed(content: str) -> bool:
    """Whether a compaction item is a server-side compaction's (it stands for all before it)."""
    return content.startswith(WINDOW_MARK)


def summary_message(content: str) -> dict[str, Any]:
    """The message a compaction item gives the model: its summary, as the assistant's."""
    return {"role": "assistant", "content": SUMMARY_PREFIX + unseal(content)}
