"""POST /v1/responses/compact: the model behind ChatWait summarises a conversation, and the
client continues it from the user's messages and one `compaction` item that carries the summary
(`replies.compacted_reply`; the item: `apis.items.compaction`).
"""

from __future__ import annotations

from typing import Any

COMPACT_PROMPT = (
    "Write a summary of the conversation so far, for you to continue it later without it: the "
    "user's goals and requests, what was decided and done (tool calls and their results too), "
    "the facts, names and figures to keep, and what is still open. Write only the summary."
)


def compaction_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation sent to the model for its summary: the conversation, then the request."""
    return [*messages, {"role": "user", "content": COMPACT_PROMPT}]
