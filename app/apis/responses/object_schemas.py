"""The Responses API's objects as ChatWait sends them: a response, its output items, its usage and
error, a deletion. Every field of OpenAI's is there."""

from __future__ import annotations

from marshmallow import fields, validate

from ..items.input import ITEM_STATUSES
from ..schema import AsGiven, LedgerSchema, StrictSchema, Tagged

STATUSES = ("queued", "in_progress", "completed", "incomplete", "failed", "cancelled")
TRUNCATIONS = ("auto", "disabled")


class OutputTextSchema(StrictSchema):
    """A text part of an output message."""

    type = fields.String(required=True, validate=validate.OneOf(("output_text",)))
    text = fields.String(required=True)
    annotations = fields.List(fields.Dict(), required=True)
    logprobs = fields.List(fields.Dict(), required=True)


class OutputRefusalSchema(StrictSchema):
    """A refusal part of an output message: the model declined, and says why."""

    type = fields.String(required=True, validate=validate.OneOf(("refusal",)))
    refusal = fields.String(required=True)


class ReasoningTextSchema(StrictSchema):
    """A reasoning item's text part."""

    type = fields.String(required=True, validate=validate.OneOf(("reasoning_text",)))
    text = fields.String(required=True)


class OutputMessageSchema(StrictSchema):
    """The assistant's message: its text (and a refusal) parts."""

    id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("message",)))
    status = fields.String(required=True, validate=validate.OneOf(ITEM_STATUSES))
    role = fields.String(required=True, validate=validate.OneOf(("assistant",)))
    content = fields.List(Tagged({"output_text": OutputTextSchema, "refusal": OutputRefusalSchema}), required=True)


class OutputFunctionCallSchema(StrictSchema):
    """A call of one of the request's functions: its id (for the output sent back), name and
    arguments as JSON text."""

    id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("function_call",)))
    status = fields.String(required=True, validate=validate.OneOf(ITEM_STATUSES))
    call_id = fields.String(required=True)
    name = fields.String(required=True)
    namespace = fields.String()  # a namespace tool's function
    arguments = fields.String(required=True)


class OutputCustomToolCallSchema(StrictSchema):
    """A call of one of the request's custom tools: its id, name and free-form input."""

    id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("custom_tool_call",)))
    status = fields.String(required=True, validate=validate.OneOf(ITEM_STATUSES))
    call_id = fields.String(required=True)
    name = fields.String(required=True)
    namespace = fields.String()
    input = fields.String(required=True)


class OutputReasoningSchema(StrictSchema):
    """The model's reasoning text, where its server gives it (no summary is made)."""

    id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("reasoning",)))
    status = fields.String(required=True, validate=validate.OneOf(ITEM_STATUSES))
    summary = fields.List(fields.Dict(), required=True)
    content = fields.List(fields.Nested(ReasoningTextSchema), required=True)


class OutputCompactionSchema(StrictSchema):
    """A server-side compaction's item: the model's summary of the conversation before it."""

    id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("compaction",)))
    encrypted_content = fields.String(required=True)


OUTPUT_ITEMS = {
    "compaction": OutputCompactionSchema,
    "message": OutputMessageSchema,
    "function_call": OutputFunctionCallSchema,
    "custom_tool_call": OutputCustomToolCallSchema,
    "reasoning": OutputReasoningSchema,
}


class ResponseUsageSchema(StrictSchema):
    """Token usage in the Responses API's terms."""

    input_tokens = fields.Integer(required=True)
    input_tokens_details = fields.Dict(required=True)
    output_tokens = fields.Integer(required=True)
    output_tokens_details = fields.Dict(required=True)
    total_tokens = fields.Integer(required=True)
    generated_tokens = fields.Integer()  # a rescued reply's, over its attempts
    chatwait = fields.Nested(LedgerSchema)  # ChatWait's ledger of the generation


class ResponseErrorSchema(StrictSchema):
    """Why a response failed."""

    code = fields.String(required=True)
    message = fields.String(required=True)


class ResponseObjectSchema(StrictSchema):
    """A response object: what POST /v1/responses, GET /v1/responses/{id} and cancel answer."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("response",)))
    created_at = fields.Integer(required=True)
    completed_at = fields.Integer(required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    error = fields.Nested(ResponseErrorSchema, required=True, allow_none=True)
    incomplete_details = fields.Dict(required=True, allow_none=True)
    model = fields.String(required=True)
    output = fields.List(Tagged(OUTPUT_ITEMS), required=True)
    parallel_tool_calls = fields.Boolean(required=True)
    reasoning = fields.Dict(required=True)
    text = fields.Dict(required=True)
    tool_choice = AsGiven(("string", "object"), required=True)
    tools = fields.List(fields.Dict(), required=True)
    truncation = fields.String(required=True, validate=validate.OneOf(TRUNCATIONS))
    usage = fields.Nested(ResponseUsageSchema, required=True, allow_none=True)
    background = fields.Boolean(required=True)
    conversation = fields.Dict(required=True, allow_none=True)
    instructions = fields.String(required=True, allow_none=True)
    max_output_tokens = fields.Integer(required=True, allow_none=True)
    max_tool_calls = fields.Integer(required=True, allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    previous_response_id = fields.String(required=True, allow_none=True)
    prompt_cache_key = fields.String(required=True, allow_none=True)
    safety_identifier = fields.String(required=True, allow_none=True)
    service_tier = fields.String(required=True)
    store = fields.Boolean(required=True)
    temperature = fields.Float(required=True)
    top_p = fields.Float(required=True)
    presence_penalty = fields.Float(required=True)
    frequency_penalty = fields.Float(required=True)
    top_logprobs = fields.Integer(required=True)
    user = fields.String(required=True, allow_none=True)


class ResponseDeletedSchema(StrictSchema):
    """The reply of DELETE /v1/responses/{id}."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("response.deleted",)))
    deleted = fields.Boolean(required=True)


class InputTokensSchema(StrictSchema):
    """The reply of POST /v1/responses/input_tokens."""

    object = fields.String(required=True, validate=validate.OneOf(("response.input_tokens",)))
    input_tokens = fields.Integer(required=True)
