"""The Conversations API's schemas (`/v1/conversations`): the requests ChatWait takes and the
objects it answers, one per `Conversation*` component of contracts/openapi.yaml."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..schema import NullMeansAbsent, StrictSchema
from .items import ResponseInput
from .schemas import Metadata


class ConversationItems(ResponseInput):
    """Items to add: a list (possibly empty) of what `input` takes."""

    json_types = ("array",)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise ValidationError("Must be a list of items.")
        return super()._deserialize(value, attr, data, **kwargs) if value else []


class ConversationCreateSchema(NullMeansAbsent):
    """The body of POST /v1/conversations."""

    items = ConversationItems()
    metadata = Metadata()


class ConversationUpdateSchema(NullMeansAbsent):
    """The body of POST /v1/conversations/{id}: its new metadata (null: none)."""

    metadata = Metadata()


class ConversationItemsCreateSchema(NullMeansAbsent):
    """The body of POST /v1/conversations/{id}/items."""

    items = ConversationItems(required=True)


class ConversationSchema(StrictSchema):
    """A conversation, without its items."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("conversation",)))
    created_at = fields.Integer(required=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class ConversationDeletedSchema(StrictSchema):
    """The reply of DELETE /v1/conversations/{id}."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("conversation.deleted",)))
    deleted = fields.Boolean(required=True)


class ItemListSchema(StrictSchema):
    """A page of items: a conversation's, or a response's input."""

    object = fields.String(required=True, validate=validate.OneOf(("list",)))
    data = fields.List(fields.Dict(), required=True)
    first_id = fields.String(required=True, allow_none=True)
    last_id = fields.String(required=True, allow_none=True)
    has_more = fields.Boolean(required=True)


class InputTokensSchema(StrictSchema):
    """The reply of POST /v1/responses/input_tokens."""

    object = fields.String(required=True, validate=validate.OneOf(("response.input_tokens",)))
    input_tokens = fields.Integer(required=True)


CONVERSATION_COMPONENTS: dict[str, type[Schema]] = {
    "ConversationCreateRequest": ConversationCreateSchema,
    "ConversationUpdateRequest": ConversationUpdateSchema,
    "ConversationItemsCreateRequest": ConversationItemsCreateSchema,
    "Conversation": ConversationSchema,
    "ConversationDeleted": ConversationDeletedSchema,
    "ItemList": ItemListSchema,
    "ResponseInputTokens": InputTokensSchema,
}
