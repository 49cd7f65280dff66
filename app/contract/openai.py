"""marshmallow schemas of the OpenAI-compatible endpoints, one per `Completion*`/`Model*`
component of contracts/openapi.yaml (a test keeps them in step).

The request schema takes what OpenAI's clients send: text messages (a string, or text parts),
the sampling options ChatWait passes on, and the fields of features it lacks only at values
that ask for nothing (no tools, one choice, text replies). Anything else is refused with a 400
that names the field and says why, never silently ignored. An optional field set to null counts
as not given, as OpenAI's API takes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError, fields, pre_load, validate, validates, validates_schema

from .fields import StrictInteger, StrictNumber, Text, check_max_tokens, check_model, text_of
from .native import StrictSchema

ROLES = ("system", "developer", "user", "assistant")
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 256
SEED_BOUND = 2**63


class NullMeansAbsent(StrictSchema):
    """Drops fields set to null before loading: OpenAI's clients send null for "not given"."""

    @pre_load
    def _drop_nulls(self, data: Any, **_: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class StrictBoolean(fields.Boolean):
    """A JSON true or false (no 0, 1 or strings)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Not a boolean: send true or false.")
        return value


class MessageContent(fields.Field):
    """A message's text: a string, or a list of text parts (joined by newlines); no images,
    audio or files. `part_text(index, part)` reads one part, or refuses it (chat completions'
    `text` parts by default)."""

    json_types = ("string", "array")

    def __init__(self, part_text: Callable[[int, Any], str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.part_text = part_text or _part_text

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            return text_of(value)
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a string, or a non-empty list of text parts.")
        return "\n".join(self.part_text(index, part) for index, part in enumerate(value))


def _part_text(index: int, part: Any) -> str:
    if not isinstance(part, dict):
        raise ValidationError(f"Part {index} is not an object.")
    kind = part.get("type")
    if kind != "text":
        shown = str(kind)[:40]
        raise ValidationError(f"Part {index} is of type {shown!r}: ChatWait takes text only (no images, audio, files).")
    if set(part) != {"type", "text"} or not isinstance(part["text"], str):
        raise ValidationError(f'Part {index} must be {{"type": "text", "text": "..."}} and nothing more.')
    return text_of(part["text"])


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


class Neutral(fields.Field):
    """A field of a feature ChatWait lacks, accepted only at a value that asks for nothing."""

    def __init__(self, accepted: tuple[Any, ...], why: str, json_types: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.accepted = accepted
        self.why = why
        self.json_types = json_types

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> None:
        if not any(type(value) is type(ok) and value == ok for ok in self.accepted):
            raise ValidationError(self.why)


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
