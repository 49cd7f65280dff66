"""The schemas of chat completions and the models API, one per `Completion*`/`Model*` component
of contracts/openapi.yaml (a test keeps them in step): the request ChatWait takes, and what it
sends (completions, chunks, models, stops and deletions).

The request schema takes what OpenAI's clients send: text messages (a string, or text parts),
the sampling options ChatWait passes on, and the fields of features it lacks only at values
that ask for nothing (no tools, one choice, text replies). Anything else is refused with a 400
that names the field and says why, never silently ignored. An optional field set to null counts
as not given, as OpenAI's API takes it.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from ...providers.base import OPENAI_FINISH_REASONS
from ..openai import ROLES, MessageContent, OpenAIErrorDetailSchema, OpenAIErrorSchema
from ..schema import (
    USAGE_SOURCES,
    Neutral,
    NullMeansAbsent,
    StrictBoolean,
    StrictInteger,
    StrictNumber,
    StrictSchema,
    Text,
    UsageSchema,
    check_max_tokens,
    check_model,
    text_of,
)

MAX_STOP_SEQUENCES = 4
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


_NO_TOOLS = "ChatWait does not support tools (function calling): leave the field out."


class CompletionMessageSchema(NullMeansAbsent):
    """One message of the conversation: system (or developer), user or assistant text."""

    role = fields.String(
        required=True,
        validate=validate.OneOf(ROLES, error="Must be one of: system, developer, user, assistant (no tool messages)."),
    )
    content = MessageContent(required=True, error_messages={"required": "Every message needs text content."})
    name = Text(validate=validate.Length(min=1, max=64))
    tool_calls = Neutral(([],), _NO_TOOLS, ("array",))
    function_call = Neutral((), _NO_TOOLS, ("null",))
    refusal = Neutral((), "Send a refusal as the message's content instead.", ("null",))
    audio = Neutral((), "ChatWait takes text only.", ("null",))
    annotations = Neutral(([],), "Annotations are not supported: leave the field out.", ("array",))


class StreamOptionsSchema(NullMeansAbsent):
    """`stream_options`: ask for a usage chunk before [DONE]."""

    include_usage = StrictBoolean()
    include_obfuscation = Neutral((False,), "Obfuscation padding is not supported: leave it out.", ("boolean",))


class CompletionRequestSchema(NullMeansAbsent):
    """The body of POST /v1/chat/completions; bounds come from Settings."""

    model = fields.String()
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
    tools = Neutral(([],), _NO_TOOLS, ("array",))
    tool_choice = Neutral(("none",), _NO_TOOLS, ("string", "object"))
    parallel_tool_calls = Neutral((), _NO_TOOLS, ("null",))
    functions = Neutral(([],), _NO_TOOLS, ("array",))
    function_call = Neutral(("none",), _NO_TOOLS, ("string", "object"))
    response_format = Neutral(
        ({"type": "text"},), 'ChatWait replies in text only: leave it out or send {"type": "text"}.', ("object",)
    )
    logprobs = Neutral((False,), "Log probabilities are not supported: leave it out or send false.", ("boolean",))
    top_logprobs = Neutral((), "Log probabilities are not supported: leave it out.", ("null",))
    logit_bias = Neutral(({},), "logit_bias is not supported: leave it out.", ("object",))
    store = Neutral((False,), "ChatWait stores no completions: leave it out or send false.", ("boolean",))
    metadata = Neutral(({},), "metadata belongs to stored completions, which ChatWait does not keep.", ("object",))
    modalities = Neutral((["text"],), 'ChatWait replies in text only: leave it out or send ["text"].', ("array",))

    def __init__(
        self,
        *,
        max_messages: int = 202,
        max_tokens: int = 1024,
        allowed_models: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_messages = max_messages
        self.max_tokens_limit = max_tokens
        self.allowed_models = allowed_models

    @validates("messages")
    def _messages(self, value: list[Any], **_: Any) -> None:
        if not 1 <= len(value) <= self.max_messages:
            raise ValidationError(f"Send 1 to {self.max_messages} messages (MAX_HISTORY_MESSAGES + 2).")

    @validates("model")
    def _model(self, value: str, **_: Any) -> None:
        check_model(value, self.allowed_models)

    @validates("max_tokens", "max_completion_tokens")
    def _max_tokens(self, value: int, **_: Any) -> None:
        check_max_tokens(value, self.max_tokens_limit)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **_: Any) -> None:
        if "stream_options" in data and not data.get("stream"):
            raise ValidationError("Only allowed when stream is true.", "stream_options")


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


# Contract component name -> schema class (used by the contract test).
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
