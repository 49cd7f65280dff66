"""What every family's intake shares, from an HTTP request to a ChatCall: the strict JSON body,
schema validation, the conversation's size in characters and in input tokens.

Every way a body can be wrong ends here as a catalogue error with a 4xx status: wrong
content type, invalid UTF-8, malformed JSON, NaN/Infinity, numbers too big to hold, nesting
too deep for the parser, unknown or mistyped fields, and conversations over the token limit.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from flask import Request
from marshmallow import Schema, ValidationError

from ..config import Settings
from ..errors import ApiError, RequestBodyError
from ..providers.base import Provider
from ..providers.counted import message_text
from . import unknown
from .openai import content_length
from .request import adapted

# Validations of a tolerant request at most: a check that stops at a block's own unknown fields
# finds those inside it (a tool result's content) on the next pass.
UNKNOWN_PASSES = 4
# MAX_CONVERSATION_CHARS when unset: characters per input token allowed. Real text runs 2-5
# characters a token; this bound only spares the tokenizer a conversation that cannot fit.
CHARS_PER_INPUT_TOKEN = 12


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number


# An escaped UTF-16 surrogate (paired or not): a body of valid UTF-8 holds one only so.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# json.loads with these arguments, its decoder made once rather than on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def read_json(request: Request) -> Any:
    """The request body as JSON, or ApiError (415, 413 via MAX_CONTENT_LENGTH, 400)."""
    if request.mimetype != "application/json":
        sent = "has no Content-Type header" if not request.mimetype else "is not sent as application/json"
        raise ApiError("unsupported_media_type", f"The request {sent}.")
    limit = request.max_content_length
    raw = _body(request, limit)
    if limit is not None and len(raw) >= limit:
        # A chunked body (no Content-Length) is cut at the limit rather than refused: refuse it here.
        raise ApiError("payload_too_large", f"The body reached MAX_BODY_BYTES ({limit} bytes).")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("invalid_json", f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        found = _DECODER.decode(text)
    except RecursionError:
        raise ApiError("invalid_json", "The JSON is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise ApiError("invalid_json", f"Malformed JSON at line {exc.lineno}, column {exc.colno}.") from None
    except ValueError:
        raise ApiError("invalid_json", "The JSON holds a number that is not finite or too large.") from None
    if _SURROGATE_ESCAPE.search(text):  # the only way a body of valid UTF-8 holds one
        try:
            _refuse_lone_surrogates(found, "")
        except RecursionError:
            raise ApiError("invalid_json", "The JSON is nested too deeply.") from None
    return found


def _refuse_lone_surrogates(value: Any, path: str) -> None:
    """validation_error naming the first string (or name) of the body that holds an unpaired
    surrogate (`\ud800`): nothing of the body can then be sent upstream or kept as text."""
    if isinstance(value, str):
        if not _encodable(value):
            message = "Contains an unpaired UTF-16 surrogate; send valid Unicode text."
            raise ApiError("validation_error", "1 field(s) are invalid.", fields={path or "_body": [message]})
    elif isinstance(value, dict):
        for name, inner in value.items():
            _refuse_lone_surrogates(name, path)
            _refuse_lone_surrogates(inner, f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _refuse_lone_surrogates(inner, f"{path}.{index}" if path else str(index))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _body(request: Request, limit: int | None) -> bytes:
    """The raw body, read at most up to `limit` bytes.

    The server shell ends the input stream itself (`wsgi.input_terminated`: at the
    Content-Length, or at the last chunk), so with a limit the body is read straight from it,
    without werkzeug's wrapper stream, with werkzeug's checks done here: a declared length over
    the limit is refused before reading (413), and a longer chunked body stops at the limit,
    which `read_json` refuses. Other servers get `get_data`.
    """
    environ = request.environ
    if limit is None or "wsgi.input_terminated" not in environ:
        return request.get_data(cache=False)
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError("payload_too_large", f"The body is {length} bytes; MAX_BODY_BYTES is {limit}.")
    try:
        return environ["wsgi.input"].read(limit)
    except RequestBodyError as exc:  # too slow, or malformed chunked framing
        raise exc.error from None


def refuse_long_text(
    lengths: list[int],
    droppable: tuple[int, int],
    settings: Settings,
    provider: Provider,
    what: str = "history message(s)",
) -> None:
    """Refuse a conversation whose messages (`lengths`, in characters) are over MAX_CONVERSATION_CHARS,
    saying how many of the oldest droppable ones (`droppable`: their range of indexes) to drop."""
    limit = conversation_char_limit(settings, provider)
    total = sum(lengths)
    if total > limit:
        raise _too_long(
            f"The conversation is {total} characters; the limit is {limit} (MAX_CONVERSATION_CHARS).",
            total - limit,
            lengths[droppable[0] : droppable[1]],
            "characters",
            what,
        )


def refuse_oversized_messages(
    data: Any,
    settings: Settings,
    provider: Provider,
    droppable: Callable[[list[dict[str, Any]]], tuple[int, int]],
    what: str,
    length: Callable[[Any], int] = content_length,
) -> None:
    """Refuse a body's `messages` from their sizes alone, before any per-message work: more than
    MAX_HISTORY_MESSAGES + 2, or more characters (a content's `length`) than
    MAX_CONVERSATION_CHARS (saying how many of the oldest `droppable` ones, called `what`, to drop)."""
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list):
        return
    bound = settings.requests.max_history_messages + 2
    if len(messages) > bound:
        message = f"{len(messages)} messages; at most {bound} (MAX_HISTORY_MESSAGES + 2): drop the oldest ones."
        raise ApiError("validation_error", "1 field(s) are invalid.", fields={"messages": [message]})
    entries = [entry if isinstance(entry, dict) else {} for entry in messages]
    lengths = [length(entry.get("content")) for entry in entries]
    refuse_long_text(lengths, droppable(entries), settings, provider, what)


def conversation_char_limit(settings: Settings, provider: Provider) -> int:
    """MAX_CONVERSATION_CHARS, else CHARS_PER_INPUT_TOKEN per input token allowed."""
    return settings.requests.max_conversation_chars or CHARS_PER_INPUT_TOKEN * provider.input_token_limit(
        settings.requests.max_input_tokens
    )


def validate_request(
    data: Any, schema: Schema, partial: tuple[str, ...] = (), tolerant: str | None = None
) -> dict[str, Any]:
    """The validated request fields, or ApiError(validation_error) naming every bad field (the
    required ones named in `partial` may be missing). `tolerant`: the API whose fields ChatWait
    does not know (and hosted tools it cannot run) are left out and named rather than refused
    (`unknown`)."""
    if not isinstance(data, dict):
        raise ApiError("validation_error", "The body must be a JSON object.", fields={"_body": ["Not an object."]})
    if tolerant is None:
        return _loaded(data, schema, partial)
    paths: list[unknown.Path] = []
    with unknown.tolerating() as left_out:
        for _ in range(UNKNOWN_PASSES):
            del left_out[:]
            try:
                fields = schema.load(data, partial=partial or None)
                break
            except ValidationError as exc:
                found, others = unknown.split(exc.normalized_messages())
                if others or not found:
                    raise _invalid(others or exc.normalized_messages()) from None
            paths += found  # where they were: only fields are taken out, never list items
            data = unknown.without(data, found)
        else:
            fields = _loaded(data, schema, partial)
    if paths or left_out:
        unknown.record([*paths, *left_out], tolerant)
    return fields


def _loaded(data: dict[str, Any], schema: Schema, partial: tuple[str, ...]) -> dict[str, Any]:
    try:
        return schema.load(data, partial=partial or None)
    except ValidationError as exc:
        raise _invalid(exc.normalized_messages()) from None


def _invalid(messages: dict[str, Any]) -> ApiError:
    return ApiError("validation_error", f"{len(messages)} field(s) are invalid.", fields=messages)


def count_prompt(
    messages: list[dict[str, str]],
    droppable: tuple[int, int],
    settings: Settings,
    provider: Provider,
    what: str = "history message(s)",
) -> int | None:
    """The conversation's prompt tokens, or None when the provider's cheap bound shows it fits.

    Raises ApiError(input_too_long) saying how many of the oldest droppable messages (`droppable`:
    the range of indexes the client may drop, `what` they are called) to drop.
    """
    limit = provider.input_token_limit(settings.requests.max_input_tokens)
    bound = provider.prompt_tokens_bound(messages)
    if bound is not None and bound <= limit:
        return None
    # Over the characters a conversation may have: refused before a tokenizer pass over all of it.
    refuse_long_text([len(message_text(m)) for m in messages], droppable, settings, provider, what)
    total = provider.prompt_tokens(messages)
    if total > limit:
        costs = provider.message_costs(messages)  # only a refusal needs them, to say what to drop
        detail = f"The conversation is {total} tokens; the limit is {limit} (MAX_INPUT_TOKENS or the model's context)."
        raise _too_long(detail, total - limit, costs[droppable[0] : droppable[1]], what=what)
    return total


def _too_long(
    detail: str, excess: int, history_costs: list[int], unit: str = "tokens", what: str = "history message(s)"
) -> ApiError:
    """input_too_long, with how many of the oldest droppable messages to drop to get `excess` under."""
    dropped = 0
    for count, cost in enumerate(history_costs, start=1):
        dropped += cost
        if dropped >= excess:
            return ApiError(
                "input_too_long",
                detail,
                action=f"Drop the {count} oldest {what} and send the request again.",
                drop_history_messages=count,
            )
    return ApiError(
        "input_too_long",
        detail,
        action=f"Shorten the message or the system prompt: without any history it is still {excess - dropped} "
        f"{unit} over the limit.",
    )


def bounded(asked: int | None, field: str, model: str, settings: Settings) -> int:
    """The tokens a reply of `model` is asked for: what the client asked (`field`), lowered to
    the model's output limit or MAX_TOKENS and said so (`request.adapted`); that bound when the
    client asked none."""
    bound = settings.output_limit(model)
    if asked is None:
        return bound
    if asked <= bound:
        return asked
    reason = "MAX_TOKENS" if bound == settings.requests.max_tokens else "the model's output limit"
    adapted(f"{field} lowered to {bound} ({reason})")
    return bound
