"""The OpenAI API's shape of ChatWait's errors, for its OpenAI-compatible endpoints.

The catalogue (`errors`) stays the one source of what an error says; this module only says it
the way the `openai` SDK, LangChain and the like expect to read it.
"""

from __future__ import annotations

from typing import Any

from ..errors import ApiError

# OpenAI's own `code` for the errors it has a name for (its SDKs and clients look for these).
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
        kind = "rate_limit_error"
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
