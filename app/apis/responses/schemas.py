"""The Responses API's schemas (`/v1/responses`): the request ChatWait takes, and the response
objects it sends, one per `Response*` component of contracts/openapi.yaml (a test keeps them in step).

The request takes OpenAI's parameters: `input` as a string or as items (`items`), the options
the upstream is sent (`intake`), the tools (`tools`), the ways to chain and to answer. Files and
prompt templates are a 400 naming the parameter; an optional field set to null counts as not
given. The response object has every field of OpenAI's.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from ..functions import check_json_schema
from ..openai import MAX_TOP_LOGPROBS, REASONING_EFFORTS, SERVICE_TIERS, VERBOSITIES
from ..schema import (
    AsGiven,
    Neutral,
    NullMeansAbsent,
    StrictBoolean,
    StrictInteger,
    StrictNumber,
    StrictSchema,
    Tagged,
    Text,
    check_max_tokens,
    check_model,
    text_of,
)
from .items import (
    CustomToolCallInputSchema,
    CustomToolCallOutputInputSchema,
    FunctionCallInputSchema,
    FunctionCallOutputInputSchema,
    InputMessageSchema,
    ItemReferenceSchema,
    ReasoningInputSchema,
    ResponseInput,
)
from .tools import CustomToolSchema, FunctionToolSchema, NamespaceToolSchema, ToolChoice, Tools

TRUNCATIONS = ("auto", "disabled")
STATUSES = ("queued", "in_progress", "completed", "incomplete", "failed", "cancelled")
ITEM_STATUSES = ("in_progress", "completed", "incomplete")
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_ID_CHARS = 128
MAX_TOOL_CALLS = 1000
REASONING_SUMMARIES = ("auto", "concise", "detailed")
LOGPROBS_INCLUDED = "message.output_text.logprobs"
# What `include` may name: log probabilities are filled; the rest names what no response here
# holds (hosted tools' results, encrypted reasoning, files): there is nothing to add.
INCLUDABLE = (
    LOGPROBS_INCLUDED,
    "reasoning.encrypted_content",
    "message.input_image.image_url",
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
)


class TextFormat(fields.Field):
    """`{"type": "text"}`, `{"type": "json_object"}`, or `{"type": "json_schema", "name",
    "schema", "description"?, "strict"?}`."""

    json_types = ("object",)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind in ("text", "json_object") and set(value) == {"type"}:
            return value
        if kind != "json_schema":
            raise ValidationError('Must be {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", ...}.')
        check_json_schema(value, ("type", "name", "description", "schema", "strict"))
        return value


class Metadata(fields.Dict):
    """Up to 16 string pairs, kept with the response and sent back with it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(), values=fields.String(), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, str]:
        pairs = super()._deserialize(value, attr, data, **kwargs)
        if len(pairs) > MAX_METADATA_PAIRS:
            raise ValidationError(f"At most {MAX_METADATA_PAIRS} pairs.")
        for key, text in pairs.items():
            if len(key) > MAX_METADATA_KEY_CHARS or len(text) > MAX_METADATA_VALUE_CHARS:
                limits = f"{MAX_METADATA_KEY_CHARS} and {MAX_METADATA_VALUE_CHARS}"
                raise ValidationError(f"Keys and values are at most {limits} characters.")
            text_of(key + text)
        return pairs


class TextOptionsSchema(NullMeansAbsent):
    """`text`: the reply's format and verbosity (passed on as chat completions' `verbosity`)."""

    format = TextFormat()
    verbosity = fields.String(validate=validate.OneOf(VERBOSITIES))


class ReasoningOptionsSchema(NullMeansAbsent):
    """`reasoning`: the effort (passed on as `reasoning_effort`); a summary is asked for by name
    only (no summary is made: a chat completions server gives none)."""

    effort = fields.String(validate=validate.OneOf(REASONING_EFFORTS))
    summary = fields.String(validate=validate.OneOf(REASONING_SUMMARIES))
    generate_summary = fields.String(validate=validate.OneOf(REASONING_SUMMARIES))


class StreamOptionsSchema(NullMeansAbsent):
    """`stream_options`: obfuscation padding may be asked for or not; none is sent."""

    include_obfuscation = StrictBoolean()


class ConversationId(fields.Field):
    """`conversation`: a conversation's id, or `{"id": ...}`."""

    json_types = ("string", "object")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        found = value.get("id") if isinstance(value, dict) and set(value) == {"id"} else value
        if isinstance(found, str) and 0 < len(found) <= MAX_ID_CHARS:
            return text_of(found)
        raise ValidationError(f'Must be a conversation id (at most {MAX_ID_CHARS} characters) or {{"id": ...}}.')


