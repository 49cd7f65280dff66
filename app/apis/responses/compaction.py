"""POST /v1/responses/compact: the model behind ChatWait summarises a conversation, and the
client continues it from the user's messages and one `compaction` item that carries the summary
(`replies.compacted_reply`).

The item's `encrypted_content` is opaque to clients, as OpenAI's is, but not a secret: it is the
summary after a version mark (`seal`; nothing to decode, so any text after the mark is a summary),
and a later input that sends the item back gives the model that summary as an assistant message
(`unseal`). An item ChatWait did not make (another provider's ciphertext) is refused by name: its
summary cannot be read here.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

COMPACTION = "compaction"
SEAL_MARK = "chatwait.compaction.v1:"
COMPACT_PROMPT = (
    "Write a summary of the conversation so far, for you to continue it later without it: the "
    "user's goals and requests, what was decided and done (tool calls and their results too), "
    "the facts, names and figures to keep, and what is still open. Write only the summary."
)
SUMMARY_PREFIX = "Summary of the conversation so far:\n"


def seal(summary: str) -> str:
    """The `encrypted_content` of a compaction item that carries `summary`."""
    return SEAL_MARK + summary


def unseal(content: str) -> str:
    """The summary a compaction item carries; ValidationError when ChatWait did not seal it."""
    if not content.startswith(SEAL_MARK):
        raise ValidationError(
            "Not a compaction ChatWait made (another provider's cannot be read here): send the item "
            "/v1/responses/compact answered here, or the conversation's messages."
        )
    return content[len(SEAL_MARK) :]


def summary_message(content: str) -> dict[str, Any]:
    """The message a compaction item gives the model: its summary, as the assistant's."""
    return {"role": "assistant", "content": SUMMARY_PREFIX + unseal(content)}


def compaction_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation sent to the model for its summary: the conversation, then the request."""
    return [*messages, {"role": "user", "content": COMPACT_PROMPT}]
