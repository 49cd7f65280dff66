"""What the fake upstream answers beyond text: reasoning, tool calls, structured output, and the
ways real servers stray from OpenAI's tool-call shape (`@quirk=`).

The reply follows the request as a model would: with `tools` (and tool_choice not `none`) and no
tool result yet after the last user message, it calls tools (`@tool_calls=K`, default 1; the one
tool_choice names, else the first K), with arguments made from each function's JSON Schema; after a
tool result it answers in text that quotes it; with `response_format` json_schema (or json_object)
its text is a JSON value that validates against the schema. `@reasoning=N` sends N pieces of
reasoning first; `@refusal=N` makes the reply a refusal of N pieces (`delta.refusal`, no text);
`@argpieces=N` makes a call's arguments N pieces long; `@tool=NAME` calls that tool
(`@tool=none`: none, a plain answer) and `@args=B64` (URL-safe base64 of the JSON) gives its
arguments. Quirks: noindex,
reuse_index, empty_name, finish_every, whole_args, noid, dict_args. With `logprobs`, each text
chunk has its token's log probability (-0.1 times its index) and `top_logprobs` alternatives.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
from typing import Any

import PIL.Image
import pypdf

ARG_PIECE = 4  # characters of arguments per chunk
PLAIN = {"reasoning": [], "tool_calls": []}  # a text reply's typed deltas: none


def instance(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A value that validates against the JSON Schema `schema` (the kinds SDKs generate)."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return instance(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return instance(schema[key][0], defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: instance(spec, defs, depth + 1) for name, spec in properties.items()}
    return {
        "string": "fake",
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "array": [instance(schema.get("items", {}), defs, depth + 1)] if schema.get("items") else [],
        "null": None,
    }.get(kind)


def typed_reply(request: dict[str, Any], found: dict[str, str]) -> dict[str, Any] | None:
    """The deltas of a reply that is more than text (None: plain text, as before): `reasoning`
    pieces, then `tool_calls` (each `{"id", "name", "arguments"}`) or `content` pieces."""
    reasoning = [f"think{i} " for i in range(int(found.get("reasoning", 0)))]
    messages = request.get("messages") or []
    if int(found.get("refusal", 0)):  # the model refuses: refusal pieces, no text
        refusal = [f"no{i} " for i in range(int(found["refusal"]))]
        return {"reasoning": reasoning, "tool_calls": [], "content": [], "refusal": refusal, "finish": "stop"}
    tools = [tool["function"] for tool in request.get("tools") or () if tool.get("type") == "function"]
    choice = request.get("tool_choice", "auto")
    answered = bool(messages) and messages[-1].get("role") == "tool"
    if tools and choice != "none" and not answered and found.get("tool") != "none":  # @tool=none: plain text
        if isinstance(choice, dict):
            tools = [tool for tool in tools if tool["name"] == choice["function"]["name"]]
        elif "tool" in found:  # `@tool=NAME`: call that one (an agent's many tools: the one the test wants)
            tools = [tool for tool in tools if tool["name"] == found["tool"]] or tools
        count = int(found.get("tool_calls", 1))
        calls = [
            {"id": f"call_fake{i}", "name": tool["name"], "arguments": _arguments(tool, found)}
            for i, tool in enumerate((tools * count)[:count])
        ]
        return {"reasoning": reasoning, "tool_calls": calls, "content": [], "finish": "tool_calls"}
    text = None
    if answered:
        text = f"The tool said: {_text(messages[-1].get('content'))}"
    form = request.get("response_format") or {}
    if form.get("type") == "json_schema":
        text = json.dumps(instance(form.get("json_schema", {}).get("schema", {})))
    elif form.get("type") == "json_object":
        text = json.dumps({"answer": "fake"})
    if text is None and not reasoning:
        return None
    if text is None:
        return {"reasoning": reasoning, "tool_calls": [], "content": None, "finish": None}
    return {"reasoning": reasoning, "tool_calls": [], "content": [text[i : i + 3] for i in range(0, len(text), 3)]}


def _arguments(tool: dict[str, Any], found: dict[str, str]) -> str:
    """A call's arguments: from its schema, or (`@argpieces=N`, N >= 3) `{"text": "xx..."}` of
    exactly N pieces of ARG_PIECE characters (the benchmark's tool-call arm)."""
    if "argpieces" in found:
        return '{"text": "' + "x" * (ARG_PIECE * int(found["argpieces"]) - 12) + '"}'
    if "args" in found:  # `@args=<URL-safe base64 of the JSON>`: the arguments as given
        return base64.urlsafe_b64decode(found["args"] + "=" * (-len(found["args"]) % 4)).decode()
    return json.dumps(instance(tool.get("parameters", {})))


def logprobs(token: str, index: int, top: int) -> bytes:
    """A text chunk's `,"logprobs":{...}` for its one token, in OpenAI's shape."""

    def entry(text: str, value: float) -> dict[str, Any]:
        return {"token": text, "logprob": value, "bytes": list(text.encode())}

    alternatives = [entry(f"alt{rank}", -1.0 - rank) for rank in range(top)]
    found = {**entry(token, round(-0.1 * index, 3)), "top_logprobs": alternatives}
    return b',"logprobs":' + json.dumps({"content": [found], "refusal": None}).encode()


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content or "")


