"""The Responses API's request schemas (`/v1/responses`); its objects' are in `object_schemas`.
Together, one per `Response*` component of contracts/openapi.yaml (a test keeps them in step).

The request takes OpenAI's parameters: `input` as a string or as items (`items`), the options
the upstream is sent (`intake`), the tools (`tools`), the ways to chain and to answer. Files and
prompt templates are a 400 naming the parameter; an optional field set to null counts as not
given. The response object has every field of OpenAI's.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from ..items.formats import TextFormat
from ..items.input import (
    AdditionalToolsSchema,
    CompactionTriggerSchema,
    ConfigurationUpdateSchema,
    CustomToolCallInputSchema,
    CustomToolCallOutputInputSchema,
    FunctionCallInputSchema,
    FunctionCallOutputInputSchema,
    InputMessageSchema,
    ItemReferenceSchema,
    ReasoningInputSchema,
    ReasoningUpdateSchema,
    ResponseInput,
    TextUpdateSchema,
)
from ..items.tools import CustomToolSchema, FunctionToolSchema, NamespaceToolSchema, ToolChoice, Tools
from ..openai import MAX_TOP_LOGPROBS, REASONING_EFFORTS, SERVICE_TIERS, VERBOSITIES, Metadata
from ..schema import (
    MAX_ASKED_TOKENS,
    Neutral,
    NullMeansAbsent,
    StrictBoolean,
    StrictInteger,
    StrictNumber,
    Text,
    check_max_tokens,
    check_model,
    text_of,
)
from .object_schemas import (
    TRUNCATIONS,
    InputTokensSchema,
    OutputCompactionSchema,
    OutputCustomToolCallSchema,
    OutputFunctionCallSchema,
    OutputMessageSchema,
    OutputReasoningSchema,
    OutputRefusalSchema,
    OutputTextSchema,
    ReasoningTextSchema,
    ResponseDeletedSchema,
    ResponseErrorSchema,
    ResponseObjectSchema,
    ResponseUsageSchema,
)

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


class ContextManagementSchema(NullMeansAbsent):
    """One `context_management` entry: server-side compaction past a number of input tokens."""

    type = fields.String(required=True, validate=validate.OneOf(("compaction",)))
    compact_threshold = StrictInteger(validate=validate.Range(min=1, max=100_000_000))


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
    generate = StrictBoolean()  # false: a warmup that prepares a chain's state, nothing generated
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
    context_management = fields.List(fields.Nested(ContextManagementSchema), validate=validate.Length(max=8))

    def __init__(
        self,
        *,
        max_items: int = 202,
        max_tokens: int = MAX_ASKED_TOKENS,
        allowed_models: tuple[str, ...] = (),
        **kwargs: Any,
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
    "ResponseAdditionalToolsInput": AdditionalToolsSchema,
    "ResponseConfigurationUpdateInput": ConfigurationUpdateSchema,
    "ResponseCompactionTriggerInput": CompactionTriggerSchema,
    "ResponseReasoningUpdate": ReasoningUpdateSchema,
    "ResponseTextUpdate": TextUpdateSchema,
    "ResponseFunctionTool": FunctionToolSchema,
    "ResponseCustomTool": CustomToolSchema,
    "ResponseNamespaceTool": NamespaceToolSchema,
    "ResponseTextOptions": TextOptionsSchema,
    "ResponseReasoningOptions": ReasoningOptionsSchema,
    "ResponseStreamOptions": StreamOptionsSchema,
    "ResponseContextManagement": ContextManagementSchema,
    "ResponseObject": ResponseObjectSchema,
    "ResponseOutputMessage": OutputMessageSchema,
    "ResponseOutputText": OutputTextSchema,
    "ResponseOutputRefusal": OutputRefusalSchema,
    "ResponseOutputFunctionCall": OutputFunctionCallSchema,
    "ResponseOutputCustomToolCall": OutputCustomToolCallSchema,
    "ResponseOutputReasoning": OutputReasoningSchema,
    "ResponseOutputCompaction": OutputCompactionSchema,
    "ResponseReasoningText": ReasoningTextSchema,
    "ResponseUsage": ResponseUsageSchema,
    "ResponseInputTokens": InputTokensSchema,
    "ResponseError": ResponseErrorSchema,
    "ResponseDeleted": ResponseDeletedSchema,
}
