"""marshmallow schemas of what the OpenAI-compatible endpoints send (completions, chunks, models,
errors), and the map of every OpenAI-compatible contract component to its schema."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from .native import OPENAI_FINISH_REASONS, USAGE_SOURCES, StrictSchema, UsageSchema
from .openai import CompletionMessageSchema, CompletionRequestSchema, StreamOptionsSchema


class CompletionTextPartSchema(StrictSchema):
    """A text part of a message's content."""

    type = fields.String(required=True, validate=validate.OneOf(("text",)))
    text = fields.String(required=True)


class ReplyMessageSchema(StrictSchema):
    """The assistant's message in a `chat.completion`."""

    role = fields.String(required=True, validate=validate.OneOf(("assistant",)))
    content = fields.String(required=True)


class CompletionChoiceSchema(StrictSchema):
    """The one choice of a `chat.completion`."""

    index = fields.Integer(required=True)
    message = fields.Nested(ReplyMessageSchema, required=True)
    logprobs = fields.Raw(required=True, allow_none=True)
    finish_reason = fields.String(required=True, validate=validate.OneOf(OPENAI_FINISH_REASONS))


class CompletionSchema(StrictSchema):
    """The reply of POST /v1/chat/completions with `stream` false: a `chat.completion`."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("chat.completion",)))
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(CompletionChoiceSchema), required=True)
    usage = fields.Nested(UsageSchema, required=True)
    usage_source = fields.String(required=True, validate=validate.OneOf(USAGE_SOURCES))


class ChunkDeltaSchema(StrictSchema):
    """What a chunk adds: the role (first chunk), text, or nothing (the finish chunk)."""

    role = fields.String(validate=validate.OneOf(("assistant",)))
    content = fields.String()


class ChunkChoiceSchema(StrictSchema):
    """The one choice of a `chat.completion.chunk`."""

    index = fields.Integer(required=True)
    delta = fields.Nested(ChunkDeltaSchema, required=True)
    finish_reason = fields.String(required=True, allow_none=True, validate=validate.OneOf(OPENAI_FINISH_REASONS))


class CompletionChunkSchema(StrictSchema):
    """One event's data in a completion stream: a `chat.completion.chunk` (the usage chunk has no
    choice, and `usage` with `usage_source`)."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("chat.completion.chunk",)))
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(ChunkChoiceSchema), required=True)
    usage = fields.Nested(UsageSchema)
    usage_source = fields.String(validate=validate.OneOf(USAGE_SOURCES))


class OpenAIErrorDetailSchema(StrictSchema):
    """OpenAI's error object: what happened, why and what to do in `message`."""

    message = fields.String(required=True)
    type = fields.String(required=True)
    param = fields.String(required=True, allow_none=True)
    code = fields.String(required=True, allow_none=True)
    correlation_id = fields.String(required=True, allow_none=True)
    retry_after_seconds = fields.Float()


class OpenAIErrorSchema(StrictSchema):
    """Every error of the OpenAI-compatible endpoints, and an error chunk in their streams."""

    error = fields.Nested(OpenAIErrorDetailSchema, required=True)


class ModelSchema(StrictSchema):
    """One allowed model, as GET /v1/models lists it."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("model",)))
    created = fields.Integer(required=True)
    owned_by = fields.String(required=True)


class ModelListSchema(StrictSchema):
    """The reply of GET /v1/models."""

    object = fields.String(required=True, validate=validate.OneOf(("list",)))
    data = fields.List(fields.Nested(ModelSchema), required=True)


class CompletionStopSchema(StrictSchema):
    """The reply of DELETE /v1/chat/completions/{id}/stream."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("chat.completion.stream",)))
    status = fields.String(required=True, validate=validate.OneOf(("cancelled", "already_finished")))
    last_event_id = fields.Integer(required=True)


class CompletionDeletedSchema(StrictSchema):
    """The reply of DELETE /v1/chat/completions/{id}."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("chat.completion.deleted",)))
    deleted = fields.Boolean(required=True)


# Contract component name -> schema class (the contract test checks them with COMPONENTS).
OPENAI_COMPONENTS: dict[str, type[Schema]] = {
    "CompletionRequest": CompletionRequestSchema,
    "CompletionMessage": CompletionMessageSchema,
    "CompletionTextPart": CompletionTextPartSchema,
    "StreamOptions": StreamOptionsSchema,
    "Completion": CompletionSchema,
    "CompletionChoice": CompletionChoiceSchema,
    "ReplyMessage": ReplyMessageSchema,
    "CompletionChunk": CompletionChunkSchema,
    "ChunkChoice": ChunkChoiceSchema,
    "ChunkDelta": ChunkDeltaSchema,
    "OpenAIError": OpenAIErrorSchema,
    "OpenAIErrorDetail": OpenAIErrorDetailSchema,
    "Model": ModelSchema,
    "ModelList": ModelListSchema,
    "CompletionStop": CompletionStopSchema,
    "CompletionDeleted": CompletionDeletedSchema,
}
