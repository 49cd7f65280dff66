"""A client's conversation's items as the conversations store keeps them (`app.conversations`):
what the Conversations API lists and a response's `conversation` continues."""

from __future__ import annotations

from typing import Any

from ...errors import ApiError
from ..request import client, services


def conversation_items(conversation_id: str) -> list[dict[str, Any]]:
    """This client's conversation's items (404 when it has none by that id)."""
    found = services().conversations.items(client(), conversation_id)
    if found is None:
        raise no_conversation(conversation_id)
    return found


def no_conversation(conversation_id: str) -> ApiError:
    """The 404 of a conversation this client has none of by that id."""
    return ApiError("conversation_not_found", f"No conversation {conversation_id[:80]!r} of yours is kept here.")
