"""What the two OpenAI families (chat completions and the Responses API) share: the OpenAI shape
of ChatWait's errors, a message's text content, the roles and which of them are system prompts,
and a response's or conversation's `metadata`.

The catalogue (`errors`) stays the one source of what an error says; `openai_error_body` only
says it the way the `openai` SDK, LangChain and the like expect to read it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError, fields

from ..errors import ApiError
from ..providers.call import CACHE_BREAKPOINT, EXPLICIT
from .files import data_chars
from .schema import StrictSchema, serialise, text_of

ROLES = ("system", "developer", "user", "assistant")
SYSTEM_ROLES = ("system", "developer")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
MAX_TOP_LOGPROBS = 20  # alternatives per token, as OpenAI bounds top_logprobs
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")
VERBOSITIES = ("low", "medium", "high")

# OpenAI's own `code` for the errors it has a name for (its SDKs and clients look for these).
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
_OPENAI_CODES = {
    "input_too_long": "context_length_exceeded",
    "upstream_rate_limited": "rate_limit_exceeded",
    "rate_limited": "rate_limit_exceeded",
    "invalid_api_key": "invalid_api_key",
}
# Actions that name the native API's fields, said in the OpenAI API's terms.
_OPENAI_ACTIONS = {
    "invalid_json": 'Send a UTF-8 JSON object such as {"model": "...", "messages": [{"role": "user", "content": '
    '"Hello"}]} with Content-Type: application/json.',
    "validation_error": "Fix the fields named above and send the request again.",
}


def openai_error_body(error: ApiError, correlation_id: str | None, conversation: str = "messages") -> dict[str, Any]:
    """The same error in the OpenAI API's shape, `{"error": {message, type, param, code}}`, for the
    OpenAI-compatible endpoints: `message` says what happened, why and what to do, in one text.
    `conversation` names the parameter a too long conversation is in (`input` in the Responses API)."""
    status = error.status
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 429:
        kind = "insufficient_quota" if error.error_code == "budget_exhausted" else "rate_limit_error"
    param, why = None, error.detail
    if error.fields:
        paths = _field_paths(error.fields)
        param = paths[0][0]
        why = "; ".join(f"{path}: {message.rstrip('.')}" for path, message in paths) + "."
    code = _OPENAI_CODES.get(error.error_code, error.error_code)
    if param == "model" and len(error.fields or ()) == 1:
        code = "model_not_found"
    if error.error_code == "input_too_long":
        param = conversation
    action = error.action if error.action != error.kind.action else _OPENAI_ACTIONS.get(error.error_code, error.action)
    said = [error.kind.message, *([why] if why and why != error.kind.message else []), action]
    body: dict[str, Any] = {"message": " ".join(said), "type": kind, "param": param, "code": code}
    body["correlation_id"] = correlation_id
    if error.retry_after is not None:
        body["retry_after_seconds"] = round(error.retry_after, 3)
    return {"error": body}


def _field_paths(fields: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Validation messages as (path, message) pairs: `messages[1].content`, in order."""
    found: list[tuple[str, str]] = []
    for key, value in fields.items():
        path = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
        if isinstance(value, dict):
            found += _field_paths(value, path)
        else:
            messages = value if isinstance(value, list) else [value]
            found.append((path, " ".join(str(m) for m in messages)))
    return found


def openai_error_shape(conversation: str) -> Callable[[ApiError, str | None], dict[str, Any]]:
    """The error shape of an OpenAI family, as the error-shape registry takes it (`shapes`)."""

    def render(error: ApiError, correlation_id: str | None) -> dict[str, Any]:
        return serialise(OpenAIErrorSchema, openai_error_body(error, correlation_id, conversation))

    return render


class OpenAIErrorDetailSchema(StrictSchema):
    """OpenAI's error object: what happened, why and what to do in `message`."""

    message = fields.String(required=True)
    type = fields.String(required=True)
    param = fields.String(required=True, allow_none=True)
    code = fields.String(required=True, allow_none=True)
    correlation_id = fields.String(required=True, allow_none=True)
    retry_after_seconds = fields.Float()


class OpenAIErrorSchema(StrictSchema):
    """Every error of the OpenAI-compatible endpoints, and an error chunk in their streams."""

    error = fields.Nested(OpenAIErrorDetailSchema, required=True)


def marked(index: int, part: Any, read: Callable[[int, Any], dict[str, Any]]) -> dict[str, Any]:
    """`read(index, part)`, the chat part; where the part ends a prefix to cache
    (`prompt_cache_breakpoint`, whose one value is `{"mode": "explicit"}`), with the mark kept."""
    if not isinstance(part, dict) or CACHE_BREAKPOINT not in part:
        return read(index, part)
    if part[CACHE_BREAKPOINT] != EXPLICIT:
        raise ValidationError(f'Part {index}: {CACHE_BREAKPOINT} must be {{"mode": "explicit"}}.')
    found = read(index, {name: value for name, value in part.items() if name != CACHE_BREAKPOINT})
    return {**found, CACHE_BREAKPOINT: dict(EXPLICIT)}


class MessageContent(fields.Field):
    """A message's content: a string, or a non-empty list of parts, each read by `part(index,
    part)` into a chat part (`{"type": "text", ...}`, `{"type": "image_url", ...}`) or refused.
    Text parts alone are joined by newlines into one string; with an image or a part that ends a
    prefix to cache, the parts are kept."""

    json_types = ("string", "array")

    def __init__(self, part: Callable[[int, Any], dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.part = part

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | list[dict[str, Any]]:
        if isinstance(value, str):
            return text_of(value)
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a string, or a non-empty list of parts.")
        parts, unknown = [], {}
        for index, part in enumerate(value):
            try:
                parts.append(marked(index, part, self.part))
            except ValidationError as error:  # unknown fields (by name) are gathered; any other error ends here
                if not isinstance(error.messages, dict):
                    raise
                unknown[index] = error.messages
        if unknown:
            raise ValidationError(unknown)
        if all(part.keys() == {"type", "text"} for part in parts):  # no image, no mark to keep
            return "\n".join(part["text"] for part in parts)
        return parts


def content_length(content: Any) -> int:
    """The characters of a message's content as sent (a string, or text parts and the data of
    files), before validation."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        texts = (part.get("text") for part in content if isinstance(part, dict))
        return sum(len(text) for text in texts if isinstance(text, str)) + sum(map(data_chars, content))
    return 0


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
