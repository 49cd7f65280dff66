"""What chat completions and the models API send, one schema per component of
contracts/openapi.yaml: a completion, its chunks, models, stops and deletions."""

from __future__ import annotations

from marshmallow import fields, validate

from ...providers.base import OPENAI_FINISH_REASONS
from ..schema import (
    USAGE_SOURCES,
    StrictSchema,
    UsageSchema,
)
from .tools import (
    ToolCallSchema,
)


class ReplyMessageSchema(StrictSchema):
    """The assistant's message in a `chat.completion`: its text (null when it only calls tools),
    its refusal, its tool calls, and the reasoning a reasoning model's server sent."""

    role = fields.String(required=True, validate=validate.OneOf(("assistant",)))
    content = fields.String(required=True, allow_none=True)
    refusal = fields.String(required=True, allow_none=True)
    tool_calls = fields.List(fields.Nested(ToolCallSchema))
    reasoning_content = fields.String()


class ChoiceLogprobsSchema(StrictSchema):
    """The text's tokens with their log probabilities, as the upstream gave them (where the
    client asked with `logprobs`)."""

    content = fields.List(fields.Dict(), required=True, allow_none=True)
    refusal = fields.List(fields.Dict(), required=True, allow_none=True)


class CompletionChoiceSchema(StrictSchema):
    """The one choice of a `chat.completion`."""

    index = fields.Integer(required=True)
    message = fields.Nested(ReplyMessageSchema, required=True)
    logprobs = fields.Nested(ChoiceLogprobsSchema, required=True, allow_none=True)
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


class ChunkFunctionSchema(StrictSchema):
    """A tool call's function in a chunk: its name (first chunk) and a piece of its arguments."""

    name = fields.String()
    arguments = fields.String(required=True)


class ChunkToolCallSchema(StrictSchema):
    """A piece of one tool call: `index` names the call; its first piece has `id` and `type`."""

    index = fields.Integer(required=True)
    id = fields.String()
    type = fields.String(validate=validate.OneOf(("function",)))
    function = fields.Nested(ChunkFunctionSchema, required=True)


class ChunkDeltaSchema(StrictSchema):
    """What a chunk adds: the role (first chunk), text, reasoning, a refusal, a piece of a tool
    call, or nothing (the finish chunk)."""

    role = fields.String(validate=validate.OneOf(("assistant",)))
    content = fields.String()
    reasoning_content = fields.String()
    refusal = fields.String()
    tool_calls = fields.List(fields.Nested(ChunkToolCallSchema))


class ChunkChoiceSchema(StrictSchema):
    """The one choice of a `chat.completion.chunk`."""

    index = fields.Integer(required=True)
    delta = fields.Nested(ChunkDeltaSchema, required=True)
    logprobs = fields.Nested(ChoiceLogprobsSchema, allow_none=True)
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


class ModelSchema(StrictSchema):
    """One allowed model, as GET /v1/models lists it."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("model",)))
    created = fields.Integer(required=True)
    owned_by = fields.String(required=True)
    context_window = fields.Integer(allow_none=True)
    max_output_tokens = fields.Integer()
    input_modalities = fields.List(fields.String(validate=validate.OneOf(("text", "image", "file"))))
    tools = fields.Boolean()
    reasoning = fields.Boolean()
    pricing = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True), allow_none=True)


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
