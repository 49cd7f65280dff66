"""What every API family's schemas share: the strict base (unknown fields refused; with
`NullMeansAbsent`, a field set to null counts as not given), the field kinds (strict JSON
numbers and booleans, text that is valid Unicode, one rule for a blank message), the model and
reply-length checks, and `serialise`, through which every JSON reply goes out shaped by its schema.

Each family's schemas mirror contracts/openapi.yaml; a test keeps them in step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate


class StrictSchema(Schema):
    """Rejects unknown fields."""

    class Meta:
        unknown = RAISE


class NullMeansAbsent(StrictSchema):
    """Drops fields set to null before loading: OpenAI's (and Anthropic's) clients send null for
    "not given"."""

    @pre_load
    def _drop_nulls(self, data: Any, **_: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


USAGE_SOURCES = ("upstream", "estimated")


# cached: the response cache answered (nothing read or generated upstream)
ATTEMPT_OUTCOMES = ("completed", "cut", "failed", "cancelled", "stopped", "cached")


class LedgerAttemptSchema(StrictSchema):
    """One upstream attempt of a generation, as its ledger keeps it."""

    model = fields.String(required=True)
    server = fields.String(required=True, allow_none=True)  # a pool's server (None: the only one)
    outcome = fields.String(required=True, validate=validate.OneOf(ATTEMPT_OUTCOMES))
    input_tokens = fields.Integer(required=True)
    output_tokens = fields.Integer(required=True)
    cached_tokens = fields.Integer()
    cache_write_tokens = fields.Integer()  # of its input, written to the server's prompt cache
    cache_write_long_tokens = fields.Integer()  # of those, with the long lifetime
    error_code = fields.String()
    cost_usd = fields.Float()


class LedgerSchema(StrictSchema):
    """ChatWait's account of a generation (`usage.chatwait` in the OpenAI and Anthropic shapes):
    the tokens its attempts generated, the chunks (a token each) that reached clients and those
    resumes sent again (where known: not in a streamed terminal event, whose every reader has
    all its chunks), the input its attempts sent again, what it cost, its attempts."""

    generated_tokens = fields.Integer(required=True)
    delivered_tokens = fields.Integer(required=True)
    replayed_tokens = fields.Integer()
    resent_tokens = fields.Integer()
    cost_usd = fields.Float()
    attempts = fields.List(fields.Nested(LedgerAttemptSchema), required=True)


class UsageSchema(StrictSchema):
    """Token usage of one generation: the native API's (with its ledger's fields) and chat
    completions' (with the ledger as `chatwait`)."""

    prompt_tokens = fields.Integer(required=True)
    completion_tokens = fields.Integer(required=True)
    total_tokens = fields.Integer(required=True)
    prompt_tokens_details = fields.Dict()  # {cached_tokens, cache_write_tokens}: the upstream's prompt cache
    completion_tokens_details = fields.Dict()  # {reasoning_tokens}, where the upstream says
    generated_tokens = fields.Integer()  # over its attempts
    delivered_tokens = fields.Integer()  # the native API's: chunks that reached clients
    replayed_tokens = fields.Integer()  # the native API's: chunks resumes sent again
    resent_tokens = fields.Integer()  # the native API's: input its continuations sent again
    cost_usd = fields.Float()  # the native API's, where the model has a price (UPSTREAMS_FILE)
    attempts = fields.List(fields.Nested(LedgerAttemptSchema))  # the native API's
    chatwait = fields.Nested(LedgerSchema)  # chat completions'


@functools.cache
def _schema(cls: type[Schema]) -> Schema:
    return cls()


def serialise(cls: type[Schema], data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as the reply schema `cls` sends it: the fields it declares, and only those. The
    schemas the contract test holds to contracts/openapi.yaml are the ones that serialise every
    JSON reply, so no copy can drift."""
    return _schema(cls).dump(data)


class Tagged(fields.Field):
    """A reply object whose `type` says which schema shapes it (a `oneOf` of components in the contract)."""

    json_types = ("object",)

    def __init__(self, by_type: Mapping[str, type[Schema]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.by_type = by_type

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else serialise(self.by_type[value["type"]], value)


class AsGiven(fields.Raw):
    """A reply field sent as the request gave it, of one of several JSON types (`json_types`)."""

    def __init__(self, json_types: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.json_types = json_types


def text_of(value: str) -> str:
    """`value` if it is valid Unicode text; ValidationError for an unpaired surrogate (`\\ud800`)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Contains an unpaired UTF-16 surrogate; send valid Unicode text.") from None
    return value


def check_model(value: str, allowed: tuple[str, ...]) -> None:
    """A request's model must be one of the allowed ones (every API)."""
    if value not in allowed:
        raise ValidationError(f"The model {value[:100]!r} does not exist here: use one of {', '.join(allowed)}.")


MAX_REQUEST_FALLBACKS = 5  # a request's own fallback models


def check_fallbacks(value: list[str], allowed: tuple[str, ...]) -> None:
    """A request's fallback models (tried in order when its model's servers fail): allowed ones, a few."""
    if len(value) > MAX_REQUEST_FALLBACKS:
        raise ValidationError(f"At most {MAX_REQUEST_FALLBACKS} models: keep the ones you most want.")
    for model in value:
        check_model(model, allowed)


def check_message_count(value: list[Any], bound: int) -> None:
    """A conversation's messages must be 1 to MAX_HISTORY_MESSAGES + 2 (`bound`)."""
    if not 1 <= len(value) <= bound:
        raise ValidationError(f"Send 1 to {bound} messages (MAX_HISTORY_MESSAGES + 2).")


MAX_ASKED_TOKENS = 100_000_000  # the most a request may ask (above a model's bound: lowered to it and said)


def check_max_tokens(value: int, limit: int = MAX_ASKED_TOKENS) -> None:
    """A request's reply length must be a count of tokens from 1 (every API); what is over its
    model's bound is lowered to it at intake (`intake.bounded`)."""
    if not 1 <= value <= limit:
        raise ValidationError(f"Must be between 1 and {limit}.")


class Text(fields.String):
    """A string that must be valid Unicode text (no unpaired surrogates from `\\ud800` escapes)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return text_of(super()._deserialize(value, attr, data, **kwargs))


class StrictInteger(fields.Integer):
    """A JSON integer: no strings, booleans or fractions (5.0 is an integer, as JSON Schema says)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


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


class StrictBoolean(fields.Boolean):
    """A JSON true or false (no 0, 1 or strings)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Not a boolean: send true or false.")
        return value


class StrictNumber(fields.Float):
    """A finite JSON number: no strings or booleans."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("Not a valid number.")
        if isinstance(value, int) and abs(value) > 2**53:
            raise ValidationError("Number too large.")
        number = super()._deserialize(value, attr, data, **kwargs)
        if not math.isfinite(number):
            raise ValidationError("Not a finite number.")
        return number


# What counts as blank in a message: the whitespace of JSON Schema's regular expressions
# (ECMA-262 `\s`) and of Python (str.isspace) together, listed, so that the contract's pattern
# and this check are one rule in any regex engine.
BLANK = frozenset(
    "\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
NOT_BLANK_PATTERN = "[^" + "".join(f"\\u{ord(c):04X}" for c in sorted(BLANK)) + "]"  # the contract's


_BLANK_CHARS = "".join(sorted(BLANK))


def blank(text: str) -> bool:
    """Whether `text` holds nothing but BLANK characters (or nothing)."""
    return not text.strip(_BLANK_CHARS)
