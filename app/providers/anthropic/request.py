"""A ChatCall as the body of a Messages API request: the client's own Messages body where it came
in one (passed through, so nothing is translated twice), else the chat messages and OpenAI-named
options translated into Anthropic's (system prompt, content blocks, tool_use and tool_result,
tools, tool_choice, stop sequences, thinking, structured output).

Options with no Messages equivalent that change the answer (log probabilities, logit bias, more
than one choice, JSON without a schema) are refused with a reason; any other option the Messages
API has no word for (seed, penalties, vLLM's prefill switches) is left out.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ...config.rules import UNKNOWN, Rules
from ...config.upstreams import ANTHROPIC_VERSIONS
from ..base import UpstreamError
from ..call import CACHE_BREAKPOINT, CACHE_CONTROL, ChatCall
from ..counted import FILE_PART
from .adapting import MIN_THINKING_BUDGET, adapt

LATEST = ANTHROPIC_VERSIONS[-1]  # what a translation is sent as where its server says nothing
# Options that change what the client gets back and that the Messages API cannot honour.
REFUSED = ("logprobs", "top_logprobs", "logit_bias", "n", "audio", "modalities", "prediction")
_DATA_URL = re.compile(r"data:([\w.+/-]+);base64,(.*)", re.DOTALL)


def messages_body(call: ChatCall, rules: Rules = UNKNOWN, version: str = LATEST) -> dict[str, Any]:
    """The streamed Messages request for `call`: its native body where it has one, else translated
    as `rules` (its model's) and the API `version` take it."""
    native = call.native
    if native is not None and native.get("api") == "messages":
        return _passed_through(call, dict(native["body"]))
    body: dict[str, Any] = {"model": call.model, "max_tokens": call.max_tokens, "stream": True}
    system, messages = conversation(call.messages)
    if system:
        body["system"] = system
    body["messages"] = messages
    body.update(adapted(call, rules, version)[0])
    return body


def adapted(call: ChatCall, rules: Rules = UNKNOWN, version: str = LATEST) -> tuple[dict[str, Any], list[str]]:
    """`call`'s options in the Messages API's words as the model's `rules` and the API `version`
    take them, and each change that made to what the client asked (`adapting`; none for a client's
    own Messages body: it spoke the server's API itself). UpstreamError for one it cannot honour."""
    if call.native is not None and call.native.get("api") == "messages":
        return {}, []
    body = _options(call.options)
    return body, adapt(call, body, rules, version)


def _passed_through(call: ChatCall, body: dict[str, Any]) -> dict[str, Any]:
    """The client's own body with the model (a fallback may have changed it), the token limit
    ChatWait allows and streaming set; a thinking budget kept under that limit."""
    body.update(model=call.model, max_tokens=call.max_tokens, stream=True)
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and isinstance(thinking.get("budget_tokens"), int):
        thinking_tokens = min(thinking["budget_tokens"], call.max_tokens - 1)
        if thinking_tokens < MIN_THINKING_BUDGET:
            body.pop("thinking")
        else:
            body["thinking"] = {**thinking, "budget_tokens": thinking_tokens}
    return body


def conversation(messages: list[dict[str, Any]]) -> tuple[str | list[dict[str, Any]], list[dict[str, Any]]]:
    """The system prompt (every system or developer message, in order: text, or text blocks where
    a part ends a prefix to cache) and the turns as Anthropic messages: a `tool` message is a
    user's `tool_result`, consecutive turns of one role are one."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role in ("system", "developer"):
            system.extend(_system_blocks(message.get("content")))
            continue
        blocks = _blocks(message)
        if not blocks:
            continue
        speaker = "assistant" if role == "assistant" else "user"
        if turns and turns[-1]["role"] == speaker:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": speaker, "content": blocks})
    if any(CACHE_CONTROL in block for block in system):
        return [block for block in system if block["text"]], turns
    return "\n\n".join(block["text"] for block in system if block["text"]), turns


def _system_blocks(content: Any) -> list[dict[str, Any]]:
    """A system message as text blocks: one, or one a part where a part ends a prefix to cache."""
    parts = content if isinstance(content, list) else ()
    if not any(CACHE_BREAKPOINT in part for part in parts):
        return [{"type": "text", "text": _text(content)}]
    return [_marked({"type": "text", "text": part.get("text", "")}, part) for part in parts]


def _marked(block: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """`block` with the cache_control that ends a prefix to cache where its part is so marked."""
    return {**block, CACHE_CONTROL: {"type": "ephemeral"}} if CACHE_BREAKPOINT in part else block


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """One chat message's content blocks."""
    if message["role"] == "tool":
        call_id = message.get("tool_call_id") or ""
        return [{"type": "tool_result", "tool_use_id": call_id, "content": _text(message.get("content"))}]
    content = message.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) and content else []
    for part in content if isinstance(content, list) else ():
        if part.get("type") == "image_url":
            blocks.append(_marked(_image(part["image_url"]["url"]), part))
        elif part.get("type") == FILE_PART:
            blocks.append(_marked(_document(part[FILE_PART]), part))
        elif part.get("text"):
            blocks.append(_marked({"type": "text", "text": part["text"]}, part))
        elif part.get("refusal"):
            blocks.append({"type": "text", "text": part["refusal"]})
    for call in message.get("tool_calls") or ():
        function = call["function"]
        blocks.append({"type": "tool_use", "id": call["id"], "name": function["name"], "input": _input(function)})
    return blocks


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _image(url: str) -> dict[str, Any]:
    """An `image_url` part as an image block: a data URL as base64, any other as a URL."""
    found = _DATA_URL.fullmatch(url)
    source = {"type": "base64", "media_type": found[1], "data": found[2]} if found else {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _document(file: dict[str, Any]) -> dict[str, Any]:
    """A `file` part as a document block: its data as base64, a URL, or a file of Anthropic's
    Files API by its id."""
    if "file_url" in file:
        source = {"type": "url", "url": file["file_url"]}
    elif "file_id" in file:
        source = {"type": "file", "file_id": file["file_id"]}
    else:
        found = _DATA_URL.fullmatch(file["file_data"])
        source = {"type": "base64", "media_type": found[1], "data": found[2]} if found else {}
    block = {"type": "document", "source": source}
    if file.get("filename"):
        block["title"] = file["filename"]
    return block


def _input(function: dict[str, Any]) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's `input` is."""
    try:
        found = json.loads(function.get("arguments") or "{}")
    except ValueError:
        found = None
    return found if isinstance(found, dict) else {"arguments": function.get("arguments")}


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-named options in Anthropic's words; UpstreamError for one it cannot honour."""
    refused = [name for name in REFUSED if _asks(name, options.get(name))]
    if refused:
        detail = f"The model server speaks Anthropic's Messages API, which has no {', '.join(refused)}: leave it out."
        raise UpstreamError("upstream_rejected", detail)
    body: dict[str, Any] = {name: options[name] for name in ("top_p", "top_k") if options.get(name) is not None}
    stop = options.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if options.get("user"):
        body["metadata"] = {"user_id": options["user"]}
    body.update(_tools(options))
    schema = _json_schema(options.get("response_format"))
    if schema is not None:
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    return body


def _asks(option: str, value: Any) -> bool:
    """Whether an option's value asks for something (one choice, `n: 1`, asks for nothing more)."""
    if option == "n":
        return value not in (None, 1)
    return value is not None and value is not False and value != 0 and value != [] and value != {}


def _tools(options: dict[str, Any]) -> dict[str, Any]:
    """Function tools as Anthropic's tools, and the tool choice (`required`: any tool)."""
    tools = options.get("tools")
    if not tools:
        return {}
    found: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function") if tool.get("type") == "function" else None
        if not isinstance(function, dict):
            raise UpstreamError("upstream_rejected", "A Messages API server takes function tools only.")
        entry = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
        if function.get("description"):
            entry["description"] = function["description"]
        found.append(entry)
    choice = options.get("tool_choice")
    said: dict[str, Any] = {"type": "auto"}
    if choice == "required":
        said = {"type": "any"}
    elif choice == "none":
        said = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        said = {"type": "tool", "name": choice["function"]["name"]}
    if options.get("parallel_tool_calls") is False and said["type"] != "none":
        said["disable_parallel_tool_use"] = True
    return {"tools": found, "tool_choice": said}


def _json_schema(response_format: Any) -> dict[str, Any] | None:
    """The JSON Schema of a `json_schema` response format (None for text; `json_object` refused:
    the Messages API constrains output by a schema only)."""
    if not isinstance(response_format, dict) or response_format.get("type") in (None, "text"):
        return None
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return schema
    raise UpstreamError(
        "upstream_rejected", "A Messages API server constrains output by a JSON Schema only: send json_schema."
    )
