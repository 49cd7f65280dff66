"""The schemas of chat completions and the models API, one per `Completion*`/`Model*` component
of contracts/openapi.yaml (a test keeps them in step): the request ChatWait takes here, what it
sends (completions, chunks, models, stops and deletions) in `object_schemas`.

The request schema takes what OpenAI's clients send: text messages (a string, or text parts),
the sampling options ChatWait passes on, and the fields of features it lacks only at values
that ask for nothing (no tools, one choice, text replies). Anything else is refused with a 400
that names the field and says why, never silently ignored. An optional field set to null counts
as not given, as OpenAI's API takes it.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from ..functions import MAX_TOOLS
from ..openai import (
    MAX_TOP_LOGPROBS,
    REASONING_EFFORTS,
    ROLES,
    SERVICE_TIERS,
    VERBOSITIES,
    MessageContent,
    OpenAIErrorDetailSchema,
    OpenAIErrorSchema,
)
from ..schema import (
    MAX_ASKED_TOKENS,
    Neutral,
    NullMeansAbsent,
    StrictBoolean,
    StrictInteger,
    StrictNumber,
    StrictSchema,
    Text,
    check_fallbacks,
    check_max_tokens,
    check_message_count,
    check_model,
    text_of,
)
from .object_schemas import (
    ChoiceLogprobsSchema,
    ChunkChoiceSchema,
    ChunkDeltaSchema,
    ChunkFunctionSchema,
    ChunkToolCallSchema,
    CompletionChoiceSchema,
    CompletionChunkSchema,
    CompletionDeletedSchema,
    CompletionSchema,
    CompletionStopSchema,
    ModelListSchema,
    ModelSchema,
    ReplyMessageSchema,
)
from .tools import (
    CalledFunctionSchema,
    FunctionSchema,
    ResponseFormat,
    ToolCallSchema,
    ToolChoice,
    ToolSchema,
    content_part,
)

MAX_STOP_SEQUENCES = 4
MAX_LOGIT_BIAS = 300
MAX_STOP_CHARS = 256
SEED_BOUND = 2**63


class Stop(fields.Field):
    """Up to 4 sequences that end the reply: a string, or a list of strings."""

    json_types = ("string", "array")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not isinstance(texts, list) or not 1 <= len(texts) <= MAX_STOP_SEQUENCES:
            raise ValidationError(f"Must be a string or a list of 1 to {MAX_STOP_SEQUENCES} strings.")
        for text in texts:
            if not isinstance(text, str) or not 1 <= len(text) <= MAX_STOP_CHARS:
                raise ValidationError(f"Each stop sequence must be a string of 1 to {MAX_STOP_CHARS} characters.")
            text_of(text)
        return value


_DEPRECATED = "Deprecated by OpenAI: send tools and tool_choice instead."
MESSAGE_ROLES = (*ROLES, "tool")
MAX_HISTORY_TOOL_CALLS = 128


class CompletionMessageSchema(NullMeansAbsent):
    """One message of the conversation: system (or developer), user (text and images), assistant
    (text, a refusal, tool calls) or tool (a call's result)."""

    role = fields.String(
        required=True,
        validate=validate.OneOf(MESSAGE_ROLES, error="Must be one of: system, developer, user, assistant, tool."),
    )
    content = MessageContent(content_part)
    name = Text(validate=validate.Length(min=1, max=64))
    tool_calls = fields.List(fields.Nested(ToolCallSchema), validate=validate.Length(max=MAX_HISTORY_TOOL_CALLS))
    tool_call_id = Text(validate=validate.Length(min=1, max=256))
    function_call = Neutral((), _DEPRECATED, ("null",))
    refusal = Text()
    audio = Neutral((), "ChatWait takes text and images only.", ("null",))
    annotations = Neutral(([],), "Annotations are not supported: leave the field out.", ("array",))

    @validates_schema
    def _by_role(self, data: dict[str, Any], **_: Any) -> None:
        role = data.get("role")
        if role == "tool" and "tool_call_id" not in data:
            raise ValidationError("A tool message needs the tool_call_id it answers.", "tool_call_id")
        if role != "tool" and "tool_call_id" in data:
            raise ValidationError("Only tool messages have a tool_call_id.", "tool_call_id")
        if role != "assistant" and ("tool_calls" in data or "refusal" in data):
            raise ValidationError("Only assistant messages have tool_calls or a refusal.", "role")
        if "content" not in data and not (role == "assistant" and (data.get("tool_calls") or "refusal" in data)):
            raise ValidationError("Every message needs text content.", "content")
        content = data.get("content")
        if isinstance(content, list) and role != "user" and any(part["type"] != "text" for part in content):
            raise ValidationError("Only user messages take images, files and audio.", "content")


class StreamOptionsSchema(NullMeansAbsent):
    """`stream_options`: ask for a usage chunk before [DONE]."""

    include_usage = StrictBoolean()
    include_obfuscation = Neutral((False,), "Obfuscation padding is not supported: leave it out.", ("boolean",))


class CompletionRequestSchema(NullMeansAbsent):
    """The body of POST /v1/chat/completions; bounds come from Settings."""

    model = fields.String()
    fallbacks = fields.List(fields.String())  # ChatWait's (as LiteLLM's): models to answer when `model` cannot
    messages = fields.List(fields.Nested(CompletionMessageSchema), required=True)
    stream = StrictBoolean()
    stream_options = fields.Nested(StreamOptionsSchema)
    max_tokens = StrictInteger()
    max_completion_tokens = StrictInteger()
    temperature = StrictNumber(validate=validate.Range(min=0, max=2))
    top_p = StrictNumber(validate=validate.Range(min=0, max=1))
    presence_penalty = StrictNumber(validate=validate.Range(min=-2, max=2))
    frequency_penalty = StrictNumber(validate=validate.Range(min=-2, max=2))
    stop = Stop()
    seed = StrictInteger(validate=validate.Range(min=-SEED_BOUND, max=SEED_BOUND - 1))
    user = Text(validate=validate.Length(max=256))
    n = Neutral((1,), "ChatWait generates one choice: leave n out or send 1.", ("integer",))
    tools = fields.List(fields.Nested(ToolSchema), validate=validate.Length(max=MAX_TOOLS))
    tool_choice = ToolChoice()
    parallel_tool_calls = StrictBoolean()
    functions = Neutral(([],), _DEPRECATED, ("array",))
    function_call = Neutral(("none",), _DEPRECATED, ("string", "object"))
    response_format = ResponseFormat()
    logprobs = StrictBoolean()
    top_logprobs = StrictInteger(validate=validate.Range(min=0, max=MAX_TOP_LOGPROBS))
    logit_bias = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[0-9]{1,9}$", error="Keys are token ids.")),
        values=StrictNumber(validate=validate.Range(min=-100, max=100)),
        validate=validate.Length(max=MAX_LOGIT_BIAS),
    )
    reasoning_effort = fields.String(validate=validate.OneOf(REASONING_EFFORTS))
    verbosity = fields.String(validate=validate.OneOf(VERBOSITIES))
    store = StrictBoolean()
    metadata = fields.Dict(
        keys=fields.String(validate=validate.Length(max=64)),
        values=fields.String(validate=validate.Length(max=512)),
        validate=validate.Length(max=16),
    )
    service_tier = fields.String(validate=validate.OneOf(SERVICE_TIERS))
    prompt_cache_key = Text(validate=validate.Length(max=1024))
    safety_identifier = Text(validate=validate.Length(max=256))
    modalities = Neutral((["text"],), 'ChatWait replies in text only: leave it out or send ["text"].', ("array",))

    def __init__(
        self,
        *,
        max_messages: int = 202,
        max_tokens: int = MAX_ASKED_TOKENS,
        allowed_models: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_messages = max_messages
        self.max_tokens_limit = max_tokens
        self.allowed_models = allowed_models

    @validates("messages")
    def _messages(self, value: list[Any], **_: Any) -> None:
        check_message_count(value, self.max_messages)

    @validates("model")
    def _model(self, value: str, **_: Any) -> None:
        check_model(value, self.allowed_models)

    @validates("fallbacks")
    def _fallbacks(self, value: list[str], **_: Any) -> None:
        check_fallbacks(value, self.allowed_models)

    @validates("max_tokens", "max_completion_tokens")
    def _max_tokens(self, value: int, **_: Any) -> None:
        check_max_tokens(value, self.max_tokens_limit)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        if "stream_options" in data and not data.get("stream"):
            raise ValidationError("Only allowed when stream is true.", "stream_options")
        names = {tool["function"]["name"] for tool in data.get("tools", ())}
        choice = data.get("tool_choice")
        if isinstance(choice, dict) and choice["function"]["name"] not in names:
            raise ValidationError("Names no function of tools.", "tool_choice")
        if not names and choice not in (None, "none", "auto"):
            raise ValidationError("Only allowed with tools.", "tool_choice")
        if not names and "parallel_tool_calls" in data:
            raise ValidationError("Only allowed with tools.", "parallel_tool_calls")
        if "top_logprobs" in data and not data.get("logprobs"):
            raise ValidationError("Only allowed with logprobs true.", "top_logprobs")


class CompletionTextPartSchema(StrictSchema):
    """A text part of a message's content."""

    type = fields.String(required=True, validate=validate.OneOf(("text",)))
    text = fields.String(required=True)


# Contract component name -> schema class (used by the contract test).
OPENAI_COMPONENTS: dict[str, type[Schema]] = {
    "CompletionRequest": CompletionRequestSchema,
    "CompletionMessage": CompletionMessageSchema,
    "CompletionTextPart": CompletionTextPartSchema,
    "CompletionTool": ToolSchema,
    "CompletionFunction": FunctionSchema,
    "CompletionToolCall": ToolCallSchema,
    "CompletionCalledFunction": CalledFunctionSchema,
    "ChunkToolCall": ChunkToolCallSchema,
    "ChunkFunction": ChunkFunctionSchema,
    "StreamOptions": StreamOptionsSchema,
    "Completion": CompletionSchema,
    "CompletionChoice": CompletionChoiceSchema,
    "ChoiceLogprobs": ChoiceLogprobsSchema,
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
