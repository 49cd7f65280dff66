"""OpenAI's Conversations API: POST /v1/conversations, GET / POST (its metadata) / DELETE
/v1/conversations/{id}, and its items (GET a page, POST more, GET or DELETE one). A response
that names a conversation adds its turns (`apis.responses.conversation`).

Conversations are this client key's own, bounded and expiring (`app.conversations`); in Redis
(STREAM_STORE=redis) every worker and instance reads and changes the same ones.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from ...conversations import Conversation
from ...errors import ApiError
from ..intake import read_json, validate_request
from ..items.kept import conversation_items, no_conversation
from ..items.listing import ItemListSchema, listed, page
from ..items.references import lookup, resolve
from ..request import client, counted, services
from ..schema import serialise
from ..unknown import tolerance
from .schemas import (
    ConversationCreateSchema,
    ConversationDeletedSchema,
    ConversationItemsCreateSchema,
    ConversationSchema,
    ConversationUpdateSchema,
)

bp = Blueprint("conversations", __name__)
NAME = "conversations"


@bp.post("/v1/conversations")
def create() -> dict[str, Any]:
    """A new conversation, with its first items (no body: an empty one)."""
    counted()  # a change: under the key's rpm
    empty = not request.content_length and "chunked" not in request.headers.get("Transfer-Encoding", "").lower()
    fields = _validated({} if empty else read_json(request), ConversationCreateSchema())
    items = _new_items(fields.get("items", []))
    return _reply(services().conversations.create(client(), fields.get("metadata", {}), items))


@bp.get("/v1/conversations/<conversation_id>")
def retrieve(conversation_id: str) -> dict[str, Any]:
    """The conversation (its id, creation time and metadata)."""
    return _reply(_found(services().conversations.get(client(), conversation_id), conversation_id))


@bp.post("/v1/conversations/<conversation_id>")
def update(conversation_id: str) -> dict[str, Any]:
    """Replace the conversation's metadata."""
    counted()  # a change: under the key's rpm
    fields = _validated(read_json(request), ConversationUpdateSchema())
    updated = services().conversations.update(client(), conversation_id, fields.get("metadata", {}))
    return _reply(_found(updated, conversation_id))


@bp.delete("/v1/conversations/<conversation_id>")
def delete(conversation_id: str) -> dict[str, Any]:
    """Forget the conversation and its items."""
    counted()  # a change: under the key's rpm
    _found(services().conversations.delete(client(), conversation_id) or None, conversation_id)
    deleted = {"id": conversation_id, "object": "conversation.deleted", "deleted": True}
    return serialise(ConversationDeletedSchema, deleted)


@bp.get("/v1/conversations/<conversation_id>/items")
def list_items(conversation_id: str) -> dict[str, Any]:
    """A page of the conversation's items (`after`, `limit`, `order`)."""
    return serialise(ItemListSchema, page(conversation_items(conversation_id), request.args))


@bp.post("/v1/conversations/<conversation_id>/items")
def add_items(conversation_id: str) -> dict[str, Any]:
    """Add items at the conversation's end; the items as added (with their ids)."""
    counted()  # a change: under the key's rpm
    fields = _validated(read_json(request), ConversationItemsCreateSchema())
    items = _new_items(fields["items"])
    _found(services().conversations.append(client(), conversation_id, items) or None, conversation_id)
    added = {"object": "list", "data": items, "has_more": False}
    first, last = (items[0]["id"], items[-1]["id"]) if items else (None, None)
    return serialise(ItemListSchema, {**added, "first_id": first, "last_id": last})


@bp.get("/v1/conversations/<conversation_id>/items/<item_id>")
def retrieve_item(conversation_id: str, item_id: str) -> dict[str, Any]:
    """One item of the conversation."""
    found = next((item for item in conversation_items(conversation_id) if item.get("id") == item_id), None)
    if found is None:
        raise ApiError("item_not_found", f"The conversation has no item {item_id[:80]!r}.")
    return found


@bp.delete("/v1/conversations/<conversation_id>/items/<item_id>")
def delete_item(conversation_id: str, item_id: str) -> dict[str, Any]:
    """Remove one item; the conversation."""
    counted()  # a change: under the key's rpm
    store = services().conversations
    removed = _found(store.delete_item(client(), conversation_id, item_id), conversation_id)
    if not removed:
        raise ApiError("item_not_found", f"The conversation has no item {item_id[:80]!r}.")
    return _reply(_found(store.get(client(), conversation_id), conversation_id))


def _new_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checked items as kept: references resolved, each in OpenAI's item shape with an id; at most
    MAX_CONVERSATION_ITEMS (a conversation keeps no more)."""
    bound = services().settings.conversations.max_conversation_items
    if len(items) > bound:
        message = f"{len(items)} items; a conversation keeps at most {bound} (MAX_CONVERSATION_ITEMS)."
        raise ApiError("validation_error", "1 field(s) are invalid.", fields={"items": [message]})
    return [listed(item) for item in resolve(items, lookup())]


def _found(found: Any, conversation_id: str) -> Any:
    if found is None:
        raise no_conversation(conversation_id)
    return found


def _reply(conversation: Conversation) -> dict[str, Any]:
    return serialise(
        ConversationSchema,
        {
            "id": conversation.id,
            "object": "conversation",
            "created_at": conversation.created_at,
            "metadata": conversation.metadata,
        },
    )


def _validated(data: Any, schema: Any) -> dict[str, Any]:
    """The request's fields, its unknown ones left out and named (unless UNKNOWN_FIELDS=refuse)."""
    return validate_request(data, schema, tolerant=tolerance(services().settings, NAME))
