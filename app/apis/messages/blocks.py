"""Anthropic's content blocks, checked one by one by their type, and what each becomes in the chat
messages every upstream takes: text stays text, an image becomes an `image_url` part (base64 as a
data URL), a document a file (`apis/files`: a text one inlined), a search result its text, an
assistant's `tool_use` a tool call, a user's `tool_result` a `tool` message, and thinking is left
out (the model's own reasoning is not sent back to it). The blocks of tools Anthropic's servers
run (`HOSTED_BLOCKS`) are left out and named: a server of the Messages API gets them as sent."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError, fields

from ...providers.call import CACHE_BREAKPOINT, CACHE_CONTROL, EXPLICIT
from ..files import data_chars
from ..functions import MAX_IMAGE_URL_CHARS, NAME, image_url_ok
from ..schema import text_of
from ..unknown import UNKNOWN, leave_out
from .documents import document_part, search_text

MAX_BLOCKS = 512
ATTACHED = "The tool results above returned these too:"  # before the images and documents of tool results
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
# Each block type, its required fields and the optional ones (cache_control is taken and
# ignored: ChatWait does not cache prompts).
_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text": (("text",), ("cache_control",)),
    "image": (("source",), ("cache_control",)),
    "tool_use": (("id", "name", "input"), ("cache_control",)),
    "tool_result": (("tool_use_id",), ("content", "is_error", "cache_control")),
    "thinking": (("thinking",), ("signature",)),
    "redacted_thinking": (("data",), ()),
    "document": (("source",), ("cache_control", "title", "context", "citations")),
    "search_result": (("source", "title", "content"), ("cache_control", "citations")),
}
NESTED = ("text", "image", "document", "search_result")  # what a tool result's content holds
# Blocks of the tools Anthropic's servers run (their calls, results, uploads), and in a tool
# result the blocks only its tools make: no other model called them, so none is sent elsewhere.
HOSTED_BLOCKS = frozenset(
    (
        "server_tool_use web_search_tool_result web_fetch_tool_result code_execution_tool_result "
        "bash_code_execution_tool_result text_editor_code_execution_tool_result tool_search_tool_result "
        "container_upload mcp_tool_use mcp_tool_result"
    ).split()
)
NESTED_HOSTED = frozenset(("browser_state", "tool_reference"))


def _block(index: int, block: Any, nested: bool = False) -> dict[str, Any] | None:
    """One content block, checked (`nested`: inside a tool result); None for a hosted tool's,
    left out and named."""
    kind = block.get("type") if isinstance(block, dict) else None
    hosted = NESTED_HOSTED if nested else HOSTED_BLOCKS
    where = ("messages", 0, "content", 0, "content", index, kind) if nested else ("messages", 0, "content", index, kind)
    if isinstance(kind, str) and kind in hosted and leave_out(where):
        return None
    if not isinstance(kind, str) or kind not in _FIELDS or (nested and kind not in NESTED):
        allowed = ", ".join(NESTED) if nested else ", ".join(_FIELDS)
        raise ValidationError({index: [f"A content block is an object whose type is {allowed}."]})
    required, optional = _FIELDS[kind]
    missing = [name for name in required if name not in block]
    if missing:
        raise ValidationError({index: [f"A {kind} block needs {', '.join(missing)}."]})
    unknown = set(block) - {"type", *required, *optional}
    if unknown:  # as marshmallow names them: the tolerant contract takes them out and names them
        raise ValidationError({index: {name: [UNKNOWN] for name in sorted(unknown)}})
    try:
        if not isinstance(block.get("cache_control", {}), dict):
            raise ValidationError("cache_control must be an object.")
        _check(kind, block)
    except ValidationError as error:
        raise ValidationError({index: error.messages}) from None
    return block


def _check(kind: str, block: dict[str, Any]) -> None:
    if kind == "text" and not isinstance(block["text"], str):
        raise ValidationError("text must be a string.")
    if kind == "text":
        text_of(block["text"])
    elif kind == "image" and image_url(block["source"]) is None:
        raise ValidationError(
            f"source is {{type: base64, media_type ({', '.join(IMAGE_TYPES)}), data}} or {{type: url, url}}."
        )
    elif kind == "tool_use" and not (
        isinstance(block["id"], str) and isinstance(block["name"], str) and NAME.fullmatch(block["name"])
    ):
        raise ValidationError("A tool_use block has a string id and a tool's name.")
    elif kind == "tool_use" and not isinstance(block["input"], dict):
        raise ValidationError("input must be an object.")
    elif kind == "tool_use":
        text_of(block["id"])
    elif kind == "tool_result":
        _tool_result(block)
    elif kind == "thinking" and not all(isinstance(block.get(name, ""), str) for name in ("thinking", "signature")):
        raise ValidationError("thinking and signature must be strings.")
    elif kind == "redacted_thinking" and not isinstance(block["data"], str):
        raise ValidationError("data must be a string.")
    elif kind == "document":
        document_part(block)
    elif kind == "search_result":
        search_text(block)


def _tool_result(block: dict[str, Any]) -> None:
    if not isinstance(block["tool_use_id"], str) or not block["tool_use_id"]:
        raise ValidationError("tool_use_id must name the tool_use block it answers.")
    text_of(block["tool_use_id"])
    if not isinstance(block.get("is_error", False), bool):
        raise ValidationError("is_error must be a boolean.")
    content = block.get("content", "")
    if isinstance(content, list):
        try:
            _blocks(content, nested=True)
        except ValidationError as error:  # named where they are: the result's content
            raise ValidationError({"content": error.messages}) from None
    elif not isinstance(content, str):
        raise ValidationError(f"content is a string or a list of {', '.join(NESTED)} blocks.")


def image_url(source: Any) -> str | None:
    """An image block's source as the URL of an `image_url` part (None: not a valid source)."""
    if not isinstance(source, dict):
        return None
    if source.get("type") == "url" and set(source) == {"type", "url"}:
        url = source["url"]
        return url if image_url_ok(url) and not str(url).lower().startswith("data:") else None
    if source.get("type") == "base64" and set(source) == {"type", "media_type", "data"}:
        media, data = source["media_type"], source["data"]
        if media in IMAGE_TYPES and isinstance(data, str) and 0 < len(data) <= MAX_IMAGE_URL_CHARS:
            return f"data:{media};base64,{data}"
    return None


