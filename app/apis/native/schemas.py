"""The native API's schemas, one per component of contracts/openapi.yaml (a test keeps them in
step): the request it validates, and the reply and events it sends (the tests check live output
against both these schemas and the contract).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from ...providers.base import OPENAI_FINISH_REASONS
from ..schema import (
    MAX_ASKED_TOKENS,
    USAGE_SOURCES,
    LedgerAttemptSchema,
    LedgerSchema,
    StrictInteger,
    StrictNumber,
    StrictSchema,
    Text,
    UsageSchema,
    blank,
    check_fallbacks,
    check_max_tokens,
    check_model,
)
from ..shapes import ErrorSchema

ROLES = ("user", "assistant", "system")
FINISH_REASONS = (*OPENAI_FINISH_REASONS, "cancelled")  # a stop by the client is `cancelled` here


class HistoryMessageSchema(StrictSchema):
    """One earlier turn of the conversation, managed by the client."""

    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = Text(required=True)


class ChatRequestSchema(StrictSchema):
    """The body of POST /v1/chat/wait and /v1/chat/streaming; bounds come from Settings."""

    message = Text(required=True)
    history = fields.List(fields.Nested(HistoryMessageSchema), load_default=list)
    system = Text()
    model = fields.String()
    fallbacks = fields.List(fields.String())
    max_tokens = StrictInteger()
    temperature = StrictNumber(validate=validate.Range(min=0, max=2))
    user = Text(validate=validate.Length(min=1, max=256))  # the end user (apis.end_users)

    def __init__(
        self,
        *,
        max_message_chars: int = 8000,
        max_history_messages: int = 200,
        max_tokens: int = MAX_ASKED_TOKENS,
        allowed_models: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_message_chars = max_message_chars
        self.max_history_messages = max_history_messages
        self.max_tokens_limit = max_tokens
        self.allowed_models = allowed_models

    @validates("message")
    def _message(self, value: str, **_: Any) -> None:
        if blank(value):
            raise ValidationError("Must not be empty or blank: type a message.")
        if len(value) > self.max_message_chars:
            raise ValidationError(f"Longer than {self.max_message_chars} characters ({len(value)}): shorten it.")

    @validates("system")
    def _system(self, value: str, **_: Any) -> None:
        if len(value) > self.max_message_chars:
            raise ValidationError(f"Longer than {self.max_message_chars} characters: shorten it.")

    @validates("history")
    def _history(self, value: list[Any], **_: Any) -> None:
        if len(value) > self.max_history_messages:
            raise ValidationError(f"More than {self.max_history_messages} messages: drop the oldest ones.")

    @validates("model")
    def _model(self, value: str, **_: Any) -> None:
        check_model(value, self.allowed_models)

    @validates("fallbacks")
    def _fallbacks(self, value: list[str], **_: Any) -> None:
        check_fallbacks(value, self.allowed_models)

    @validates("max_tokens")
    def _max_tokens(self, value: int, **_: Any) -> None:
        check_max_tokens(value, self.max_tokens_limit)


class ChatReplySchema(StrictSchema):
    """The JSON reply of wait mode."""

    id = fields.String(required=True)
    correlation_id = fields.String(required=True)
    model = fields.String(required=True)
    content = fields.String(required=True)
    finish_reason = fields.String(required=True, validate=validate.OneOf(FINISH_REASONS))
    usage = fields.Nested(UsageSchema, required=True)
    usage_source = fields.String(required=True, validate=validate.OneOf(USAGE_SOURCES))
    duration_ms = fields.Float(required=True)


class StreamEventSchema(StrictSchema):
    """Data of the priming `stream` event (id 0)."""

    stream_id = fields.String(required=True)
    correlation_id = fields.String(required=True)
    model = fields.String(required=True)
    created = fields.Integer(required=True)


class ChunkEventSchema(StrictSchema):
    """Data of a `chunk` event."""

    sequence = fields.Integer(required=True)
    content = fields.String(required=True)
    is_final = fields.Boolean(required=True)


class _TerminalFields(StrictSchema):
    sequence = fields.Integer(required=True)
    is_final = fields.Boolean(required=True)
    last_sequence = fields.Integer(required=True)
    content_length = fields.Integer(required=True)
    duration_ms = fields.Float(required=True)
    usage = fields.Nested(UsageSchema, required=True)
    usage_source = fields.String(required=True, validate=validate.OneOf(USAGE_SOURCES))


class DoneEventSchema(_TerminalFields):
    """Data of the terminal `done` event."""

    finish_reason = fields.String(required=True, validate=validate.OneOf(FINISH_REASONS))
    model = fields.String()  # the fallback model that answered


class ErrorEventSchema(_TerminalFields, ErrorSchema):
    """Data of the terminal `error` event."""


class InterruptedEventSchema(StrictSchema):
    """Data of an `error` event without an id: one response ends, the stream goes on."""

    error_code = fields.String(required=True, validate=validate.OneOf(("store_unavailable",)))
    message = fields.String(required=True)
    detail = fields.String(required=True)
    action = fields.String(required=True)
    retryable = fields.Boolean(required=True)
    correlation_id = fields.String(required=True, allow_none=True)
    retry_after_seconds = fields.Float()
    is_final = fields.Boolean(required=True)
    resume_after = fields.Integer(required=True)


class QueuedEventSchema(StrictSchema):
    """Data of the `queued` notice: how many replies are before this one for the embedded model."""

    ahead = fields.Integer(required=True)


class StopResultSchema(StrictSchema):
    """The reply of DELETE /v1/chat/streaming/{stream_id}."""

    stream_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("cancelled", "already_finished")))
    last_event_id = fields.Integer(required=True)


# Contract component name -> schema class (used by the contract test).
NATIVE_COMPONENTS: dict[str, type[Schema]] = {
    "ChatRequest": ChatRequestSchema,
    "HistoryMessage": HistoryMessageSchema,
    "Usage": UsageSchema,
    "Ledger": LedgerSchema,
    "LedgerAttempt": LedgerAttemptSchema,
    "ChatReply": ChatReplySchema,
    "Error": ErrorSchema,
    "StreamEvent": StreamEventSchema,
    "ChunkEvent": ChunkEventSchema,
    "DoneEvent": DoneEventSchema,
    "ErrorEvent": ErrorEventSchema,
    "InterruptedEvent": InterruptedEventSchema,
    "QueuedEvent": QueuedEventSchema,
    "StopResult": StopResultSchema,
}
