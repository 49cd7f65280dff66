"""The Responses API's schemas (`/v1/responses`): the request ChatWait takes, and the response
objects it sends, one per `Response*` component of contracts/openapi.yaml (a test keeps them in step).

The request takes text: `input` as a string or as message items (roles user, assistant, system,
developer; content a string or `input_text` / `output_text` parts), `instructions`, the
sampling options, `stream`, `background`, `store`, `previous_response_id`, `truncation`,
`metadata`, `user`.
What needs tools, files, images, structured output or reasoning is refused with a 400 naming
the parameter; an optional field set to null counts as not given.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from ..openai import ROLES, MessageContent
from ..schema import (
    Neutral,
    NullMeansAbsent,
    StrictBoolean,
    StrictInteger,
    StrictNumber,
    StrictSchema,
    Text,
    check_max_tokens,
    check_model,
    text_of,
)

TRUNCATIONS = ("auto", "disabled")
STATUSES = ("queued", "in_progress", "completed", "incomplete", "failed", "cancelled")
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
PART_TYPES = ("input_text", "output_text")
_NO_TOOLS = "ChatWait does not support tools (function calling): leave the field out."
_TEXT_ONLY = "ChatWait takes and gives text only (no images, files or audio)."


def _part_text(index: int, part: Any) -> str:
    if not isinstance(part, dict):
        raise ValidationError(f"Part {index} is not an object.")
    kind = part.get("type")
    if kind not in PART_TYPES:
        raise ValidationError(f"Part {index} is of type {str(kind)[:40]!r}. {_TEXT_ONLY}")
    extra = set(part) - {"type", "text", "annotations", "logprobs"}
    if extra or not isinstance(part.get("text"), str) or part.get("annotations", []) or part.get("logprobs", []):
        raise ValidationError(f'Part {index} must be {{"type": "{kind}", "text": "..."}} and nothing more.')
    return text_of(part["text"])


class InputMessageSchema(NullMeansAbsent):
    """One message item of `input` (also an earlier reply's output item, sent back as it came)."""

    type = Neutral(("message",), "Only message items are taken (no tool calls or their outputs).", ("string",))
    role = fields.String(
        required=True, validate=validate.OneOf(ROLES, error="Must be one of: user, assistant, system, developer.")
    )
    content = MessageContent(_part_text, required=True, error_messages={"required": "Every item needs text content."})
    id = Text(validate=validate.Length(min=1, max=128))
    status = fields.String(validate=validate.OneOf(("in_progress", "completed", "incomplete")))


class ResponseInput(fields.Field):
    """`input`: a string (one user message), or a list of message items."""

    json_types = ("string", "array")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if isinstance(value, str):
            return [{"role": "user", "content": text_of(value)}]
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a string, or a non-empty list of message items.")
        items, errors = [], {}
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                errors[index] = ["Not an object: send a message item."]
                continue
            try:
                items.append(InputMessageSchema().load(item))
            except ValidationError as exc:
                errors[index] = exc.messages
        if errors:
            raise ValidationError(errors)
        return items


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
    """`text`: the reply's format, text only."""

    format = Neutral(({"type": "text"},), 'ChatWait replies in text only: send {"type": "text"}.', ("object",))
    verbosity = Neutral(("medium",), "Verbosity is not supported: leave it out.", ("string",))


class ResponseRequestSchema(NullMeansAbsent):
    """The body of POST /v1/responses; bounds come from Settings."""

    model = fields.String()
    input = ResponseInput(required=True)
    instructions = Text()
    max_output_tokens = StrictInteger()
    temperature = StrictNumber(validate=validate.Range(min=0, max=2))
    top_p = StrictNumber(validate=validate.Range(min=0, max=1))
    stream = StrictBoolean()
    background = StrictBoolean()
    store = StrictBoolean()
    previous_response_id = Text(validate=validate.Length(min=1, max=128))
    metadata = Metadata()
    user = Text(validate=validate.Length(max=256))
    tools = Neutral(([],), _NO_TOOLS, ("array",))
    tool_choice = Neutral(("none", "auto"), _NO_TOOLS, ("string", "object"))
    parallel_tool_calls = Neutral((True, False), _NO_TOOLS, ("boolean",))
    max_tool_calls = Neutral((), _NO_TOOLS, ("null",))
    text = fields.Nested(TextOptionsSchema)
    reasoning = Neutral(({},), "Reasoning options are not supported: leave the field out.", ("object",))
    include = Neutral(([],), "No extra output can be included: leave the field out.", ("array",))
    truncation = fields.String(
        validate=validate.OneOf(TRUNCATIONS, error="Must be auto (drop the oldest turns to fit) or disabled (refuse).")
    )
    service_tier = Neutral(("auto", "default"), "One service tier: leave it out or send auto.", ("string",))
    top_logprobs = Neutral((0,), "Log probabilities are not supported: leave it out.", ("integer",))
    prompt = Neutral((), "Prompt templates are not supported: send input instead.", ("null",))
    conversation = Neutral((), "Conversations are not supported: chain with previous_response_id.", ("null",))
    stream_options = Neutral(({}, {"include_obfuscation": False}), "Leave stream_options out.", ("object",))

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

    @validates("max_output_tokens")
    def _max_tokens(self, value: int, **_: Any) -> None:
        check_max_tokens(value, self.max_tokens_limit)


class OutputTextSchema(StrictSchema):
    """A text part of an output message."""

    type = fields.String(required=True, validate=validate.OneOf(("output_text",)))
    text = fields.String(required=True)
    annotations = fields.List(fields.Dict(), required=True)
    logprobs = fields.List(fields.Dict(), required=True)


class OutputMessageSchema(StrictSchema):
    """The assistant's message, the one output item."""

    id = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("message",)))
    status = fields.String(required=True, validate=validate.OneOf(("in_progress", "completed", "incomplete")))
    role = fields.String(required=True, validate=validate.OneOf(("assistant",)))
    content = fields.List(fields.Nested(OutputTextSchema), required=True)