class ResponseRequestSchema(NullMeansAbsent):
    """The body of POST /v1/responses; bounds come from Settings."""

    model = fields.String()
    input = ResponseInput(required=True)
    instructions = Text()
    max_output_tokens = StrictInteger()
    temperature = StrictNumber(validate=validate.Range(min=0, max=2))
    top_p = StrictNumber(validate=validate.Range(min=0, max=1))
    presence_penalty = StrictNumber(validate=validate.Range(min=-2, max=2))
    frequency_penalty = StrictNumber(validate=validate.Range(min=-2, max=2))
    stream = StrictBoolean()
    stream_options = fields.Nested(StreamOptionsSchema)
    background = StrictBoolean()
    store = StrictBoolean()
    previous_response_id = Text(validate=validate.Length(min=1, max=MAX_ID_CHARS))
    conversation = ConversationId()
    metadata = Metadata()
    user = Text(validate=validate.Length(max=256))
    safety_identifier = Text(validate=validate.Length(max=256))
    prompt_cache_key = Text(validate=validate.Length(max=1024))
    service_tier = fields.String(validate=validate.OneOf(SERVICE_TIERS))
    tools = Tools()
    tool_choice = ToolChoice()
    parallel_tool_calls = StrictBoolean()
    max_tool_calls = StrictInteger(validate=validate.Range(min=1, max=MAX_TOOL_CALLS))
    text = fields.Nested(TextOptionsSchema)
    reasoning = fields.Nested(ReasoningOptionsSchema)
    include = fields.List(fields.String(validate=validate.OneOf(INCLUDABLE)), validate=validate.Length(max=16))
    top_logprobs = StrictInteger(validate=validate.Range(min=0, max=MAX_TOP_LOGPROBS))
    truncation = fields.String(
        validate=validate.OneOf(TRUNCATIONS, error="Must be auto (drop the oldest turns to fit) or disabled (refuse).")
    )
    prompt = Neutral((), "Prompt templates are not supported: send input instead.", ("null",))

    def __init__(
        self, *, max_items: int = 202, max_tokens: int = 1024, allowed_models: tuple[str, ...] = (), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.max_items = max_items
        self.max_tokens_limit = max_tokens
        self.allowed_models = allowed_models

    @validates("input")
    def _input(self, value: list[Any], **_: Any) -> None:
        if len(value) > self.max_items:
            raise ValidationError(f"At most {self.max_items} items (MAX_HISTORY_MESSAGES + 2): drop the oldest.")

    @validates("model")
    def _model(self, value: str, **_: Any) -> None:
        check_model(value, self.allowed_models)

    @validates_schema
    def _one_chain(self, data: dict[str, Any], **_: Any) -> None:
        if "conversation" in data and "previous_response_id" in data:
            raise ValidationError("Send conversation or previous_response_id, not both.", "conversation")

    @validates("max_output_tokens")
    def _max_tokens(self, value: int, **_: Any) -> None:
        check_max_tokens(value, self.max_tokens_limit)


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


OUTPUT_ITEMS = {
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


# Contract component name -> schema class (the contract test checks them with the others).
RESPONSES_COMPONENTS: dict[str, type[Schema]] = {
    "ResponseRequest": ResponseRequestSchema,
    "ResponseInputMessage": InputMessageSchema,
    "ResponseFunctionCallInput": FunctionCallInputSchema,
    "ResponseFunctionCallOutputInput": FunctionCallOutputInputSchema,
    "ResponseCustomToolCallInput": CustomToolCallInputSchema,
    "ResponseCustomToolCallOutputInput": CustomToolCallOutputInputSchema,
    "ResponseReasoningInput": ReasoningInputSchema,
    "ResponseItemReferenceInput": ItemReferenceSchema,
    "ResponseFunctionTool": FunctionToolSchema,
    "ResponseCustomTool": CustomToolSchema,
    "ResponseNamespaceTool": NamespaceToolSchema,
    "ResponseTextOptions": TextOptionsSchema,
    "ResponseReasoningOptions": ReasoningOptionsSchema,
    "ResponseStreamOptions": StreamOptionsSchema,
    "ResponseObject": ResponseObjectSchema,
    "ResponseOutputMessage": OutputMessageSchema,
    "ResponseOutputText": OutputTextSchema,
    "ResponseOutputRefusal": OutputRefusalSchema,
    "ResponseOutputFunctionCall": OutputFunctionCallSchema,
    "ResponseOutputCustomToolCall": OutputCustomToolCallSchema,
    "ResponseOutputReasoning": OutputReasoningSchema,
    "ResponseReasoningText": ReasoningTextSchema,
    "ResponseUsage": ResponseUsageSchema,
    "ResponseError": ResponseErrorSchema,
    "ResponseDeleted": ResponseDeletedSchema,
}