def delta_chunks(reply: dict[str, Any], quirk: str) -> list[tuple[dict[str, Any], str | None]]:
    """The streamed (delta, finish_reason) pairs of a typed reply's reasoning and tool calls."""
    chunks: list[tuple[dict[str, Any], str | None]] = [({"reasoning_content": r}, None) for r in reply["reasoning"]]
    chunks += [({"refusal": r}, None) for r in reply.get("refusal", ())]
    every = "tool_calls" if quirk == "finish_every" else None
    for index, call in enumerate(reply["tool_calls"]):
        chunks += [({"tool_calls": [entry]}, every) for entry in _call_entries(index, call, quirk)]
    return chunks


@functools.lru_cache(maxsize=64)
def encoded_chunks(reply: str, quirk: str) -> tuple[bytes, ...]:
    """The JSON `choices` entries of `delta_chunks(json.loads(reply), quirk)`, made once per
    distinct reply (the benchmark sends the same one many times: the fake keeps up)."""
    chunks = delta_chunks(json.loads(reply), quirk)
    return tuple(json.dumps({"index": 0, "delta": d, "finish_reason": f}).encode() for d, f in chunks)


def _call_entries(index: int, call: dict[str, Any], quirk: str) -> list[dict[str, Any]]:
    args = call["arguments"]
    where = {} if quirk == "noindex" else {"index": 0 if quirk == "reuse_index" else index}
    ident = {} if quirk == "noid" else {"id": call["id"]}
    first = {**where, **ident, "type": "function", "function": {"name": call["name"], "arguments": ""}}
    if quirk == "dict_args":
        return [first, {**where, "function": {"arguments": json.loads(args)}}]
    if quirk == "whole_args":
        return [first, {**where, "function": {"arguments": args}}]
    name = {"name": ""} if quirk == "empty_name" else {}
    pieces = [args[i : i + ARG_PIECE] for i in range(0, len(args), ARG_PIECE)]
    return [first, *({**where, "function": {**name, "arguments": piece}} for piece in pieces)]


def whole_message(reply: dict[str, Any]) -> dict[str, Any]:
    """The `message` of a non-streamed reply."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply["content"] or []) or None}
    if reply["reasoning"]:
        message["reasoning_content"] = "".join(reply["reasoning"])
    if reply.get("refusal"):
        message["refusal"] = "".join(reply["refusal"])
    if reply["tool_calls"]:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in reply["tool_calls"]
        ]
    return message


def prompt_tokens(request: dict[str, Any]) -> int:
    """What the fake bills a request's prompt: its words, and each image by OpenAI's published
    tile rule (gpt-4o-mini's base and tile prices, else gpt-4o's), from the size its data holds."""
    messages = request.get("messages") or [{}]
    base, tile = (2833, 5667) if str(request.get("model", "")).startswith("gpt-4o-mini") else (85, 170)
    total = sum(len(str(m.get("content", "")).split()) + 4 for m in messages)
    for message in messages:
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and part.get("type") == "image_url":
                image = part.get("image_url") or {}
                total += base if image.get("detail") == "low" else base + tile * _tiles(image.get("url", ""))
            elif isinstance(part, dict) and part.get("type") == "file":
                total += _pages(part.get("file") or {}) * (PAGE_TEXT_TOKENS + base + tile * 8)
    return total


PAGE_TEXT_TOKENS = 1_500  # what the fake bills a PDF page's text, beside the page's image (8 tiles)


def _pages(file: dict) -> int:
    """A PDF's pages, as a provider that renders it counts them (a file by id: 100)."""
    data = str(file.get("file_data") or "")
    if not data:
        return 100
    try:
        return len(pypdf.PdfReader(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).pages)
    except Exception:  # not a PDF the fake reads: billed by its words
        return 0


def _tiles(url: str) -> int:
    """512-pixel tiles of an image scaled within 2048 x 2048, then to 768 on its short side (8 unread)."""
    try:
        with PIL.Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
            width, height = image.size
    except (IndexError, ValueError, OSError):
        return 8
    scale = min(1.0, 2048 / max(width, height))
    scale *= min(1.0, 768 / (min(width, height) * scale))
    return math.ceil(width * scale / 512) * math.ceil(height * scale / 512)


def unknown_model(request: dict, models: str) -> dict | None:
    """OpenAI's 404 body for a model not among `models` (comma-separated), else None."""
    if request.get("model") in models.split(","):
        return None
    said = f"The model `{request.get('model')}` does not exist or you do not have access to it."
    return {"error": {"message": said, "type": "invalid_request_error", "code": "model_not_found"}}
