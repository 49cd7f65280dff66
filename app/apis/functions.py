"""What the two OpenAI families check alike in what goes beyond text: a function's name, an
image's URL, a JSON Schema response format, and the refusal of what the model cannot honour
(each family has its own request shapes, which call these)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import ValidationError

from ..errors import ApiError
from ..providers.base import Provider
from ..providers.counted import FILE_PART

MAX_TOOLS = 128
TOOL_CHOICES = ("none", "auto", "required")
IMAGE_DETAILS = ("auto", "low", "high")
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAME_RULE = "Must be 1 to 64 letters, digits, underscores or dashes."
# An http(s) URL or an image's data URL (the scheme in any case), as the contract's pattern says.
_IMAGE_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://|[Dd][Aa][Tt][Aa]:[Ii][Mm][Aa][Gg][Ee]/[A-Za-z0-9.+-]+;base64,")
MAX_IMAGE_URL_CHARS = 20 * 1024 * 1024  # a data URL of a 15 MB image; the body limit bounds it first
_SCHEMA_KEYS = {"name", "description", "schema", "strict"}
# A structured-output schema's compact JSON, at most (OpenAI bounds a schema's names and values
# to 120,000 characters; a server like llama.cpp compiles the whole of it into a grammar).
MAX_SCHEMA_CHARS = 120_000
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def check_name(value: str) -> None:
    """A function's (or a response format's) name, as OpenAI's API bounds it."""
    if not NAME.fullmatch(value):
        raise ValidationError(_NAME_RULE)


def image_url_ok(url: Any, detail: Any = "auto") -> bool:
    """Whether `url` is an http(s) URL or an image's data URL within the bound, and `detail` known."""
    return (
        isinstance(url, str)
        and len(url) <= MAX_IMAGE_URL_CHARS
        and bool(_IMAGE_URL.match(url))
        and detail in IMAGE_DETAILS
    )


def check_json_schema(spec: Any, keys: Iterable[str] = _SCHEMA_KEYS) -> None:
    """A structured-output format: a name, and optionally a description, a JSON Schema and `strict`."""
    if not isinstance(spec, dict) or set(spec) - set(keys) or not isinstance(spec.get("name"), str):
        raise ValidationError(f"A json_schema format takes {', '.join(sorted(keys))}, and needs a name.")
    check_name(spec["name"])
    if (
        not isinstance(spec.get("schema", {}), dict)
        or not isinstance(spec.get("strict", False), bool)
        or not isinstance(spec.get("description", ""), str)
    ):
        raise ValidationError("json_schema.schema must be an object, strict a boolean, description a string.")
    check_schema_size(spec.get("schema", {}))


def check_schema_size(schema: dict[str, Any]) -> None:
    """A structured-output JSON Schema within MAX_SCHEMA_CHARS (it is input the model reads, and a
    grammar the server compiles)."""
    size = len(_COMPACT(schema))
    if size > MAX_SCHEMA_CHARS:
        raise ValidationError(f"The schema is {size} characters of JSON; at most {MAX_SCHEMA_CHARS}: make it smaller.")


def attached(messages: Iterable[Mapping[str, Any]]) -> set[str]:
    """What beyond text the messages carry, by the name a provider is asked about: `images`,
    `files` (data or an OpenAI file id), `file_urls`, `audio`."""
    found = set()
    for message in messages:
        content = message.get("content")
        for part in content if type(content) is list else ():
            if part["type"] == "image_url":
                found.add("images")
            elif part["type"] == "input_audio":
                found.add("audio")
            elif part["type"] == FILE_PART:
                found.add("file_urls" if "file_url" in part[FILE_PART] else "files")
    return found


_UNTAKEN = {
    "images": "The embedded model cannot read images",
    "files": "The embedded model cannot read files but text ones (inlined)",
    "file_urls": "A file by URL is read by Anthropic's servers only (ChatWait fetches nothing): send its data",
    "audio": "Audio is read by OpenAI-compatible servers' audio models only (not Anthropic's, not the embedded one)",
}


def refuse_untaken(
    options: dict[str, Any],
    media: set[str],
    provider: Provider,
    conversation: str,
    names: Mapping[str, str] = {},
) -> None:
    """A 400 naming each option (or the `conversation` field, for the `media` it carries: images,
    files) the provider cannot honour, and what to do; `names`: the request's name of an option,
    where it differs."""
    wanted = {names.get(name, name): "" for name in options if not provider.takes(name, options)}
    untaken = [_UNTAKEN[kind] for kind in sorted(media) if not provider.takes(kind, options)]
    if untaken:
        wanted[conversation] = "; ".join(untaken) + "."
    if wanted:
        why = "The embedded model cannot honour it (logit_bias, logprobs)."
        fix = " Set OPENAI_BASE_URL or UPSTREAMS_FILE to a server whose model can, or leave it out."
        fields = {name: [(reason or why) + fix] for name, reason in wanted.items()}
        raise ApiError("validation_error", f"{len(wanted)} field(s) are invalid.", fields=fields)
