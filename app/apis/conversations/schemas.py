"""The Conversations API's schemas (`/v1/conversations`): the requests ChatWait takes and the
objects it answers, one per `Conversation*` component of contracts/openapi.yaml."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..items.input import ResponseInput
from ..items.listing import ItemListSchema
from ..openai import Metadata
from ..schema import NullMeansAbsent, StrictSchema


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


CONVERSATION_COMPONENTS: dict[str, type[Schema]] = {
    "ConversationCreateRequest": ConversationCreateSchema,
    "ConversationUpdateRequest": ConversationUpdateSchema,
    "ConversationItemsCreateRequest": ConversationItemsCreateSchema,
    "Conversation": ConversationSchema,
    "ConversationDeleted": ConversationDeletedSchema,
    "ItemList": ItemListSchema,
}
