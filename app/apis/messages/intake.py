"""From an Anthropic Messages request to a ChatCall: the strict JSON body, the conversation's size
before any per-message work, the schema, then the translation into the chat messages and options
every upstream takes (`blocks`), and the input-token limit.

The messages a client may drop to make a conversation fit are those before the last one, oldest
first: what `input_too_long` counts.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from flask import Request

from ...config import Settings
from ...errors import ApiError
from ...providers.base import Provider
from ...providers.call import ChatCall
from ..functions import attached, refuse_untaken
from ..intake import bounded, count_prompt, read_json, refuse_oversized_messages, validate_request
from ..unknown import passed, refuse_controls, tolerance
from .blocks import block_chars, chat_messages, untranslated
from .schemas import CountTokensSchema, MessagesRequestSchema

DROPPABLE = "message(s) before the last one"
# Anthropic's option names that the chat upstreams know by another name.
NAMES = {
    "stop": "stop_sequences",
    "user": "metadata",
    "reasoning_effort": "thinking",
    "parallel_tool_calls": "tool_choice",
    "response_format": "output_config",
}


@dataclasses.dataclass(frozen=True)
class MessagesRequest:
    """A validated Messages request: the provider call, its counted prompt tokens (None: not
    counted, it fits), and whether to stream the answer."""

    call: ChatCall
    prompt_tokens: int | None
    stream: bool


def prepare_message(
    request: Request, schema: MessagesRequestSchema, settings: Settings, provider: Provider
) -> MessagesRequest:
    """The validated request, or ApiError (400 naming the fields, input_too_long, 413, 415)."""
    data, fields = _fields(request, schema, settings, provider)
    messages, options = _translated(fields, provider)
    native = _native(data, request)
    call = ChatCall(
        model=fields["model"],
        messages=messages,
        max_tokens=bounded(fields["max_tokens"], "max_tokens", fields["model"], settings),  # Claude Code: 128,000
        temperature=fields.get("temperature"),
        options=options,
        typed=True,
        native=native,
        extra=tuple(untranslated(native["body"])),
    )
    return MessagesRequest(call, _count(call, settings, provider), bool(fields.get("stream")))


def count_tokens(request: Request, schema: CountTokensSchema, settings: Settings, provider: Provider) -> int:
    """The input tokens the model would read for this request (its tools' definitions included),
    or the ApiError a create would get."""
    data, fields = _fields(request, schema, settings, provider)
    messages, options = _translated(fields, provider)
    extra = tuple(untranslated(data))
    call = ChatCall(model=fields["model"], messages=messages, max_tokens=1, options=options, extra=extra)
    counted = _count(call, settings, provider)
    return counted if counted is not None else provider.prompt_tokens(call.counted())


def _fields(
    request: Request, schema: CountTokensSchema, settings: Settings, provider: Provider
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The body as sent and its validated fields."""
    data = read_json(request)
    refuse_oversized_messages(data, settings, provider, _before_the_last, DROPPABLE, block_chars)
    fields = validate_request(data, schema, tolerant=tolerance(settings, "messages"))
    refuse_controls(passed(data, schema), provider.allowed_fields(fields["model"]))
    return data, fields


def _before_the_last(messages: list[dict[str, Any]]) -> tuple[int, int]:
    """The messages a client may drop: those before the last one."""
    return 0, max(0, len(messages) - 1)


MAX_BETA_CHARS = 1024
_VERSION = re.compile(r"20\d\d-[01]\d-[0-3]\d")


def _native(data: dict[str, Any], request: Request) -> dict[str, Any]:
    """The body as the client wrote it (its nulls left out, as validation reads them) and its beta
    features: what a server that speaks the Messages API is sent, so nothing is translated twice.
    The `anthropic-beta` header is a list of feature names (printable ASCII), sent on as it is;
    the `anthropic-version` header a date, sent on with the body it shapes."""
    body = {name: value for name, value in data.items() if value is not None}
    beta = request.headers.get("anthropic-beta")
    if beta is not None and not (beta.isascii() and beta.isprintable() and len(beta) <= MAX_BETA_CHARS):
        message = f"A comma-separated list of beta feature names in printable ASCII, at most {MAX_BETA_CHARS} long."
        raise ApiError("validation_error", "1 field(s) are invalid.", fields={"anthropic-beta": [message]})
    version = request.headers.get("anthropic-version")
    if version is not None and not _VERSION.fullmatch(version):
        message = "An API version is a date, as 2023-06-01 or 2026-10-21."
        raise ApiError("validation_error", "1 field(s) are invalid.", fields={"anthropic-version": [message]})
    return {"api": "messages", "body": body, "beta": beta, "version": version}


def _translated(fields: dict[str, Any], provider: Provider) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The chat messages (the system prompt first) and options of a validated request."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": fields["system"]}] if fields.get("system") else []
    for message in fields["messages"]:
        messages += chat_messages(message["role"], message["content"])
    options = _options(fields)
    refuse_untaken(options, attached(messages), provider, "messages", NAMES)
    return messages, options