class ResponseUsageSchema(StrictSchema):
    """Token usage in the Responses API's terms."""

    input_tokens = fields.Integer(required=True)
    input_tokens_details = fields.Dict(required=True)
    output_tokens = fields.Integer(required=True)
    output_tokens_details = fields.Dict(required=True)
    total_tokens = fields.Integer(required=True)


class ResponseErrorSchema(StrictSchema):
    """Why a response failed."""

    code = fields.String(required=True)
    message = fields.String(required=True)


class ResponseObjectSchema(StrictSchema):
    """A response object: what POST /v1/responses, GET /v1/responses/{id} and cancel answer."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("response",)))
    created_at = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    error = fields.Nested(ResponseErrorSchema, required=True, allow_none=True)
    incomplete_details = fields.Dict(required=True, allow_none=True)
    model = fields.String(required=True)
    output = fields.List(fields.Nested(OutputMessageSchema), required=True)
    parallel_tool_calls = fields.Boolean(required=True)
    reasoning = fields.Dict(required=True)
    text = fields.Dict(required=True)
    tool_choice = fields.String(required=True)
    tools = fields.List(fields.Dict(), required=True)
    truncation = fields.String(required=True, validate=validate.OneOf(TRUNCATIONS))
    usage = fields.Nested(ResponseUsageSchema, required=True, allow_none=True)
    background = fields.Boolean(required=True)
    instructions = fields.String(required=True, allow_none=True)
    max_output_tokens = fields.Integer(required=True, allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    previous_response_id = fields.String(required=True, allow_none=True)
    store = fields.Boolean(required=True)
    temperature = fields.Float(required=True, allow_none=True)
    top_p = fields.Float(required=True, allow_none=True)
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
    "ResponseTextOptions": TextOptionsSchema,
    "ResponseObject": ResponseObjectSchema,
    "ResponseOutputMessage": OutputMessageSchema,
    "ResponseOutputText": OutputTextSchema,
    "ResponseUsage": ResponseUsageSchema,
    "ResponseError": ResponseErrorSchema,
    "ResponseDeleted": ResponseDeletedSchema,
}
