"""Server-side compaction: a create with `context_management` (`{"type": "compaction",
"compact_threshold": N}`) whose conversation comes to N input tokens or more, or whose input
holds a `compaction_trigger` item (sent last), is compacted before the model answers it.

The model first writes a summary of the whole conversation (as /v1/responses/compact asks it);
the response is then generated from the instructions, that summary and the conversation's last
turn (from its last user message on), and its output opens with the `compaction` item that
carries the summary. That item stands for everything before it: in a later input the messages
before it are not sent again (`compaction.windowed`), so a client that appends the output to its
input, or chains with previous_response_id, goes on from the summary.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import ApiError
from ...ids import random_id
from ...providers.call import ChatCall
from ..items.compaction import COMPACTION, seal, summary_message
from .compaction import compaction_messages

Message = dict[str, Any]
ITEM_PREFIX = "cmp_"


@dataclasses.dataclass(frozen=True)
class Compaction:
    """A compaction to make before a response: the call for the summary and its counted prompt
    tokens; the instructions and the last turn the response is then generated from."""

    call: ChatCall
    prompt_tokens: int | None
    system: list[Message]
    tail: list[Message]


def threshold(fields: dict[str, Any]) -> int | None:
    """The token count that compacts a conversation, as `context_management` asks (None: never)."""
    entries = fields.get("context_management", ())
    found = [entry["compact_threshold"] for entry in entries if "compact_threshold" in entry]
    return min(found) if found else None


def plan(
    call: ChatCall, system: list[Message], items: list[Message], tokens: int, forced: bool, limit: int | None
) -> Compaction | None:
    """The compaction `call` needs (its `system` messages, then the conversation's `items`, of
    `tokens` input tokens): when `forced` (a trigger), or at `limit` tokens and more; else None."""
    if forced and not items:
        detail = "Nothing to compact: the compaction_trigger comes with no conversation."
        raise ApiError("validation_error", detail, fields={"input": [detail]})
    if not items or not (forced or (limit is not None and tokens >= limit)):
        return None
    options = dict(call.options)
    if "tools" in options:
        options["tool_choice"] = "none"  # the summary is text
    messages = compaction_messages([*system, *items])
    summary = ChatCall(model=call.model, messages=messages, max_tokens=call.max_tokens, options=options)
    return Compaction(summary, None, system, _tail(items))


def _tail(items: list[Message]) -> list[Message]:
    """The conversation's last turn: from its last user message on (its last message at least)."""
    users = [index for index, message in enumerate(items) if message["role"] == "user"]
    return items[users[-1] :] if users else items[-1:]


def item(summary: str) -> dict[str, Any]:
    """The compaction output item that carries the model's summary; 502 when it wrote none."""
    if not summary.strip():
        raise ApiError("upstream_bad_response", "The model wrote no summary of the conversation to compact it.")
    sealed = seal(summary.strip(), window=True)
    return {"id": ITEM_PREFIX + random_id(), "type": COMPACTION, "encrypted_content": sealed}


def compacted(compaction: Compaction, made: dict[str, Any]) -> tuple[list[Message], list[Message]]:
    """The messages the response is generated from once compacted (instructions, summary, last
    turn), and the conversation it keeps for a later turn (summary and last turn)."""
    kept = [summary_message(made["encrypted_content"]), *compaction.tail]
    return [*compaction.system, *kept], kept