def _blocks(value: list[Any], nested: bool = False) -> list[dict[str, Any]]:
    """Each block checked, a hosted tool's left out; the errors of all of them (every unknown
    field named at once)."""
    blocks, errors = [], {}
    for index, block in enumerate(value):
        try:
            checked = _block(index, block, nested)
            if checked is not None:
                blocks.append(checked)
        except ValidationError as error:
            errors.update(error.messages)  # type: ignore[arg-type]  # _block's are keyed by index
    if errors:
        raise ValidationError(errors)
    return blocks


class Content(fields.Field):
    """A message's content: a string, or a non-empty list of content blocks."""

    json_types = ("string", "array")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | list[dict[str, Any]]:
        if isinstance(value, str):
            return text_of(value)
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_BLOCKS:
            raise ValidationError(f"Must be a string or a list of 1 to {MAX_BLOCKS} content blocks.")
        return _blocks(value)


class SystemPrompt(fields.Field):
    """The system prompt: a string, or a list of text blocks (joined by blank lines; kept as text
    parts where one ends a prefix to cache)."""

    json_types = ("string", "array")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | list[dict[str, Any]]:
        if isinstance(value, str):
            return text_of(value)
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a string or a list of text blocks.")
        blocks = _blocks(value)
        if any(block["type"] != "text" for block in blocks):
            raise ValidationError("A system prompt takes text blocks only.")
        if any(CACHE_CONTROL in block for block in blocks):  # where a prefix to cache ends: kept
            return [_part(block) for block in blocks]
        return "\n\n".join(block["text"] for block in blocks)


