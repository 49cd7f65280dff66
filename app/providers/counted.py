"""What the model reads of a call, as counted for its input tokens before the upstream says: each
message's text, the tokens its images, files and audio are counted as (estimates: the upstream's
usage settles what was spent), and the tools' definitions."""

from __future__ import annotations

import json
from typing import Any

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def definitions(options: dict[str, Any]) -> list[dict[str, Any]]:
    """The tools' definitions and the reply's format (a structured output's JSON Schema) as the
    system messages the model reads them in: input tokens on every API (Claude Code sends some
    18,000 tokens of tools with every request), counted like the conversation."""
    tools, form = options.get("tools"), options.get("response_format")
    found = [{"role": "system", "content": _COMPACT(tools)}] if tools else []
    if form:
        found.append({"role": "system", "content": _COMPACT(form)})
    return found


# What one image of a message is counted as (OpenAI bills a 1024x1024 image at high detail so):
# an estimate for the input limit; the upstream's usage is what the reply reports.
IMAGE_TOKENS = 765
FILE_PART = "file"  # a chat part that carries a file (`apis/files`): its data, an OpenAI file id, or a URL
FILE_BYTES_PER_TOKEN = 3  # a file's data is counted as a token per this many bytes (a PDF's text and pages)
FILE_REFERENCE_TOKENS = 4000  # a file by id or URL, whose size ChatWait cannot see: an estimate
AUDIO_BYTES_PER_TOKEN = 500  # audio is counted as a token per this many bytes (OpenAI's audio models read fewer)


def message_text(message: dict[str, Any]) -> str:
    """What of a message the model reads as text: its content (text parts joined), and an
    assistant's tool calls (names and arguments) or a tool message's call id."""
    content = message.get("content")
    text = content if type(content) is str else ""
    if type(content) is list:
        text = "".join(part["text"] for part in content if "text" in part)
    calls = message.get("tool_calls")
    if calls:
        text += "".join(call["function"]["name"] + call["function"]["arguments"] for call in calls)
    return text + message.get("tool_call_id", "")


def attached_tokens(message: dict[str, Any]) -> int:
    """The tokens a message's images and files are counted as (estimates: the upstream's usage
    settles what was spent)."""
    content = message.get("content")
    if type(content) is not list:
        return 0
    return sum(IMAGE_TOKENS if part["type"] == "image_url" else _file_tokens(part) for part in content)


def _file_tokens(part: dict[str, Any]) -> int:
    if part["type"] == "input_audio":
        return (len(part["input_audio"]["data"]) * 3 // 4) // AUDIO_BYTES_PER_TOKEN
    if part["type"] != FILE_PART:
        return 0
    return file_tokens(part[FILE_PART].get("file_data"))


def file_tokens(data: str | None) -> int:
    """What a file is counted as: its data's bytes, or (by id or URL) an estimate."""
    return (len(data) * 3 // 4) // FILE_BYTES_PER_TOKEN if data else FILE_REFERENCE_TOKENS