_SESSION = re.compile(r"_session_[0-9A-Za-z-]+$")  # Claude Code's older user_id: user_..._account_..._session_...


def stable_user(user_id: str) -> str:
    """The end user a `metadata.user_id` names, without the session in it: Claude Code sends a JSON
    object (its `account_uuid`, else its `device_id`, names the person; its `session_id` changes
    with every session) or `user_<hash>_account_<uuid>_session_<uuid>`; any other id as it is."""
    if user_id.startswith("{"):
        try:
            found = json.loads(user_id)
        except ValueError:
            return user_id
        if isinstance(found, dict):
            for name in ("account_uuid", "device_id"):
                if isinstance(found.get(name), str) and found[name].strip():
                    return f"{name.split('_')[0]}:{found[name]}"
        return user_id
    return _SESSION.sub("", user_id)


def _options(fields: dict[str, Any]) -> dict[str, Any]:
    """The sampling and tool options under the names the chat upstreams know."""
    options: dict[str, Any] = {name: fields[name] for name in ("top_p", "top_k") if name in fields}
    if fields.get("stop_sequences"):
        options["stop"] = fields["stop_sequences"]
    user = (fields.get("metadata") or {}).get("user_id")
    if user:
        options["user"] = stable_user(user)
    effort = _effort(fields)
    if effort is not None:
        options["reasoning_effort"] = effort
    form = (fields.get("output_config") or {}).get("format")
    if form is not None:
        schema = {"name": "output", "schema": form["schema"]}
        options["response_format"] = {"type": "json_schema", "json_schema": schema}
    choice = fields.get("tool_choice")
    if fields.get("tools") and (choice is None or choice["type"] != "none"):
        options["tools"] = [_tool(tool) for tool in fields["tools"]]
        options.update(_tool_choice(choice))
    return options


def _effort(fields: dict[str, Any]) -> str | None:
    """The reasoning effort asked of the upstream: `output_config.effort` (`max` is OpenAI's
    `xhigh`), else from `thinking` (`high` from a 16,384-token budget)."""
    said = (fields.get("output_config") or {}).get("effort")
    if said is not None:
        return "xhigh" if said == "max" else said
    thinking = fields.get("thinking")
    if thinking is None or thinking["type"] == "disabled":
        return None
    return "high" if thinking.get("budget_tokens", 0) >= 16384 else "medium"


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: dict[str, Any] | None) -> dict[str, Any]:
    """Anthropic's tool choice as chat completions' (`any`: some tool; `tool`: that one)."""
    if choice is None:
        return {}
    found: dict[str, Any] = {}
    if choice["type"] == "any":
        found["tool_choice"] = "required"
    elif choice["type"] == "tool":
        found["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("disable_parallel_tool_use"):
        found["parallel_tool_calls"] = False
    return found


def _count(call: ChatCall, settings: Settings, provider: Provider) -> int | None:
    """The prompt tokens (None: it fits by the cheap bound): the tools' definitions and what a
    body passed through holds beyond its messages included."""
    counted = call.counted()
    ahead = len(counted) - len(call.messages)  # before the conversation: never dropped
    first = 1 if call.messages and call.messages[0]["role"] == "system" else 0
    return count_prompt(counted, (ahead + first, ahead + max(0, len(call.messages) - 1)), settings, provider, DROPPABLE)