def chat_messages(role: str, content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One Anthropic message as chat messages: a user's tool results become `tool` messages
    (before the rest of its content), an assistant's tool calls its message's `tool_calls`."""
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    texts = [block["text"] for block in content if block["type"] == "text"]
    if role == "system":
        return [{"role": "system", "content": "\n\n".join(texts)}]
    media = [block for block in content if block["type"] in ("image", "document")]
    out: list[dict[str, Any]] = []
    for block in content:
        if block["type"] == "tool_result":
            out.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": _result_text(block)})
    attached = [_part(part) for block in content if block["type"] == "tool_result" for part in _media_of(block)]
    if attached:  # a chat completions server takes images and files from users only
        out.append({"role": "user", "content": [{"type": "text", "text": ATTACHED}, *attached]})
    if role == "assistant":
        calls = [
            {"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": json.dumps(b["input"])}}
            for b in content
            if b["type"] == "tool_use"
        ]
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
        if calls:
            message["tool_calls"] = calls
        return [message]
    said = [block for block in content if block["type"] in ("text", "search_result", "document", "image")]
    if media or any(CACHE_CONTROL in block for block in said):
        out.append({"role": "user", "content": [_part(block) for block in said]})
    elif said:
        out.append({"role": "user", "content": "\n".join(_part(block)["text"] for block in said)})
    return out


def _part(block: dict[str, Any]) -> dict[str, Any]:
    """A block as a chat part; one whose `cache_control` ends a prefix to cache carries the mark
    OpenAI's servers take (CACHE_BREAKPOINT)."""
    mark = {CACHE_BREAKPOINT: dict(EXPLICIT)} if CACHE_CONTROL in block else {}
    if block["type"] == "text":
        return {"type": "text", "text": block["text"], **mark}
    if block["type"] == "search_result":
        return {"type": "text", "text": search_text(block), **mark}
    if block["type"] == "document":
        return {**document_part(block), **mark}
    return {"type": "image_url", "image_url": {"url": image_url(block["source"]), "detail": "auto"}, **mark}


def _media_of(block: dict[str, Any]) -> list[dict[str, Any]]:
    """A tool result's images and documents (which a `tool` message cannot carry)."""
    content = block.get("content")
    return [part for part in content if part.get("type") in ("image", "document")] if isinstance(content, list) else []


def _result_text(block: dict[str, Any]) -> str:
    """A tool result's content as the text a `tool` message carries (an error said as one): its
    text and search results."""
    content = block.get("content", "")
    said = (_part(p)["text"] for p in content if p.get("type") in ("text", "search_result")) if content else ()
    text = content if isinstance(content, str) else "\n".join(said)
    return f"Error: {text}" if block.get("is_error") else text


# The top-level fields of a request that its translation carries (the rest pass through unread).
TRANSLATED = frozenset(
    (
        "model messages system max_tokens stream temperature top_p top_k stop_sequences metadata tools "
        "tool_choice thinking output_config"
    ).split()
)


def untranslated(body: dict[str, Any]) -> list[dict[str, Any]]:
    """What a body passed through as sent holds beyond its chat messages, as one message to count
    (input tokens, the key's tpm): thinking and its signatures, redacted thinking, the blocks of
    hosted tools (their JSON), and the top-level fields the translation does not read
    (context_management...)."""
    texts: list[str] = []
    for message in body.get("messages") or ():
        for block in message.get("content") if isinstance(message.get("content"), list) else ():
            if not isinstance(block, dict):
                continue
            texts += [block[name] for name in ("thinking", "signature", "data") if isinstance(block.get(name), str)]
            nested = block.get("content") if block.get("type") == "tool_result" else None
            for inner in [block, *(nested if isinstance(nested, list) else ())]:
                if isinstance(inner, dict) and inner.get("type") in HOSTED_BLOCKS | NESTED_HOSTED:
                    texts.append(json.dumps(inner, ensure_ascii=False, separators=(",", ":")))
    rest = {name: value for name, value in body.items() if name not in TRANSLATED}
    if rest:
        texts.append(json.dumps(rest, ensure_ascii=False, separators=(",", ":")))
    return [{"role": "user", "content": "\n".join(texts)}] if texts else []


def block_chars(content: Any) -> int:
    """The characters of a message's content as sent, before validation: every string of its
    blocks (text, thinking, signatures, redacted data, tool calls and results, a document's
    data), images aside."""
    if isinstance(content, str):
        return len(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for block in content:
        if not isinstance(block, dict):
            continue
        total += sum(len(block[n]) for n in ("text", "thinking", "signature", "data") if isinstance(block.get(n), str))
        total += data_chars(block) if block.get("type") == "document" else 0
        if isinstance(block.get("input"), dict | list):
            total += len(json.dumps(block["input"], ensure_ascii=False))
        total += block_chars(block.get("content")) if block.get("type") == "tool_result" else 0
    return total
